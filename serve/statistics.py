"""Contamination statistics for the staff dashboard: rates per ISO week, district, route, fraction and truck.

Definitions (the same everywhere: dashboard, charts, exports):
- an inspection is *usable* unless its verdict is `inconclusive` (the quality
  gate set the photo aside) or a reviewer marked it `unusable`; unusable ones
  are counted on their own (`inconclusive`), never as clean;
- the *contamination rate* is the share of usable inspections whose model
  verdict is `contaminated`;
- the *confirmed rate* is the share of usable inspections that are a
  confirmed finding: a `contaminated` verdict a reviewer confirmed, or a
  `clean` verdict a reviewer rejected (quality control found a contaminant the
  model missed). Not every flagged bin is reviewed, so it is a lower bound;
  `reviewed` says how many were.

Weeks are ISO weeks on the city's calendar (serve/time_buckets.py says why).
All counting happens in one GROUP BY over (week, district, route, fraction,
truck): that result has one row per truck and week and route, not per
inspection, and every breakdown is folded from it in Python, since the counts
add up. The date filter is a range of local days turned into UTC bounds, which
the index on captured_at serves.

`repeated_findings` lists the bins with at least N confirmed findings within a
window of days; findings whose link to the bin is `uncertain` (a passer-by may
have filled someone else's bin) do not count, as they never escalate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import sessionmaker

from serve.db import Inspection, as_utc
from serve.time_buckets import fetch_all, local_date, local_week, utc_bounds

NOT_USABLE = or_(Inspection.verdict == "inconclusive", Inspection.review_state == "unusable")
USABLE = and_(Inspection.verdict != "inconclusive", func.coalesce(Inspection.review_state, "") != "unusable")
CONFIRMED_FINDING = and_(USABLE, or_(
    and_(Inspection.verdict == "contaminated", Inspection.review_state == "confirmed"),
    and_(Inspection.verdict == "clean", Inspection.review_state == "rejected"),
))  # fmt: skip
REVIEWED = and_(USABLE, Inspection.review_state.in_(("confirmed", "rejected")))


@dataclass(frozen=True)
class StatsFilter:
    """Local days first_day..last_day (inclusive; None: open) and one fraction (None: all)."""

    first_day: date | None = None
    last_day: date | None = None
    fraction: str | None = None

    def __post_init__(self):
        if self.first_day and self.last_day and self.first_day > self.last_day:
            raise ValueError(f"the range starts after it ends ({self.first_day} > {self.last_day})")

    def conditions(self, tz: str) -> list:
        start, end = utc_bounds(self.first_day, self.last_day, tz)
        found = []
        if start is not None:
            found.append(Inspection.captured_at >= start)
        if end is not None:
            found.append(Inspection.captured_at < end)
        if self.fraction:
            found.append(Inspection.fraction == self.fraction)
        return found


@dataclass
class Counts:
    inspections: int = 0
    inconclusive: int = 0
    """Not usable: an inconclusive verdict, or a reviewer's `unusable`."""
    contaminated: int = 0
    """Usable, verdict contaminated."""
    reviewed: int = 0
    """Usable and decided by a reviewer (confirmed or rejected)."""
    confirmed: int = 0
    """Usable and a confirmed finding (module docstring)."""

    @property
    def usable(self) -> int:
        return self.inspections - self.inconclusive

    @property
    def rate(self) -> float | None:
        return self.contaminated / self.usable if self.usable else None

    @property
    def confirmed_rate(self) -> float | None:
        return self.confirmed / self.usable if self.usable else None

    def add(self, other: "Counts") -> None:
        self.inspections += other.inspections
        self.inconclusive += other.inconclusive
        self.contaminated += other.contaminated
        self.reviewed += other.reviewed
        self.confirmed += other.confirmed


@dataclass
class Statistics:
    total: Counts = field(default_factory=Counts)
    by_week: dict[str, Counts] = field(default_factory=dict)
    by_district: dict[str | None, Counts] = field(default_factory=dict)
    by_route: dict[str | None, Counts] = field(default_factory=dict)
    by_fraction: dict[str, Counts] = field(default_factory=dict)
    by_truck: dict[str, Counts] = field(default_factory=dict)

    @staticmethod
    def ordered(table: dict) -> list[tuple]:
        """(key, counts) sorted by key, None (unknown district or route) last."""
        return sorted(table.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))


def count_where(condition) -> object:
    return func.sum(case((condition, 1), else_=0))


def contamination_statistics(sessions: sessionmaker, flt: StatsFilter, tz: str) -> Statistics:
    week = local_week(Inspection.captured_at, tz)
    keys = (week, Inspection.district, Inspection.route, Inspection.fraction, Inspection.truck_id)
    query = (
        select(*keys, func.count(), count_where(NOT_USABLE), count_where(and_(USABLE, Inspection.verdict == "contaminated")),
               count_where(REVIEWED), count_where(CONFIRMED_FINDING))
        .where(*flt.conditions(tz))
        .group_by(*keys)
    )  # fmt: skip
    rows = fetch_all(sessions, query)
    stats = Statistics()
    tables = (stats.by_week, stats.by_district, stats.by_route, stats.by_fraction, stats.by_truck)
    for week_key, district, route, fraction, truck, *numbers in rows:
        counts = Counts(*(int(n or 0) for n in numbers))
        stats.total.add(counts)
        for table, key in zip(tables, (week_key, district, route, fraction, truck), strict=True):
            table.setdefault(key, Counts()).add(counts)
    return stats


@dataclass(frozen=True)
class RepeatedBin:
    bin_id: str
    findings: int
    first: datetime
    last: datetime
    district: str | None
    route: str | None


def repeated_findings(sessions: sessionmaker, flt: StatsFilter, tz: str, min_findings: int, window_days: int,
                      limit: int = 200, today: date | None = None) -> list[RepeatedBin]:  # fmt: skip
    """Bins with at least `min_findings` confirmed findings in the `window_days` local days up to the filter's last day (or today)."""
    last = flt.last_day or today or local_date(datetime.now(timezone.utc), tz)
    window = StatsFilter(last - timedelta(days=window_days - 1), last, flt.fraction)
    findings = func.count()
    query = (
        select(Inspection.bin_id, findings, func.min(Inspection.captured_at), func.max(Inspection.captured_at),
               func.max(Inspection.district), func.max(Inspection.route))
        .where(*window.conditions(tz), CONFIRMED_FINDING, Inspection.bin_id.is_not(None),
               func.coalesce(Inspection.bin_link, "") != "uncertain")
        .group_by(Inspection.bin_id)
        .having(findings >= min_findings)
        .order_by(findings.desc(), func.max(Inspection.captured_at).desc(), Inspection.bin_id)
        .limit(limit)
    )  # fmt: skip
    with sessions() as s:
        rows = s.execute(query).all()
    return [RepeatedBin(b, int(n), as_utc(first), as_utc(last_at), d, r) for b, n, first, last_at, d, r in rows]


def fractions_seen(sessions: sessionmaker, also: Iterable[str] = ()) -> list[str]:
    """The fractions stored inspections have, with `also` (the model's), for a filter's choices."""
    with sessions() as s:
        stored = set(s.scalars(select(Inspection.fraction).distinct()))
    return sorted(stored | set(also))
