"""A bin's escalation: which level its next notice gets, when its record resets, when a case is closed.

Pure logic on a bin's earlier notices; serve/notices.py reads them from the
database and stores the result. The rules, with a fraction's `window_days`
as the window (serve/defaults/notices/escalation.yaml):

- Withdrawn notices (an appeal upheld, a mistake) do not count, ever.
- The bin's record is its run of notices in which each came within the
  window of the one before. A notice issued more than the window after the
  previous one starts a new run.
- The next notice's level is the run's length + 1, capped at the last level;
  once the window has passed since the last notice, it is 1 again.
- A case (a confirmed finding and its notice) is closed when its notice was
  withdrawn, or when the bin's record has reset: the window has passed since
  the bin's last notice with no newer one. Retention keeps a confirmed
  finding's photo until then (serve/retention.py).

Times are the notices' issue times (the confirming decision), not capture
times: reviews may come in any order, issue times only grow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class PastNotice:
    issued_at: datetime
    level: int
    withdrawn: bool = False


def current_run(notices: Sequence[PastNotice], window: timedelta) -> list[PastNotice]:
    """The bin's record: the latest run of counted notices, each within `window` of the one before (oldest first)."""
    counted = sorted((n for n in notices if not n.withdrawn), key=lambda n: n.issued_at)
    run: list[PastNotice] = []
    for notice in counted:
        if run and notice.issued_at - run[-1].issued_at > window:
            run = []
        run.append(notice)
    return run


def resets_at(notices: Sequence[PastNotice], window: timedelta) -> datetime | None:
    """When the bin's record resets to level 1 without a new notice; None when it has no counted notice."""
    run = current_run(notices, window)
    return run[-1].issued_at + window if run else None


def next_level(notices: Sequence[PastNotice], window: timedelta, levels: int, now: datetime) -> int:
    """The level (1..levels) of a notice issued at `now`, given the bin's earlier notices."""
    if levels < 1:
        raise ValueError("an escalation needs at least one level")
    reset = resets_at(notices, window)
    if reset is None or now > reset:
        return 1
    return min(len(current_run(notices, window)) + 1, levels)


def current_level(notices: Sequence[PastNotice], window: timedelta, levels: int, now: datetime) -> int:
    """The bin's level now: that of its record's last notice (capped), 0 when it has none or the record has reset."""
    run = current_run(notices, window)
    if not run or now > run[-1].issued_at + window:
        return 0
    return min(len(run), levels)


def case_closed(own: PastNotice, bin_notices: Sequence[PastNotice], window: timedelta, now: datetime) -> bool:
    """Whether a confirmed finding's case is over: its notice withdrawn, or the bin's record reset since.

    `bin_notices` are all of the bin's notices of that fraction, `own` among them. (A finding without a notice
    opened no case; serve/retention.py says what happens to its photo.)
    """
    if own.withdrawn:
        return True
    reset = resets_at(bin_notices, window)
    return reset is None or now > reset
