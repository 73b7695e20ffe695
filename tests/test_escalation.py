"""The escalation rules on a bin's earlier notices (serve/escalation.py), with times given."""

from datetime import datetime, timedelta, timezone

from serve.escalation import PastNotice, case_closed, current_level, next_level, resets_at

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
WINDOW = timedelta(days=365)


def notices(*days: int, withdrawn: tuple[int, ...] = ()) -> list[PastNotice]:
    return [PastNotice(T0 + timedelta(days=d), i + 1, i in withdrawn) for i, d in enumerate(days)]


def test_each_finding_within_the_window_climbs_one_level_up_to_the_last():
    history: list[PastNotice] = []
    levels = []
    for day in (0, 30, 60, 90, 120):
        level = next_level(history, WINDOW, 3, T0 + timedelta(days=day))
        levels.append(level)
        history.append(PastNotice(T0 + timedelta(days=day), level))
    assert levels == [1, 2, 3, 3, 3]


def test_the_record_resets_once_the_window_has_passed_since_the_last_notice():
    earlier = notices(0, 100)
    assert resets_at(earlier, WINDOW) == T0 + timedelta(days=465)
    assert next_level(earlier, WINDOW, 3, T0 + timedelta(days=465)) == 3  # on the day itself: still within
    assert next_level(earlier, WINDOW, 3, T0 + timedelta(days=466)) == 1
    assert current_level(earlier, WINDOW, 3, T0 + timedelta(days=466)) == 0


def test_a_gap_longer_than_the_window_starts_a_new_record():
    earlier = notices(0, 10, 400)  # the third came after the window: a record of one
    assert next_level(earlier, WINDOW, 3, T0 + timedelta(days=410)) == 2
    assert current_level(earlier, WINDOW, 3, T0 + timedelta(days=410)) == 1


def test_withdrawn_notices_do_not_count():
    earlier = notices(0, 10, withdrawn=(1,))
    assert next_level(earlier, WINDOW, 3, T0 + timedelta(days=20)) == 2
    assert next_level(notices(0, withdrawn=(0,)), WINDOW, 3, T0 + timedelta(days=1)) == 1
    assert resets_at(notices(0, withdrawn=(0,)), WINDOW) is None


def test_a_case_closes_when_withdrawn_or_when_the_bins_record_resets():
    first, second = notices(0, 200)
    both = [first, second]
    assert not case_closed(first, both, WINDOW, T0 + timedelta(days=500))  # the second notice keeps the record open
    assert case_closed(first, both, WINDOW, T0 + timedelta(days=566))
    assert case_closed(PastNotice(first.issued_at, 1, withdrawn=True), both, WINDOW, T0 + timedelta(days=1))
