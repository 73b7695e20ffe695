"""Who opened which photo: the access log data protection asks for (issue 10).

    record_access(sessions, actor_kind="user", actor="anna", inspection_id=..., bin_id=..., what="image")
    binsight access-log [--bin RFID] [--since DATE] [--user NAME]      the log as CSV, for administrators

One row per photo, evidence image, crop, notice or export someone opened,
written by the code that hands it out (the review pages, the truck API, the
notices pages, `binsight gdpr export`). Rows are only ever added: the log is
the controller's accountability record, so `gdpr delete` keeps it (see
serve/gdpr.py), and a bin's rows are part of its Art. 15 export (who received
the data).
"""

from __future__ import annotations

import csv
import getpass
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from serve.db import ImageAccess, as_utc

ACTOR_KINDS = ("user", "api_key", "cli")
"""A reviewer or admin logged in to the pages; a truck's or fleet's API key; a command run on the server."""
WHAT = ("image", "evidence", "crop", "notice", "export")
CSV_COLUMNS = ("at", "actor_kind", "actor", "inspection_id", "bin_id", "what")
# Headers of every response that hands out a logged photo: a copy the browser keeps would be opened again without a
# log entry, and would stay on a shared office computer after the reviewer logs out.
NOT_CACHED = {"Cache-Control": "no-store"}


def record_access(sessions: sessionmaker, *, actor_kind: str, actor: str, inspection_id: str, bin_id: str | None, what: str) -> None:
    """Append one row to the access log, in its own transaction; ValueError for an unknown actor kind or `what`.

    Its own transaction: the row is written before the photo leaves, so a
    failure to log refuses the photo instead of handing it out unrecorded.
    """
    record_accesses(sessions, actor_kind=actor_kind, actor=actor, opened=[(inspection_id, bin_id)], what=what)


def record_accesses(sessions: sessionmaker, *, actor_kind: str, actor: str, opened: Iterable[tuple[str, str | None]], what: str) -> None:
    """record_access for many (inspection id, bin id) at once, in one transaction (an export of a bin's photos)."""
    if actor_kind not in ACTOR_KINDS:
        raise ValueError(f"unknown actor kind {actor_kind!r}; one of {', '.join(ACTOR_KINDS)}")
    if what not in WHAT:
        raise ValueError(f"unknown access {what!r}; one of {', '.join(WHAT)}")
    if not actor:
        raise ValueError("the access log needs the actor's name")
    now = datetime.now(timezone.utc)
    with sessions.begin() as s:
        s.add_all(ImageAccess(at=now, actor_kind=actor_kind, actor=actor, inspection_id=inspection_id, bin_id=bin_id, what=what)
                  for inspection_id, bin_id in opened)  # fmt: skip


def os_user() -> str:
    """Who runs this command, for `cli` entries: the login name, or the user id where the system knows no name."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a container's uid without a passwd entry
        return f"uid {os.getuid()}"


@dataclass(frozen=True)
class AccessQuery:
    bin_id: str | None = None
    since: date | None = None  # inclusive: from the start of that day, UTC
    actor: str | None = None


def entries(sessions: sessionmaker, query: AccessQuery = AccessQuery()) -> list[ImageAccess]:
    """The log's rows that match, oldest first."""
    conditions = []
    if query.bin_id is not None:
        conditions.append(ImageAccess.bin_id == query.bin_id)
    if query.since is not None:
        conditions.append(ImageAccess.at >= datetime.combine(query.since, time.min, timezone.utc))
    if query.actor is not None:
        conditions.append(ImageAccess.actor == query.actor)
    with sessions() as s:
        return list(s.scalars(select(ImageAccess).where(*conditions).order_by(ImageAccess.at, ImageAccess.id)))


def as_dict(row: ImageAccess) -> dict:
    return {"at": as_utc(row.at).isoformat(), "actor_kind": row.actor_kind, "actor": row.actor,
            "inspection_id": row.inspection_id, "bin_id": row.bin_id, "what": row.what}  # fmt: skip


def write_csv(rows: Iterable[ImageAccess], out: IO[str]) -> int:
    """The rows as CSV with a header; how many were written."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    n = 0
    for row in rows:
        writer.writerow(as_dict(row))
        n += 1
    return n
