"""Data-subject requests per bin: everything stored about one bin, handed out (Art. 15 GDPR) or erased (Art. 17).

    binsight gdpr export BIN --out bin.zip    every record and photo of the bin, as one archive
    binsight gdpr delete BIN                  the bin's personal data erased; its inspections stay, anonymous

A bin's RFID identifies a household, so its inspections, their photos and
the reviewers' decisions about them are that household's personal data.
The export is written to a temporary file beside the target and renamed when
complete: a failed export leaves no half archive. It includes the bin's
entries of the image access log (Art. 15 (1)(c): who received the data) and
its registry entry, and each export is itself logged (actor kind `cli`).

Erasure keeps the statistics. Deleting the household's inspections outright
would change every published rate after the fact (the district's week, the
truck's load grade). Instead each inspection is replaced by an anonymous copy
that keeps only what the statistics count: fraction, district, route, truck,
tour, local day, verdict, quality issue, review state, the detections' labels,
scores and boxes, the photo's size and visible share. Gone are:
- the bin id, the GPS position and distance to the bin: what names the household;
- the photo file (and its hash, which would find the photo wherever a copy lies);
- the inspection id and the truck's capture id (both known outside binsight:
  the truck's delivery log keeps them, a notice letter may quote the id): the
  copy has new random ones, so neither leads to it;
- the exact capture and receipt time: set to noon of the same local day (a
  truck's times in sequence would place the bin between its neighbours on the
  route, whose GPS positions are stored); the day and ISO week stay;
- who reviewed it and when; the review trail (notes may describe the
  household) and claims; the bin's notices;
- the row itself: the copy is a new row, so not even the table's physical
  order (SQLite's rowid) keeps it next to its neighbours on the route.
The image-access log keeps its entries as they are, bin id included
(serve/access_log.py: the controller's accountability record under Art. 5 (2),
only ever added to, holding no photo); they name the old inspection ids,
which lead to no row any more.

Why this satisfies Art. 17: what remains can no longer be related to the
household by anyone with means reasonably likely to be used (Recital 26): it
is anonymous data, which the GDPR does not govern, as if aggregated. It stays
one of many in its district's week (the open data publishes no cell of fewer
than k bins) and describes no bin at all. The city's bin registry (address and
RFID, kept for collection and fees under its own legal basis) is not touched.

Erasure replaces the rows in one transaction first and deletes the photo
files after it: a crash in between leaves only files without a row, which the
service's start-up sweep removes; never a row whose photo is gone unannounced.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, time, timezone
from pathlib import Path

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import sessionmaker

from serve import access_log
from serve.db import Bin, Inspection, Notice, ReviewClaim, ReviewEvent, as_utc
from serve.time_buckets import local_date, zone

RECORD_COLUMNS = (
    "id", "truck_id", "capture_id", "bin_id", "fraction", "captured_at", "received_at", "latitude", "longitude", "verdict",
    "contamination_score", "quality_issue", "detections", "model_version", "image_sha256", "image_width", "image_height",
    "image_deleted_at", "review_state", "reviewed_detections", "reviewed_at", "reviewed_by", "tour_id", "bin_link", "bin_link_reason",
    "bin_distance_m", "district", "route",
)  # fmt: skip
BIN_COLUMNS = ("rfid", "address", "district", "route", "fraction", "latitude", "longitude", "updated_at")
EVENT_COLUMNS = ("inspection_id", "user_name", "at", "decision", "state_before", "detections_before", "detections_after", "changes", "note")
ABOUT = """Everything binsight stores about bin {bin_id}, exported {when} (Art. 15 GDPR).

