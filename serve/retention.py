"""Data minimisation: images of clean bins are deleted after a set number of days.

The inspection record stays (verdict, time, bin) for statistics and appeals;
only the photo goes. Contaminated and inconclusive images are kept: they are
evidence a reviewer or a resident's appeal may need.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from serve.db import Inspection


def delete_clean_images(sessions: sessionmaker, image_dir: Path, days: int, now: datetime | None = None) -> int:
    """Delete images of clean inspections captured more than `days` ago; returns how many."""
    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(days=days)
    deleted = 0
    with sessions() as s:
        ids = s.scalars(
            select(Inspection.id).where(Inspection.verdict == "clean", Inspection.captured_at < cutoff, Inspection.image_path.is_not(None))
        ).all()
    for inspection_id in ids:
        with sessions.begin() as s:
            row = s.get(Inspection, inspection_id, with_for_update=True)
            if row is None or row.image_path is None:
                continue
            path = image_dir / row.image_path
            # Record first: if the unlink then fails, the file is an orphan the
            # start-up sweep removes; never a record pointing at nothing.
            row.image_path, row.image_deleted_at = None, now
        path.unlink(missing_ok=True)
        deleted += 1
    return deleted
