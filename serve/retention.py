"""Data minimisation: how long each inspection's photo is kept, by its review state. One policy, here.

The inspection record stays (verdict, time, bin, review) for statistics and
appeals; only the photo goes. Per state, from the capture time:

| state                                              | photo kept                                          |
|----------------------------------------------------|-----------------------------------------------------|
| clean verdict (also a reviewer's confirmed clean)  | `retention_days_clean` (N) days                     |
| rejected or unusable by a reviewer                 | `retention_days_rejected` (M) days                  |
| confirmed inconclusive (the gate was right)        | M days: nothing could be judged on it               |
| confirmed finding that made no notice (uncertain   | M days: no case was opened                          |
|   link, no rules for the fraction)                 |                                                     |
| confirmed finding with a notice                    | until its case is closed (serve/escalation.py       |
|                                                    |   `case_closed`: the notice withdrawn, or the bin's |
|                                                    |   window passed since its last notice)              |
| contaminated or inconclusive, not yet reviewed     | kept while the review queue needs it, at most       |
|                                                    |   `retention_days_unreviewed` (U, 180) days         |
| clean, drawn for quality control, not yet reviewed | kept until reviewed (then the clean rule), at most  |
|                                                    |   U days                                            |

U caps what nobody reviewed: a photo held for a review that never comes
serves no purpose any more (data minimisation, Art. 5 (1)(e) GDPR), and a
finding nobody confirmed never makes a notice. Its item leaves the queue
with the photo (serve/review.py `waiting_condition`); the record stays.

A clean photo a reviewer rejected (a contaminant the model missed) is
training evidence: the clean rule keeps it, the rejected rule removes it
after M days. `apply_policy` runs every rule; the service runs it every
BINSIGHT_RETENTION_INTERVAL_MINUTES (serve/retention_job.py), and
`binsight retention` runs it by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import sessionmaker

from serve.db import QC_DRAW_RANGE, Inspection, Notice, ReviewClaim, as_utc
from serve.escalation import PastNotice, case_closed
from serve.notice_config import NoticeConfig
from serve.review import QueuePolicy, waiting_condition


def delete_clean_images(sessions: sessionmaker, image_dir: Path, days: int, now: datetime | None = None, qc_sample_rate: float = 0.0) -> int:
    """Delete images of clean inspections captured more than `days` ago; returns how many (module docstring says which stay)."""
    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(days=days)
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
    return delete_images(sessions, image_dir, ids, now)


def delete_images(sessions: sessionmaker, image_dir: Path, ids: Iterable[str], now: datetime) -> int:
    """Delete these inspections' photos (the records stay, marked with when); how many were still there."""
    deleted = 0
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


def delete_rejected_images(sessions: sessionmaker, image_dir: Path, days: int, now: datetime | None = None) -> int:
    """Photos of rejected and unusable inspections and of confirmed inconclusive ones, captured more than `days` ago."""
    now = now or datetime.now(timezone.utc)
    dismissed = or_(Inspection.review_state.in_(("rejected", "unusable")),
                    and_(Inspection.review_state == "confirmed", Inspection.verdict == "inconclusive"))  # fmt: skip
    with sessions() as s:
        ids = s.scalars(
            select(Inspection.id).where(dismissed, Inspection.captured_at < now - timedelta(days=days), Inspection.image_path.is_not(None))
        ).all()
    return delete_images(sessions, image_dir, ids, now)


