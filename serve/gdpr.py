"""Data-subject requests per bin: everything stored about one bin, handed out (Art. 15 GDPR) or erased (Art. 17).

    binsight gdpr export BIN --out bin.zip    every record and photo of the bin, as one archive
    binsight gdpr delete BIN                  all of it removed: rows, review trail, claims, photos

A bin's RFID identifies a household, so its inspections, their photos and
the reviewers' decisions about them are that household's personal data.
The export is written to a temporary file beside the target and renamed
when complete: a failed export leaves no half archive. Erasure removes the
rows in one transaction first and the photo files after it: a crash in
between leaves only files without a row, which the service's start-up sweep
removes; never a row whose photo is gone unannounced.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import sessionmaker

from serve.db import Inspection, ReviewClaim, ReviewEvent, as_utc

RECORD_COLUMNS = (
    "id", "truck_id", "capture_id", "bin_id", "fraction", "captured_at", "received_at", "latitude", "longitude", "verdict",
    "contamination_score", "quality_issue", "detections", "model_version", "image_sha256", "image_width", "image_height",
    "image_deleted_at", "review_state", "reviewed_detections", "reviewed_at", "reviewed_by",
)  # fmt: skip
EVENT_COLUMNS = ("inspection_id", "user_name", "at", "decision", "state_before", "detections_before", "detections_after", "changes", "note")
ABOUT = """Everything binsight stores about bin {bin_id}, exported {when} (Art. 15 GDPR).

records.json  every inspection of the bin (capture time, truck, position, the
              model's verdict and detections, a reviewer's decision) and the
              review trail of each (who decided what, when, what changed)
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


def export_bin(sessions: sessionmaker, image_dir: Path, bin_id: str, out: Path) -> BinSummary:
    """Write the bin's archive to `out` (a .zip); NoSuchBin when nothing of it is stored."""
    inspections, events = _rows(sessions, bin_id)
    records = {
        "bin_id": bin_id,
        "exported_at": datetime.now(timezone.utc).isoformat(),
        "inspections": [{c: _json_value(getattr(i, c)) for c in RECORD_COLUMNS} for i in inspections],
        "review_events": [{c: _json_value(getattr(e, c)) for c in EVENT_COLUMNS} for e in events],
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
    return BinSummary(len(inspections), images, len(events))


def delete_bin(sessions: sessionmaker, image_dir: Path, bin_id: str) -> BinSummary:
    """Erase everything stored about the bin; NoSuchBin when nothing is."""
    inspections, events = _rows(sessions, bin_id)
    ids = [i.id for i in inspections]
    paths = [image_dir / i.image_path for i in inspections if i.image_path]
    with sessions.begin() as s:
        # Claims and events first, explicitly: SQLite enforces no foreign keys unless asked.
        s.execute(delete(ReviewClaim).where(ReviewClaim.inspection_id.in_(ids)))
        s.execute(delete(ReviewEvent).where(ReviewEvent.inspection_id.in_(ids)))
        s.execute(delete(Inspection).where(Inspection.id.in_(ids)))
    images = 0
    for path in paths:
        if path.is_file():
            path.unlink()
            images += 1
    return BinSummary(len(inspections), images, len(events))