records.json  every inspection of the bin (capture time, truck, position, the
              model's verdict and detections, a reviewer's decision) and the
              review trail of each (who decided what, when, what changed),
              the bin's entry in the city's registry, and the access log: who
              opened which photo, when (reviewers, trucks' API keys, exports)
images/       the photos still stored, named by inspection id; a photo deleted
              by the retention policy is no longer there ("image_deleted_at")
"""


class NoSuchBin(ValueError):
    pass


@dataclass(frozen=True)
class BinSummary:
    inspections: int
    images: int
    review_events: int
    notices: int = 0


ANONYMISED_PHOTO_HASH = "0" * 64
KEPT_COLUMNS = (
    "truck_id", "fraction", "verdict", "contamination_score", "quality_issue", "detections", "model_version", "image_width",
    "image_height", "qc_draw", "review_state", "reviewed_detections", "tour_id", "bin_link", "bin_link_reason", "district",
    "route", "visible_share",
)  # fmt: skip
"""What an anonymised inspection keeps (module docstring): what the statistics and load grades count, nothing that names the bin."""


def _json_value(value):
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    return value


def _rows(sessions: sessionmaker, bin_id: str) -> tuple[list[Inspection], list[ReviewEvent]]:
    with sessions() as s:
        inspections = list(s.scalars(select(Inspection).where(Inspection.bin_id == bin_id).order_by(Inspection.captured_at, Inspection.id)))
        ids = [i.id for i in inspections]
        events = list(s.scalars(select(ReviewEvent).where(ReviewEvent.inspection_id.in_(ids)).order_by(ReviewEvent.id))) if ids else []
    if not inspections:
        raise NoSuchBin(f"no inspection of bin {bin_id!r} is stored (bin ids are compared exactly)")
    return inspections, events


def export_bin(sessions: sessionmaker, image_dir: Path, bin_id: str, out: Path, exported_by: str | None = None) -> BinSummary:
    """Write the bin's archive to `out` (a .zip); NoSuchBin when nothing of it is stored.

    The export is logged per inspection in the access log, as `exported_by`
    (default: the operating-system user running it).
    """
    inspections, events = _rows(sessions, bin_id)
    with sessions() as s:
        registered = s.get(Bin, bin_id)
    records = {
        "bin_id": bin_id,
        "exported_at": datetime.now(timezone.utc).isoformat(),
        "registry": None if registered is None else {c: _json_value(getattr(registered, c)) for c in BIN_COLUMNS},
        "inspections": [{c: _json_value(getattr(i, c)) for c in RECORD_COLUMNS} for i in inspections],
        "review_events": [{c: _json_value(getattr(e, c)) for c in EVENT_COLUMNS} for e in events],
        "image_access": [access_log.as_dict(a) for a in access_log.entries(sessions, access_log.AccessQuery(bin_id=bin_id))],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    images = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("README.txt", ABOUT.format(bin_id=bin_id, when=records["exported_at"]))
            archive.writestr("records.json", json.dumps(records, indent=1, ensure_ascii=False))
            for i in inspections:
                path = image_dir / i.image_path if i.image_path else None
                if path is not None and path.is_file():
                    archive.write(path, f"images/{i.id}{path.suffix}")
                    images += 1
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # Logged once the archive exists: a failed export handed nothing out.
    access_log.record_accesses(sessions, actor_kind="cli", actor=exported_by or access_log.os_user(),
                               opened=[(i.id, bin_id) for i in inspections], what="export")  # fmt: skip
    return BinSummary(len(inspections), images, len(events))


def local_noon(moment: datetime, tz: str) -> datetime:
    """Noon of the moment's local day, in UTC: the day and ISO week stay, the time of day is gone."""
    return datetime.combine(local_date(as_utc(moment), tz), time(12), zone(tz)).astimezone(timezone.utc)


def anonymised_copy(row: Inspection, tz: str, now: datetime) -> Inspection:
    """A new inspection with the statistics of `row` and nothing that leads back to its bin (module docstring)."""
    day = local_noon(row.captured_at, tz)
    return Inspection(
        **{c: getattr(row, c) for c in KEPT_COLUMNS}, id=str(uuid.uuid4()), capture_id=f"erased-{uuid.uuid4().hex}", bin_id=None,
        captured_at=day, received_at=day, latitude=None, longitude=None, bin_distance_m=None, privacy_regions=None, image_path=None,
        image_sha256=ANONYMISED_PHOTO_HASH, image_deleted_at=now, reviewed_at=None, reviewed_by=None,
    )  # fmt: skip


def delete_bin(sessions: sessionmaker, image_dir: Path, bin_id: str, tz: str) -> BinSummary:
    """Erase the bin's personal data, its inspections kept as anonymous copies for the statistics; NoSuchBin when nothing is stored."""
    inspections, events = _rows(sessions, bin_id)
    ids = [i.id for i in inspections]
    paths = [image_dir / i.image_path for i in inspections if i.image_path]
    now = datetime.now(timezone.utc)
    with sessions.begin() as s:
        # Claims and events first, explicitly: SQLite enforces no foreign keys unless asked.
        s.execute(delete(ReviewClaim).where(ReviewClaim.inspection_id.in_(ids)))
        s.execute(delete(ReviewEvent).where(ReviewEvent.inspection_id.in_(ids)))
        notices = s.execute(delete(Notice).where(or_(Notice.bin_id == bin_id, Notice.inspection_id.in_(ids)))).rowcount
        s.execute(delete(Inspection).where(Inspection.id.in_(ids)))
        s.add_all([anonymised_copy(row, tz, now) for row in inspections])
    images = 0
    for path in paths:
        if path.is_file():
            path.unlink()
            images += 1
    return BinSummary(len(inspections), images, len(events), notices)