def delete_closed_case_images(sessions: sessionmaker, image_dir: Path, config: NoticeConfig, days_without_case: int,
                              now: datetime | None = None) -> int:  # fmt: skip
    """Photos of confirmed findings whose case is closed, and of those that opened none (no notice) after `days_without_case`."""
    now = now or datetime.now(timezone.utc)
    findings = and_(Inspection.review_state == "confirmed", Inspection.verdict == "contaminated", Inspection.image_path.is_not(None))
    with sessions() as s:
        rows = s.execute(
            select(Inspection.id, Inspection.captured_at, Notice).outerjoin(Notice, Notice.inspection_id == Inspection.id).where(findings)
        ).all()  # fmt: skip
        cases = {(n.bin_id, n.fraction) for _, _, n in rows if n is not None}
        bins = {b for b, _ in cases}
        by_case: dict[tuple[str, str], list[PastNotice]] = {}
        if bins:
            for n in s.scalars(select(Notice).where(Notice.bin_id.in_(bins))):
                by_case.setdefault((n.bin_id, n.fraction), []).append(PastNotice(as_utc(n.issued_at), n.level, n.withdrawn_at is not None))
    due = []
    for inspection_id, captured_at, notice in rows:
        if notice is None:  # no case was opened (an uncertain link, no rules): like a rejected photo
            if as_utc(captured_at) < now - timedelta(days=days_without_case):
                due.append(inspection_id)
            continue
        rules = config.rules(notice.fraction)
        window = timedelta(days=rules.window_days if rules else days_without_case)  # rules since removed: the rejected rule's days
        own = PastNotice(as_utc(notice.issued_at), notice.level, notice.withdrawn_at is not None)
        if case_closed(own, by_case[(notice.bin_id, notice.fraction)], window, now):
            due.append(inspection_id)
    return delete_images(sessions, image_dir, due, now)


def delete_unreviewed_images(sessions: sessionmaker, image_dir: Path, days: int, now: datetime | None = None,
                             qc_sample_rate: float = 0.0) -> int:  # fmt: skip
    """Photos of the review queue captured more than `days` ago: the cap on waiting. What the queue holds is the
    review pages' own definition (serve/review.py); a clean photo not drawn for quality control is the clean rule's,
    and an item a reviewer has open right now keeps its photo until the claim ends."""
    now = now or datetime.now(timezone.utc)
    open_now = select(ReviewClaim.inspection_id).where(ReviewClaim.expires_at > now)
    waiting = waiting_condition(QueuePolicy(threshold=0.5, qc_sample_rate=qc_sample_rate))  # the threshold only orders the queue
    with sessions() as s:
        ids = s.scalars(
            select(Inspection.id).where(waiting,
                                        Inspection.captured_at < now - timedelta(days=days), Inspection.image_path.is_not(None),
                                        Inspection.id.not_in(open_now))  # fmt: skip
        ).all()
    return delete_images(sessions, image_dir, ids, now)


@dataclass(frozen=True)
class RetentionReport:
    clean: int
    rejected: int
    closed_cases: int
    unreviewed: int = 0

    @property
    def total(self) -> int:
        return self.clean + self.rejected + self.closed_cases + self.unreviewed

    def summary(self) -> str:
        return (f"deleted {self.total} images: {self.clean} of clean bins, {self.rejected} rejected or unusable, "
                f"{self.closed_cases} of confirmed findings whose case is closed, {self.unreviewed} left unreviewed too long")  # fmt: skip


def apply_policy(sessions: sessionmaker, image_dir: Path, config: NoticeConfig, days_clean: int, days_rejected: int,
                 qc_sample_rate: float = 0.0, now: datetime | None = None, days_unreviewed: int | None = None) -> RetentionReport:  # fmt: skip
    """Every rule of the module's policy, once; what each deleted. `days_unreviewed` None: unreviewed photos have no cap."""
    now = now or datetime.now(timezone.utc)
    return RetentionReport(
        delete_clean_images(sessions, image_dir, days_clean, now, qc_sample_rate),
        delete_rejected_images(sessions, image_dir, days_rejected, now),
        delete_closed_case_images(sessions, image_dir, config, days_rejected, now),
        0 if days_unreviewed is None else delete_unreviewed_images(sessions, image_dir, days_unreviewed, now, qc_sample_rate),
    )


def apply_configured(sessions: sessionmaker, settings, config: NoticeConfig, days_clean: int | None = None) -> RetentionReport:
    """apply_policy with the service's settings (serve/settings.py): the one call the scheduled job and `binsight
    retention` share, so that both apply the same policy. `days_clean`: the command's --days, else the setting."""
    return apply_policy(sessions, settings.image_dir, config, settings.retention_days_clean if days_clean is None else days_clean,
                        settings.retention_days_rejected, settings.review_qc_sample_rate, days_unreviewed=settings.unreviewed_cap_days)  # fmt: skip
