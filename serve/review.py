"""The review queue: what waits for a reviewer, who holds what, and every decision in the audit trail.

What waits: every `contaminated` and `inconclusive` inspection not yet
reviewed, plus clean ones drawn for quality control (each inspection draws a
number when stored, serve/db.py `qc_draw`; a clean one waits when its draw
falls under the configured rate). Most uncertain first: the verdict score
closest to the model's threshold; set-aside (inconclusive) photos have no
trustworthy score and come first.

Two reviewers never get the same item at once: `claim_next` takes an
inspection by inserting its claim row (the primary key makes a second insert
fail), or by taking over a claim that has expired. A decision needs the
reviewer's live claim, stores the final state and boxes on the inspection,
and appends one `review_events` row that says who, when and what changed;
rows there are never updated or deleted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from serve.accounts import Account
from serve.db import ERASED, QC_DRAW_RANGE, REVIEW_STATES, Inspection, ReviewClaim, ReviewEvent, User

FLAGGED = ("contaminated", "inconclusive")
BOX_MOVE_TOLERANCE = 0.5  # pixels: the editor's rounding is not a move


class ReviewError(ValueError):
    """A decision that cannot be taken as sent; the message names the problem."""


class NotClaimed(ReviewError):
    """The reviewer does not hold this inspection (never claimed, taken over by someone else, or decided)."""


class ChangedMeanwhile(ReviewError):
    """Someone decided the inspection after the reviewer's page showed it: their decision would overwrite one unseen."""


UNCHANGED = "unchanged"  # Decision.expected_state when the caller does not say what it saw


@dataclass(frozen=True)
class QueueFilter:
    fraction: str | None = None
    truck_id: str | None = None
    captured_from: date | None = None
    captured_to: date | None = None  # inclusive: the whole day
    district: str | None = None  # the bin's, as copied at capture time (serve/bin_link.py)
    route: str | None = None

    def conditions(self) -> list:
        out = []
        if self.district:
            out.append(Inspection.district == self.district)
        if self.route:
            out.append(Inspection.route == self.route)
        if self.fraction:
            out.append(Inspection.fraction == self.fraction)
        if self.truck_id:
            out.append(Inspection.truck_id == self.truck_id)
        if self.captured_from:
            out.append(Inspection.captured_at >= datetime.combine(self.captured_from, time.min, timezone.utc))
        if self.captured_to:
            out.append(Inspection.captured_at < datetime.combine(self.captured_to + timedelta(days=1), time.min, timezone.utc))
        return out


@dataclass(frozen=True)
class QueuePolicy:
    threshold: float
    """The model's verdict threshold: a score near it is the least certain."""
    qc_sample_rate: float = 0.02
    """Share of clean inspections drawn for quality control, 0-1."""
    claim_ttl: timedelta = timedelta(minutes=10)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def waiting_condition(policy: QueuePolicy):
    sampled = and_(Inspection.verdict == "clean", Inspection.qc_draw < math.ceil(policy.qc_sample_rate * QC_DRAW_RANGE))
    # Nothing to look at: the anonymous copy of an erased bin's inspection (serve/gdpr.py), or a photo retention deleted.
    reviewable = and_(func.coalesce(Inspection.bin_link, "") != ERASED, Inspection.image_deleted_at.is_(None))
    return and_(Inspection.review_state.is_(None), or_(Inspection.verdict.in_(FLAGGED), sampled), reviewable)


def uncertainty_order(policy: QueuePolicy) -> list:
    return [
        case((Inspection.verdict == "inconclusive", 0), else_=1),
        func.abs(Inspection.contamination_score - policy.threshold),
        Inspection.captured_at,
        Inspection.id,
    ]


def _live_claims_of_others(user_id: str, now: datetime):
    return select(ReviewClaim.inspection_id).where(ReviewClaim.user_id != user_id, ReviewClaim.expires_at > now)


def queue(sessions: sessionmaker, policy: QueuePolicy, flt: QueueFilter = QueueFilter(), limit: int = 50) -> list[Inspection]:
    """What waits, most uncertain first (claimed items included: the list shows who holds them)."""
    with sessions() as s:
        stmt = select(Inspection).where(waiting_condition(policy), *flt.conditions()).order_by(*uncertainty_order(policy)).limit(limit)
        return list(s.scalars(stmt))


@dataclass(frozen=True)
class QueueCounts:
    waiting: int
    by_verdict: dict[str, int]
    claimed: int
    reviewed_today: int


def counts(sessions: sessionmaker, policy: QueuePolicy, flt: QueueFilter = QueueFilter(), now: datetime | None = None) -> QueueCounts:
    now = now or _now()
    with sessions() as s:
        rows = s.execute(
            select(Inspection.verdict, func.count()).where(waiting_condition(policy), *flt.conditions()).group_by(Inspection.verdict)
        ).all()
        claimed = s.scalar(
            select(func.count()).select_from(ReviewClaim).join(Inspection, Inspection.id == ReviewClaim.inspection_id)
            .where(ReviewClaim.expires_at > now, waiting_condition(policy), *flt.conditions())
        )  # fmt: skip
        today = datetime.combine(now.date(), time.min, timezone.utc)
        reviewed = s.scalar(select(func.count()).select_from(ReviewEvent).where(ReviewEvent.at >= today))
    by_verdict = {verdict: n for verdict, n in rows}
    return QueueCounts(sum(by_verdict.values()), by_verdict, claimed or 0, reviewed or 0)


