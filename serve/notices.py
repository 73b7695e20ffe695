"""Notices to residents: one per confirmed finding, issued in the confirming decision's transaction.

A reviewer's `confirmed` on an inspection makes a notice when all of these hold
(`NoticeIssuer`, called by serve/review.py `decide` before it commits):

- the model's verdict was `contaminated` and the boxes as the reviewer left
  them hold at least one contaminant of the bin's fraction (the letter names
  those and shows only them);
- the inspection is linked to a registered bin (`bin_link == "linked"`): an
  uncertain link (no RFID read, an unknown tag, the truck far from the bin's
  address) never makes a notice, since someone else may have filled that bin;
- its fraction has escalation rules (serve/defaults/notices/escalation.yaml);
- it has no notice yet.

Rejected and unusable decisions make none. The level comes from the bin's
earlier, not withdrawn, notices of that fraction (serve/escalation.py). An
administrator may withdraw a notice (e.g. after an appeal): who and when are
stored, and it no longer counts for the bin's escalation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.policy import FractionPolicy
from serve import escalation
from serve.bin_lock import lock_bin
from serve.boxes_of_record import contaminant_boxes_of_record
from serve.db import Bin, Inspection, Notice, as_utc
from serve.escalation import PastNotice
from serve.notice_config import NoticeConfig


class NoticeError(ValueError):
    """A request about a notice that cannot be done as asked; the message says why."""


class NoSuchNotice(NoticeError):
    pass


@dataclass(frozen=True)
class NoticeOutcome:
    """What a decision meant for the household: the notice issued, or why none was."""

    notice: Notice | None
    why_not: str | None = None  # one of WHY_NOT; None when a notice was issued
    reason: str | None = None  # the same in words

    @property
    def issued(self) -> bool:
        return self.notice is not None


def past(notice: Notice) -> PastNotice:
    return PastNotice(as_utc(notice.issued_at), notice.level, notice.withdrawn_at is not None)


def found_contaminants(inspection: Inspection, contaminants: frozenset[str]) -> list[str]:
    """The contaminant classes among the boxes as the reviewer left them (serve/boxes_of_record.py), sorted."""
    return sorted({b["label"] for b in contaminant_boxes_of_record(inspection, contaminants)})


WHY_NOT = ("not_confirmed", "not_contaminated", "no_contaminant_box", "uncertain_link", "no_rules", "exists")


def why_no_notice(inspection: Inspection, found: Sequence[str], config: NoticeConfig) -> tuple[str, str] | None:
    """Why this decided inspection gets no notice (one of WHY_NOT, and in words); None when it gets one."""
    if inspection.review_state != "confirmed":
        return "not_confirmed", f"the decision is {inspection.review_state}, not a confirmed finding"
    if inspection.verdict != "contaminated":
        return "not_contaminated", f"the verdict is {inspection.verdict}; only confirmed contaminated bins get a notice"
    if not found:
        return "no_contaminant_box", f"the boxes hold no contaminant of the {inspection.fraction} bin to show"
    if not inspection.bin_id or inspection.bin_link != "linked":
        why = f" ({inspection.bin_link_reason.replace('_', ' ')})" if inspection.bin_link_reason else ""
        return "uncertain_link", f"the link to bin {inspection.bin_id or '(no RFID read)'} is {inspection.bin_link or 'unknown'}{why}"
    if config.rules(inspection.fraction) is None:
        return "no_rules", f"no escalation rules for the {inspection.fraction} fraction"
    return None


class NoticeIssuer:
    """The `consequence` of a review decision (serve/review.py `decide`): the notice, in the decision's transaction."""

    def __init__(self, config: NoticeConfig, policy: FractionPolicy):
        self.config, self.policy = config, policy

    def __call__(self, s: Session, inspection: Inspection) -> NoticeOutcome:
        found = found_contaminants(inspection, self.policy.contaminants_by_fraction.get(inspection.fraction, frozenset()))
        refused = why_no_notice(inspection, found, self.config)
        if refused is not None:
            return NoticeOutcome(None, *refused)
        # One decision of a bin at a time, registered or not: of two confirmations racing, the second sees the first's notice.
        lock_bin(s, inspection.bin_id)
        if s.scalar(select(Notice.id).where(Notice.inspection_id == inspection.id)) is not None:
            return NoticeOutcome(None, "exists", "a notice for this finding exists already")
        rules = self.config.rules(inspection.fraction)
        now = as_utc(inspection.reviewed_at)
        earlier = [past(n) for n in bin_notices(s, inspection.bin_id, inspection.fraction)]
        level = escalation.next_level(earlier, timedelta(days=rules.window_days), len(rules.levels), now)
        notice = Notice(inspection_id=inspection.id, bin_id=inspection.bin_id, fraction=inspection.fraction, level=level,
                        action=rules.levels[level - 1].action, contaminants=list(found), issued_at=now,
                        issued_by=inspection.reviewed_by)  # fmt: skip
        s.add(notice)
        s.flush()
        return NoticeOutcome(notice)


def bin_notices(s: Session, bin_id: str, fraction: str | None = None) -> list[Notice]:
    """The bin's notices (withdrawn ones included), oldest first."""
    conditions = [Notice.fraction == fraction] if fraction else []
    return list(s.scalars(select(Notice).where(Notice.bin_id == bin_id, *conditions).order_by(Notice.issued_at, Notice.id)))


