"""Data-subject requests per bin: everything stored about one bin, handed out (Art. 15 GDPR) or erased (Art. 17).

    binsight gdpr export BIN --out bin.zip    every record and photo of the bin, as one archive
    binsight gdpr delete BIN                  the bin's personal data erased; its inspections stay, anonymous
    binsight gdpr delete BIN --purge          ... and its inspections deleted outright (the counts change)
    (where the bin would be the only erased one of a week, the command asks for --keep-copies or --purge)

A bin's RFID identifies a household, so its inspections, their photos and
the reviewers' decisions about them are that household's personal data.
The export is written to a temporary file beside the target and renamed when
complete: a failed export leaves no half archive. It includes the bin's
entries of the image access log (Art. 15 (1)(c): who received the data) and
its registry entry, and each export is itself logged (actor kind `cli`).

Erasure keeps the statistics' counts. Deleting the household's inspections
outright would change every published rate after the fact (the district's
week). Instead each inspection is replaced by an anonymous copy that keeps
only what the counted statistics need at the granularity the open data
publishes: fraction, district, ISO week (the copy is dated noon of the
week's Monday, local time), verdict, review state, the score rounded to 0.1
and the model version (one value for every photo of a period). Its link is
`erased` (serve/db.py BIN_LINKS): relink skips it and the review queue never
offers it. Gone are:
- the bin id, the GPS position and distance to the bin: what names the household;
- the truck (the copy's truck is `erased`), the tour and the route, and the
  day: with them the copy sits in one truck load or one route's day, whose
  other photos carry bin ids and positions, and the registry's bin of that
  route missing from that day is the household. They would also tell two
  erased households of one district apart (different routes, collection
  weekdays), where the district's week mixes them;
- the photo file (and its hash, which would find the photo wherever a copy
  lies), its size, visible share, privacy regions and every box: the
  detections keep nothing, since no statistic reads them from a copy;
- the inspection id and the truck's capture id (both known outside binsight:
  the truck's delivery log keeps them, a notice letter may quote the id): the
  copy has new random ones, neither with a mark of its own;
- the exact score (an earlier `export inspections` CSV holds it to four
  decimals next to the bin id), the quality issue; the QC draw is a new random one;
- the times: capture and receipt are the week's Monday noon, and the photo's
  deletion time is that too, not the moment of erasure (which all copies of
  one request would share, grouping them);
- who reviewed it and when; the review trail (notes may describe the
  household) and claims; the bin's notices.
The image-access log keeps its entries as they are, bin id included
(serve/access_log.py: the controller's accountability record under Art. 5 (2),
only ever added to, holding no photo); they name the old inspection ids,
which lead to no row any more.

What the dashboard loses, deliberately: the copies count under truck
`erased` and no route in the per-truck and per-route tables, and the load
grades (per truck, day and tour) no longer include them. Totals and the
tables per ISO week, district and fraction, and the open data, stay the same
(their distinct-bin counts lose the bin, so a cell may become suppressed).
Ranges of days that cut a week see the copies on its Monday.

Why this satisfies Art. 17, and where it does not by itself: a copy says
"some erased bin of this district and fraction had this verdict in this
week". That cannot be related to the household (Recital 26) as long as other
erased bins share the district and fraction: the copies of different
households carry nothing that tells them apart. The city's bin registry
(address and RFID, kept for collection and fees under its own legal basis)
is not touched, so someone with the database and the registry sees that a
registered bin has no inspections any more; if it is the only erased bin of
its district and fraction, the copies there are its weekly verdicts. Rows
written in one transaction may also lie next to each other in the table's
physical order (SQLite's rowid). The copies are therefore as identifying as
the open data's cells only once a district has several erasures; until
then they are pseudonymous at district and week level. A copy, once written,
leads to no bin, so the choice is made before: `exposed_weeks` finds the
bin's weeks (per district and fraction) that hold no other erased copy,
where the bin's copies would be the only ones. There the command refuses to
choose for the operator: `--keep-copies` keeps them (the counts stay) and
`--purge` deletes the bin's inspections outright (none of them stays, and
the published counts of those weeks drop). Which one a request needs is the
controller's decision. Copies of an earlier erasure of the same bin count as
another bin's here, and one other erased bin is enough for the check: it
finds the bin alone, not the bin among too few.

Erasure selects and replaces the rows in one transaction, locking them where
the database can (FOR UPDATE; SQLite's write lock covers the whole file):
every row committed before the selection is erased and none is decided by a
reviewer in between. SQLite then lets no upload commit until the erasure
has; on PostgreSQL, which locks rows but not the rows still to come, the
selection is repeated before the commit and erases what arrived meanwhile.
An upload that commits after the erasure is a new row of the bin. It deletes the photo files after it: a crash in between leaves
only files without a row, which the service's start-up sweep removes; never
a row whose photo is gone unannounced.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from serve import access_log
from serve.db import ERASED, Bin, Inspection, Notice, ReviewClaim, ReviewEvent, as_utc
from serve.time_buckets import local_date, zone

RECORD_COLUMNS = (
    "id", "truck_id", "capture_id", "bin_id", "fraction", "captured_at", "received_at", "latitude", "longitude", "verdict",
    "contamination_score", "quality_issue", "detections", "model_version", "image_sha256", "image_width", "image_height",
    "image_deleted_at", "review_state", "reviewed_detections", "reviewed_at", "reviewed_by", "tour_id", "bin_link", "bin_link_reason",
    "bin_distance_m", "district", "route",
)  # fmt: skip
BIN_COLUMNS = ("rfid", "address", "district", "route", "fraction", "latitude", "longitude", "updated_at")
NOTICE_COLUMNS = ("id", "inspection_id", "fraction", "level", "action", "contaminants", "issued_at", "issued_by", "withdrawn_at",
                  "withdrawn_by")  # fmt: skip
EVENT_COLUMNS = ("inspection_id", "user_name", "at", "decision", "state_before", "detections_before", "detections_after", "changes", "note")
ABOUT = """Everything binsight stores about bin {bin_id}, exported {when} (Art. 15 GDPR).