def claim_next(sessions: sessionmaker, reviewer: Account, policy: QueuePolicy, flt: QueueFilter = QueueFilter(),
               now: datetime | None = None, exclude: Sequence[str] = ()) -> Inspection | None:  # fmt: skip
    """The reviewer's next item, claimed for `policy.claim_ttl`; their own live claim first; None when nothing waits.

    `exclude`: items the reviewer skipped, offered to others but not again to them.
    """
    now = now or _now()
    skipped = [Inspection.id.not_in(list(exclude))] if exclude else []
    with sessions() as s:
        own = s.scalars(
            select(Inspection).join(ReviewClaim, ReviewClaim.inspection_id == Inspection.id)
            .where(ReviewClaim.user_id == reviewer.id, ReviewClaim.expires_at > now, waiting_condition(policy), *flt.conditions(), *skipped)
            .order_by(*uncertainty_order(policy)).limit(1)
        ).first()  # fmt: skip
        if own is not None:
            return own
        candidates = s.scalars(
            select(Inspection.id)
            .where(waiting_condition(policy), *flt.conditions(), *skipped, Inspection.id.not_in(_live_claims_of_others(reviewer.id, now)))
            .order_by(*uncertainty_order(policy)).limit(20)
        ).all()  # fmt: skip
    for inspection_id in candidates:  # another reviewer may take any of them between the query and the claim
        if claim(sessions, inspection_id, reviewer, policy.claim_ttl, now):
            with sessions() as s:
                return s.get(Inspection, inspection_id)
    return None


def claim(sessions: sessionmaker, inspection_id: str, reviewer: Account, ttl: timedelta, now: datetime | None = None) -> bool:
    """Take (or renew) the claim on one inspection; False when another reviewer holds a live one."""
    now = now or _now()
    try:
        with sessions.begin() as s:
            s.add(ReviewClaim(inspection_id=inspection_id, user_id=reviewer.id, expires_at=now + ttl))
        return True
    except IntegrityError:
        pass  # a claim row exists: ours (renew), or someone's expired one (take over), or someone's live one
    with sessions.begin() as s:
        taken = s.execute(
            update(ReviewClaim)
            .where(ReviewClaim.inspection_id == inspection_id, or_(ReviewClaim.user_id == reviewer.id, ReviewClaim.expires_at <= now))
            .values(user_id=reviewer.id, expires_at=now + ttl)
        )  # fmt: skip
        return taken.rowcount == 1


def release(sessions: sessionmaker, inspection_id: str, reviewer: Account) -> None:
    """Give an item back (the reviewer skips it): it waits for the next reviewer at once."""
    with sessions.begin() as s:
        s.execute(delete(ReviewClaim).where(ReviewClaim.inspection_id == inspection_id, ReviewClaim.user_id == reviewer.id))


@dataclass(frozen=True)
class Box:
    label: str
    box: tuple[float, float, float, float]
    score: float | None = None  # the model's score; None for a box the reviewer drew
    origin: int | None = None  # index of the model detection this box came from; None when drawn

    def as_dict(self) -> dict:
        out = {"label": self.label, "box": [round(v, 1) for v in self.box]}
        if self.score is not None:
            out["score"] = self.score
        if self.origin is not None:
            out["origin"] = self.origin
        return out


@dataclass(frozen=True)
class Decision:
    state: str  # one of REVIEW_STATES
    boxes: Sequence[Box] | None = None
    """The boxes as the reviewer left them; None keeps the model's (or the last review's) unchanged."""
    note: str | None = None
    expected_state: str | None = UNCHANGED
    """The review state the reviewer saw (None: not reviewed); a different one now refuses the decision."""


@dataclass
class Decided:
    inspection: Inspection
    changes: list[dict] = field(default_factory=list)
    consequence: Any = None
    """What `decide`'s `consequence` returned (serve/notices.py: the notice issued, or why none)."""


def check_boxes(boxes: Sequence[Box], class_names: Sequence[str], width: int, height: int, model_count: int) -> None:
    for i, b in enumerate(boxes):
        x0, y0, x1, y1 = b.box
        if b.label not in class_names:
            raise ReviewError(f"box {i + 1}: unknown class {b.label!r}; choose from {', '.join(class_names)}")
        if not all(math.isfinite(v) for v in b.box) or not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ReviewError(f"box {i + 1}: {list(b.box)} is not a box inside the {width} x {height} image")
        if b.origin is not None and not 0 <= b.origin < model_count:
            raise ReviewError(f"box {i + 1}: origin {b.origin} names no detection of the model (it made {model_count})")
    origins = [b.origin for b in boxes if b.origin is not None]
    if len(origins) != len(set(origins)):
        raise ReviewError("two boxes claim to come from the same detection")