def get(sessions: sessionmaker, notice_id: str) -> Notice:
    with sessions() as s:
        notice = s.get(Notice, notice_id)
    if notice is None:
        raise NoSuchNotice(f"no notice {notice_id}")
    return notice


def withdraw(sessions: sessionmaker, notice_id: str, by: str, now: datetime | None = None) -> Notice:
    """Withdraw a notice (an appeal upheld, a mistake): recorded with who and when; it stops counting for escalation."""
    now = now or datetime.now(timezone.utc)
    with sessions.begin() as s:
        notice = s.get(Notice, notice_id, with_for_update=True)
        if notice is None:
            raise NoSuchNotice(f"no notice {notice_id}")
        if notice.withdrawn_at is not None:
            raise NoticeError(f"notice {notice_id} was withdrawn already, by {notice.withdrawn_by} on {as_utc(notice.withdrawn_at):%Y-%m-%d}")
        notice.withdrawn_at, notice.withdrawn_by = now, by
        s.flush()
        s.expunge(notice)
    return notice


@dataclass
class Standing:
    """A bin's escalation in one fraction, now."""

    bin_id: str
    fraction: str
    level: int  # 0: no counted notice in its record (or the record has reset)
    title: str | None
    notices_in_record: int
    last_notice_at: datetime | None
    last_finding_at: datetime | None
    resets_at: datetime | None
    address: str | None = None


def standing(config: NoticeConfig, bin_id: str, fraction: str, notices: Sequence[Notice], finding_times: dict[str, datetime],
             now: datetime) -> Standing:  # fmt: skip
    rules = config.rules(fraction)
    window = timedelta(days=rules.window_days if rules else 0)
    earlier = [past(n) for n in notices]
    record = escalation.current_run(earlier, window)
    levels = len(rules.levels) if rules else 1
    level = escalation.current_level(earlier, window, levels, now) if rules else 0
    counted = [n for n in notices if n.withdrawn_at is None]
    last = counted[-1] if counted else None
    title = rules.levels[level - 1].title if rules and level else None
    return Standing(bin_id, fraction, level, title, len(record) if level else 0, as_utc(last.issued_at) if last else None,
                    finding_times.get(last.inspection_id) if last else None, escalation.resets_at(earlier, window) if level else None)  # fmt: skip


def _finding_times(s: Session, notices: Sequence[Notice]) -> dict[str, datetime]:
    ids = [n.inspection_id for n in notices]
    if not ids:
        return {}
    return {i: as_utc(at) for i, at in s.execute(select(Inspection.id, Inspection.captured_at).where(Inspection.id.in_(ids)))}


def by_level(sessions: sessionmaker, config: NoticeConfig, now: datetime | None = None) -> dict[int, list[Standing]]:
    """Bins whose record is open now, per current level (1 = first step), most recent finding first within a level."""
    now = now or datetime.now(timezone.utc)
    longest = max((r.window_days for r in config.fractions.values()), default=0)
    with sessions() as s:
        # A record is open only if its last notice lies within the window: bins without one that recent can be skipped.
        recent = select(Notice.bin_id).where(Notice.withdrawn_at.is_(None), Notice.issued_at >= now - timedelta(days=longest))
        notices = list(s.scalars(select(Notice).where(Notice.bin_id.in_(recent)).order_by(Notice.issued_at, Notice.id)))
        times = _finding_times(s, notices)
        grouped: dict[tuple[str, str], list[Notice]] = defaultdict(list)
        for n in notices:
            grouped[(n.bin_id, n.fraction)].append(n)
        addresses = {rfid: address for rfid, address in s.execute(select(Bin.rfid, Bin.address).where(Bin.rfid.in_({b for b, _ in grouped})))}
    levels: dict[int, list[Standing]] = defaultdict(list)
    for (bin_id, fraction), group in grouped.items():
        found = standing(config, bin_id, fraction, group, times, now)
        if found.level:
            found.address = addresses.get(bin_id)
            levels[found.level].append(found)
    for rows in levels.values():
        rows.sort(key=lambda r: (r.last_notice_at or now), reverse=True)
    return dict(sorted(levels.items()))


@dataclass
class BinHistory:
    rfid: str
    registry: Bin | None
    inspections: list[Inspection]
    notices: list[Notice]
    standings: list[Standing] = field(default_factory=list)
    notice_of: dict[str, Notice] = field(default_factory=dict)  # inspection id -> its notice


def history(sessions: sessionmaker, config: NoticeConfig, rfid: str, now: datetime | None = None) -> BinHistory:
    """Everything about one bin the pages show: its inspections, notices and escalation per fraction; NoticeError if none."""
    now = now or datetime.now(timezone.utc)
    with sessions() as s:
        registry = s.get(Bin, rfid)
        inspections = list(s.scalars(select(Inspection).where(Inspection.bin_id == rfid).order_by(Inspection.captured_at.desc(), Inspection.id)))
        notices = bin_notices(s, rfid)
        times = _finding_times(s, notices)
    if registry is None and not inspections and not notices:
        raise NoticeError(f"nothing is known about bin {rfid}: not in the registry, never inspected")
    fractions = sorted({n.fraction for n in notices})
    standings = [standing(config, rfid, f, [n for n in notices if n.fraction == f], times, now) for f in fractions]
    return BinHistory(rfid, registry, inspections, notices, standings, {n.inspection_id: n for n in notices})
