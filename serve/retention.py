"""Data minimisation: images of clean bins are deleted after a set number of days.

The inspection record stays (verdict, time, bin) for statistics and appeals;
only the photo goes. Contaminated and inconclusive images are kept: they are
evidence a reviewer or a resident's appeal may need. So are clean ones a
reviewer rejected (a contaminant the model missed) and clean ones drawn for
quality control that no reviewer has seen yet: the queue needs their photo.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import math

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import sessionmaker

from serve.db import QC_DRAW_RANGE, Inspection


def delete_clean_images(sessions: sessionmaker, image_dir: Path, days: int, now: datetime | None = None, qc_sample_rate: float = 0.0) -> int:
    """Delete images of clean inspections captured more than `days` ago; returns how many (module docstring says which stay)."""
    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(days=days)
    deleted = 0
    # coalesce: NULL draws (stored before draws existed) are not sampled, NULL states are not rejected;
    # a NULL inside NOT(...) would otherwise keep such photos forever.
    sampled = func.coalesce(Inspection.qc_draw, QC_DRAW_RANGE) < math.ceil(qc_sample_rate * QC_DRAW_RANGE)
    waiting_for_qc = and_(Inspection.review_state.is_(None), sampled)
    rejected = func.coalesce(Inspection.review_state, "") == "rejected"
    with sessions() as s:
        ids = s.scalars(
            select(Inspection.id).where(Inspection.verdict == "clean", Inspection.captured_at < cutoff, Inspection.image_path.is_not(None),
                                        ~or_(waiting_for_qc, rejected).self_group())  # fmt: skip
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