def box_changes(before: Sequence[dict], after: Sequence[Box]) -> list[dict]:
    """What the reviewer did to the model's boxes: relabelled, moved, deleted, added (one entry per box)."""
    changes = []
    kept = {b.origin: b for b in after if b.origin is not None}
    for i, old in enumerate(before):
        new = kept.get(i)
        if new is None:
            changes.append({"change": "deleted", "origin": i, "label": old["label"], "box": old["box"]})
            continue
        if new.label != old["label"]:
            changes.append({"change": "relabelled", "origin": i, "from": old["label"], "to": new.label})
        if max(abs(a - b) for a, b in zip(new.box, old["box"], strict=True)) > BOX_MOVE_TOLERANCE:
            changes.append({"change": "moved", "origin": i, "from": old["box"], "to": [round(v, 1) for v in new.box]})
    changes += [{"change": "added", "label": b.label, "box": [round(v, 1) for v in b.box]} for b in after if b.origin is None]
    return changes


def decide(sessions: sessionmaker, inspection_id: str, reviewer: Account, decision: Decision, class_names: Sequence[str],
           now: datetime | None = None, consequence: Callable[[Session, Inspection], Any] | None = None) -> Decided:  # fmt: skip
    """Store a reviewer's decision under their live claim, with its audit event; the claim ends.

    `consequence(session, inspection)` runs in the same transaction once the decision is stored (serve/notices.py
    issues the resident's notice there): the decision and what follows from it are stored together or not at all.
    """
    if decision.state not in REVIEW_STATES:
        raise ReviewError(f"unknown decision {decision.state!r}; choose from {', '.join(REVIEW_STATES)}")
    now = now or _now()
    with sessions.begin() as s:
        # Ending the claim is the first write: of two decisions racing under one claim (a double click), only one
        # deletes the row; the other finds none and stores nothing. SQLite has no SELECT ... FOR UPDATE to do this.
        # An expired claim still counts while it is the reviewer's: nobody took the item, so a slow
        # reviewer's work is not thrown away (taking over rewrites user_id).
        ended = s.execute(delete(ReviewClaim).where(ReviewClaim.inspection_id == inspection_id, ReviewClaim.user_id == reviewer.id))
        if ended.rowcount != 1:
            raise NotClaimed(f"inspection {inspection_id} is not claimed by {reviewer.name} (another reviewer took it over, or it was decided)")
        inspection = s.get(Inspection, inspection_id)
        if decision.expected_state != UNCHANGED and inspection.review_state != decision.expected_state:
            raise ChangedMeanwhile(
                f"inspection {inspection_id} was decided meanwhile ({inspection.review_state} by {inspection.reviewed_by}); reload it to see that decision"
            )
        model_boxes = inspection.detections or []
        before = inspection.reviewed_detections if inspection.reviewed_detections is not None else model_boxes
        if decision.boxes is None:  # kept as they were; the model's own remember which detection they are
            after = [dict(d) for d in before] if inspection.reviewed_detections is not None else [{**d, "origin": i} for i, d in enumerate(before)]
            changes: list[dict] = []
        else:
            check_boxes(decision.boxes, class_names, inspection.image_width, inspection.image_height, len(model_boxes))
            after = [b.as_dict() for b in decision.boxes]
            changes = box_changes(model_boxes, decision.boxes)
        s.add(ReviewEvent(inspection_id=inspection_id, user_name=reviewer.name, at=now, decision=decision.state,
                          state_before=inspection.review_state, detections_before=before, detections_after=after,
                          changes=changes, note=decision.note))  # fmt: skip
        inspection.review_state, inspection.reviewed_detections = decision.state, after
        inspection.reviewed_at, inspection.reviewed_by = now, reviewer.name
        s.flush()
        followed = consequence(s, inspection) if consequence is not None else None
        s.expunge(inspection)
    return Decided(inspection, changes, followed)


def trail(sessions: sessionmaker, inspection_id: str) -> list[ReviewEvent]:
    with sessions() as s:
        return list(s.scalars(select(ReviewEvent).where(ReviewEvent.inspection_id == inspection_id).order_by(ReviewEvent.id)))


def claim_holders(sessions: sessionmaker, inspection_ids: Sequence[str], now: datetime | None = None) -> dict[str, str]:
    """Inspection id -> name of the reviewer holding a live claim on it, for those that are held (one query)."""
    if not inspection_ids:
        return {}
    now = now or _now()
    with sessions() as s:
        rows = s.execute(
            select(ReviewClaim.inspection_id, User.name).join(User, User.id == ReviewClaim.user_id)
            .where(ReviewClaim.inspection_id.in_(list(inspection_ids)), ReviewClaim.expires_at > now)
        ).all()  # fmt: skip
    return {inspection_id: name for inspection_id, name in rows}