records.json  every inspection of the bin (capture time, truck, position, the
              model's verdict and detections, a reviewer's decision) and the
              review trail of each (who decided what, when, what changed),
              the bin's entry in the city's registry, the notices sent about
              the bin (level, action, contaminants, issued and withdrawn when
              and by whom), and the access log: who opened which photo, when
              (reviewers, trucks' API keys, exports)
images/       the photos still stored, named by inspection id; a photo deleted
              by the retention policy is no longer there ("image_deleted_at")
letters/      each notice's letter as it reads (HTML), where the letter
              template was at hand
"""


class NoSuchBin(ValueError):
    pass


@dataclass(frozen=True)
class BinSummary:
    inspections: int
    images: int
    review_events: int
    notices: int = 0
    kept_as_copies: int = 0  # erasure: anonymous copies written (0 with purge)


@dataclass(frozen=True)
class Exposure:
    """Weeks of a district (None: inspections linked to none) and fraction where the bin's copies would be alone."""

    district: str | None
    fraction: str
    weeks: int  # weeks of the bin's inspections in this group with no other erased copy
    of_weeks: int  # weeks of the bin's inspections in this group

    def __str__(self) -> str:
        where = "no district" if self.district is None else self.district
        return f"{where}/{self.fraction} ({self.weeks} of {self.of_weeks} weeks)"


ANONYMISED_PHOTO_HASH = "0" * 64
KEPT_COLUMNS = ("fraction", "verdict", "model_version", "review_state", "district")
"""What an anonymised inspection keeps as it was (module docstring); its week and a rounded score are kept coarsened."""
SCORE_STEP = 0.1
"""An anonymised copy's score is rounded to this: the verdict is what the statistics count."""


def _json_value(value):
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    return value


def _select(session: Session, bin_id: str, lock: bool = False) -> tuple[list[Inspection], list[ReviewEvent]]:
    """The bin's inspections and review events; `lock`: FOR UPDATE where the database has it (delete_bin says SQLite's way)."""
    query = select(Inspection).where(Inspection.bin_id == bin_id).order_by(Inspection.captured_at, Inspection.id)
    if lock and session.bind.dialect.name != "sqlite":
        query = query.with_for_update()
    inspections = list(session.scalars(query))
    ids = [i.id for i in inspections]
    events = list(session.scalars(select(ReviewEvent).where(ReviewEvent.inspection_id.in_(ids)).order_by(ReviewEvent.id))) if ids else []
    return inspections, events


def _rows(session: Session, bin_id: str, lock: bool = False) -> tuple[list[Inspection], list[ReviewEvent]]:
    inspections, events = _select(session, bin_id, lock)
    if not inspections:
        raise NoSuchBin(f"no inspection of bin {bin_id!r} is stored (bin ids are compared exactly)")
    return inspections, events


def _letters(sessions: sessionmaker, image_dir: Path, notice_config, notices: list[Notice]) -> dict[str, str]:
    """Each notice's letter as HTML, by file name; none without a letter configuration."""
    if notice_config is None:
        return {}
    from serve.letters import compose

    found = {}
    for notice in notices:
        letter = compose(sessions, image_dir, notice_config, notice)
        found[f"letters/{letter.file_stem}.html"] = letter.html
    return found


def export_bin(sessions: sessionmaker, image_dir: Path, bin_id: str, out: Path, exported_by: str | None = None,
               notice_config=None) -> BinSummary:  # fmt: skip
    """Write the bin's archive to `out` (a .zip); NoSuchBin when nothing of it is stored.

    After an erasure the bin has no inspections, but its registry entry and
    the access log's entries about it remain: those are still its data
    (Art. 15 (1)(c): who received it), so they are exported on their own.

    The export is logged per inspection in the access log, as `exported_by`
    (default: the operating-system user running it), before the archive is
    put in place: an archive never exists without its log entries. With
    `notice_config` (serve/notice_config.py) each notice's letter is included.
    """
    with sessions() as s:
        inspections, events = _select(s, bin_id)
        registered = s.get(Bin, bin_id)
        notices = list(s.scalars(select(Notice).where(Notice.bin_id == bin_id).order_by(Notice.issued_at, Notice.id)))
    accesses = [access_log.as_dict(a) for a in access_log.entries(sessions, access_log.AccessQuery(bin_id=bin_id))]
    if not (inspections or registered or notices or accesses):
        raise NoSuchBin(f"nothing of bin {bin_id!r} is stored: no inspection, registry entry, notice or access-log entry (bin ids are compared exactly)")
    records = {
        "bin_id": bin_id,
        "exported_at": datetime.now(timezone.utc).isoformat(),
        "registry": None if registered is None else {c: _json_value(getattr(registered, c)) for c in BIN_COLUMNS},
        "inspections": [{c: _json_value(getattr(i, c)) for c in RECORD_COLUMNS} for i in inspections],
        "review_events": [{c: _json_value(getattr(e, c)) for c in EVENT_COLUMNS} for e in events],
        "notices": [{c: _json_value(getattr(n, c)) for c in NOTICE_COLUMNS} for n in notices],
        "image_access": accesses,
    }
    letters = _letters(sessions, image_dir, notice_config, notices)
    out.parent.mkdir(parents=True, exist_ok=True)
    images = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("README.txt", ABOUT.format(bin_id=bin_id, when=records["exported_at"]))
            archive.writestr("records.json", json.dumps(records, indent=1, ensure_ascii=False))
            for name, html in letters.items():
                archive.writestr(name, html)
            for i in inspections:
                path = image_dir / i.image_path if i.image_path else None
                if path is not None and path.is_file():
                    archive.write(path, f"images/{i.id}{path.suffix}")
                    images += 1
        # Logged before the archive is put in place: if logging fails, the temporary file goes and nothing was handed out.
        access_log.record_accesses(sessions, actor_kind="cli", actor=exported_by or access_log.os_user(),
                                   opened=[(i.id, bin_id) for i in inspections], what="export")  # fmt: skip
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return BinSummary(len(inspections), images, len(events), len(notices))


def week_noon(moment: datetime, tz: str) -> datetime:
    """Noon of the Monday of the moment's local ISO week, in UTC: the week stays, the day and time are gone."""
    day = local_date(as_utc(moment), tz)
    monday = day - timedelta(days=day.weekday())
    return datetime.combine(monday, time(12), zone(tz)).astimezone(timezone.utc)


def coarse_score(score: float) -> float:
    return round(round(score / SCORE_STEP) * SCORE_STEP, 1)


def anonymised_copy(row: Inspection, tz: str) -> Inspection:
    """A new inspection with the counted statistics of `row` and nothing that leads back to its bin (module docstring)."""
    week = week_noon(row.captured_at, tz)
    return Inspection(
        **{c: getattr(row, c) for c in KEPT_COLUMNS}, id=str(uuid.uuid4()), truck_id=ERASED, capture_id=uuid.uuid4().hex, bin_id=None,
        captured_at=week, received_at=week, latitude=None, longitude=None, contamination_score=coarse_score(row.contamination_score),
        quality_issue=None, detections=[], reviewed_detections=None, image_path=None, image_sha256=ANONYMISED_PHOTO_HASH, image_width=0,
        image_height=0, image_deleted_at=week, reviewed_at=None, reviewed_by=None, tour_id=None, bin_link=ERASED,
        bin_link_reason=None, bin_distance_m=None, route=None, privacy_regions=None, visible_share=None,
    )  # fmt: skip


def exposed_weeks(sessions: sessionmaker, bin_id: str, tz: str) -> list[Exposure]:
    """Per district and fraction of the bin's inspections, its weeks with no other erased copy: erased now, its copies
    there would be the only ones, and with the registry they are its verdicts (module docstring). Empty when none;
    NoSuchBin when nothing of the bin is stored."""
    with sessions() as s:
        inspections, _ = _rows(s, bin_id)
        weeks: dict[tuple[str | None, str], set[datetime]] = {}
        for row in inspections:
            weeks.setdefault((row.district, row.fraction), set()).add(week_noon(row.captured_at, tz))
        found = []
        for (district, fraction), noons in sorted(weeks.items(), key=lambda item: (item[0][0] or "", item[0][1])):
            in_district = Inspection.district.is_(None) if district is None else Inspection.district == district
            # A copy is dated its week's Monday noon (anonymised_copy), so a week is matched by that moment; compared
            # here in UTC, as the databases store times differently (SQLite without the zone).
            others = {as_utc(at) for at in s.scalars(select(Inspection.captured_at).where(
                Inspection.bin_link == ERASED, Inspection.fraction == fraction, in_district))}
            alone = len(noons - others)
            if alone:
                found.append(Exposure(district, fraction, alone, len(noons)))
        return found


def delete_bin(sessions: sessionmaker, image_dir: Path, bin_id: str, tz: str, purge: bool = False) -> BinSummary:
    """Erase the bin's personal data, its inspections kept as anonymous copies for the statistics, or with `purge`
    deleted outright (nothing of them stays, the counts change); NoSuchBin when nothing is stored."""
    found = events_found = notices = kept = 0
    paths: list[Path] = []
    with sessions.begin() as s:
        if s.bind.dialect.name == "sqlite":
            # pysqlite opens the transaction at the first write, not at a SELECT: a write first takes the database's
            # write lock, so no upload can commit between the selection below and the commit.
            s.execute(update(Inspection).where(Inspection.bin_id == bin_id).values(bin_id=bin_id))
        inspections, events = _rows(s, bin_id, lock=True)
        while inspections:
            found, events_found = found + len(inspections), events_found + len(events)
            ids = [i.id for i in inspections]
            paths += [image_dir / i.image_path for i in inspections if i.image_path]
            copies = [] if purge else [anonymised_copy(row, tz) for row in inspections]
            kept += len(copies)
            # Claims and events first, explicitly: SQLite enforces no foreign keys unless asked.
            s.execute(delete(ReviewClaim).where(ReviewClaim.inspection_id.in_(ids)))
            s.execute(delete(ReviewEvent).where(ReviewEvent.inspection_id.in_(ids)))
            notices += s.execute(delete(Notice).where(or_(Notice.bin_id == bin_id, Notice.inspection_id.in_(ids)))).rowcount
            s.execute(delete(Inspection).where(Inspection.id.in_(ids)))
            s.add_all(copies)
            s.flush()
            # PostgreSQL's FOR UPDATE locks the rows found, not rows inserted later: an upload committed since the
            # selection is visible to the next statement (READ COMMITTED) and erased in the same transaction.
            inspections, events = _select(s, bin_id, lock=True)
    images = 0
    for path in paths:
        if path.is_file():
            path.unlink()
            images += 1
    return BinSummary(found, images, events_found, notices, kept)
