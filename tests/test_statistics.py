"""Contamination statistics (serve/statistics.py) on SQLite and PostgreSQL, every expected number worked out by hand.

The data: ISO week 2026-W47 is Monday 16 to Sunday 22 November 2026 in
Berlin (CET, UTC+1); W48 starts Monday 23 November.
"""

from datetime import date

import pytest
from sqlalchemy import select

from serve.db import Inspection, make_engine, make_sessionmaker
from serve.statistics import StatsFilter, contamination_statistics, fractions_seen, repeated_findings
from serve.time_buckets import local_week, prepare_connection
from tests.serve_helpers import migrated
from tests.stats_helpers import TZ, add_all, inspection


@pytest.fixture
def sessions(database_url):
    engine = make_engine(migrated(database_url))
    yield make_sessionmaker(engine)
    engine.dispose()


def city_week(sessions) -> None:
    add_all(sessions, [
        # Nord, route R1, truck T1, biowaste, W47
        inspection("2026-11-16T07:00:00+01:00", "clean"),
        inspection("2026-11-16T07:01:00+01:00", "contaminated", "confirmed"),
        inspection("2026-11-16T07:02:00+01:00", "contaminated", "rejected"),
        inspection("2026-11-16T07:03:00+01:00", "contaminated"),
        inspection("2026-11-16T07:04:00+01:00", "inconclusive"),
        # Süd, route R2, truck T2, biowaste, W47
        inspection("2026-11-18T08:00:00+01:00", "clean", "rejected", district="Süd", route="R2", truck="T2"),  # QC found a miss
        inspection("2026-11-18T08:01:00+01:00", "contaminated", "unusable", district="Süd", route="R2", truck="T2"),
        inspection("2026-11-18T08:02:00+01:00", "clean", district="Süd", route="R2", truck="T2"),
        # Nord, R1, T1, paper, W48; the last at 00:30 on Monday in Berlin, still Sunday (W47) in UTC
        inspection("2026-11-24T07:00:00+01:00", "contaminated", "confirmed", fraction="paper"),
        inspection("2026-11-24T07:01:00+01:00", "clean", fraction="paper"),
        inspection("2026-11-23T00:30:00+01:00", "clean", fraction="paper"),
    ])  # fmt: skip


def test_rates_per_week_district_route_fraction_and_truck(sessions):
    city_week(sessions)
    stats = contamination_statistics(sessions, StatsFilter(), TZ)

    # 11 photos; the inconclusive one and the one a reviewer found unusable are not usable: 9.
    # Contaminated verdicts among the usable: 3 in W47 (Nord) and 1 in W48 -> 4 of 9.
    # Confirmed findings: the confirmed W47 one, the QC miss in Süd, the confirmed paper one -> 3 of 9.
    t = stats.total
    assert (t.inspections, t.inconclusive, t.usable, t.contaminated, t.reviewed, t.confirmed) == (11, 2, 9, 4, 4, 3)
    assert t.rate == pytest.approx(4 / 9) and t.confirmed_rate == pytest.approx(3 / 9)

    assert set(stats.by_week) == {"2026-W47", "2026-W48"}
    w47, w48 = stats.by_week["2026-W47"], stats.by_week["2026-W48"]
    assert (w47.inspections, w47.usable, w47.contaminated, w47.confirmed) == (8, 6, 3, 2)  # 3 of 6 -> 0.5
    assert w47.rate == 0.5 and w47.confirmed_rate == pytest.approx(1 / 3)
    assert (w48.inspections, w48.usable, w48.contaminated) == (3, 3, 1)  # the 00:30 Monday photo is W48, as Berlin counts
    assert w48.rate == pytest.approx(1 / 3)

    nord, sued = stats.by_district["Nord"], stats.by_district["Süd"]
    assert (nord.usable, nord.contaminated, nord.confirmed) == (7, 4, 2) and nord.rate == pytest.approx(4 / 7)
    assert (sued.inspections, sued.inconclusive, sued.usable, sued.contaminated, sued.confirmed) == (3, 1, 2, 0, 1)
    assert sued.rate == 0.0 and sued.confirmed_rate == 0.5
    assert stats.by_route["R1"].rate == pytest.approx(4 / 7) and stats.by_route["R2"].rate == 0.0
    assert stats.by_truck["T1"].contaminated == 4 and stats.by_truck["T2"].confirmed == 1
    assert stats.by_fraction["biowaste"].rate == 0.5 and stats.by_fraction["paper"].rate == pytest.approx(1 / 3)


def test_the_filter_keeps_local_days_and_one_fraction(sessions):
    city_week(sessions)
    until_sunday = contamination_statistics(sessions, StatsFilter(last_day=date(2026, 11, 22)), TZ)
    assert until_sunday.total.inspections == 8  # the 00:30 Monday photo is Monday in Berlin, so outside
    from_monday = contamination_statistics(sessions, StatsFilter(first_day=date(2026, 11, 23)), TZ)
    assert from_monday.total.inspections == 3 and set(from_monday.by_week) == {"2026-W48"}
    paper = contamination_statistics(sessions, StatsFilter(fraction="paper"), TZ)
    assert set(paper.by_fraction) == {"paper"} and paper.total.usable == 3 and paper.total.contaminated == 1
    one_day = contamination_statistics(sessions, StatsFilter(date(2026, 11, 18), date(2026, 11, 18)), TZ)
    assert one_day.total.inspections == 3 and set(one_day.by_district) == {"Süd"}
    assert contamination_statistics(sessions, StatsFilter(fraction="residual"), TZ).total.inspections == 0


def test_a_range_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValueError, match=r"the range starts after it ends \(2026-11-23 > 2026-11-22\)"):
        StatsFilter(date(2026, 11, 23), date(2026, 11, 22))


def test_unknown_district_and_route_are_kept_apart_and_listed_last(sessions):
    add_all(sessions, [inspection("2026-11-16T07:00:00+01:00", "contaminated", district=None, route=None),
                       inspection("2026-11-16T07:00:00+01:00", "clean", district="Ost")])  # fmt: skip
    stats = contamination_statistics(sessions, StatsFilter(), TZ)
    assert [key for key, _ in stats.ordered(stats.by_district)] == ["Ost", None]
    assert stats.by_district[None].rate == 1.0 and stats.by_district["Ost"].rate == 0.0


def test_weeks_follow_the_local_calendar_across_the_year_and_summer_time(sessions):
    add_all(sessions, [
        inspection("2026-12-31T23:30:00+00:00"),  # 00:30 on 1 January 2027 in Berlin: ISO week 2026-W53
        inspection("2027-01-04T06:00:00+01:00"),  # Monday: 2027-W01
        inspection("2026-07-05T22:30:00+00:00"),  # 00:30 on Monday 6 July (CEST, UTC+2): W28, not Sunday's W27
    ])  # fmt: skip
    with sessions() as s:
        connection = s.connection()
        prepare_connection(connection)
        weeks = sorted(connection.execute(select(local_week(Inspection.captured_at, TZ))).scalars())
    assert weeks == ["2026-W28", "2026-W53", "2027-W01"]


def test_repeated_findings_count_confirmed_linked_findings_within_the_window(sessions):
    add_all(sessions, [
        inspection("2026-11-02T07:00:00+01:00", "contaminated", "confirmed", bin_id="E2-A", district="Nord"),
        inspection("2026-11-16T07:00:00+01:00", "contaminated", "confirmed", bin_id="E2-A", district="Nord"),
        inspection("2026-11-17T07:00:00+01:00", "clean", "rejected", bin_id="E2-A", district="Nord"),  # a QC miss: a finding too
        inspection("2026-11-16T07:00:00+01:00", "contaminated", "confirmed", bin_id="E2-B"),
        inspection("2026-11-17T07:00:00+01:00", "contaminated", "rejected", bin_id="E2-B"),  # not a finding
        inspection("2026-11-18T07:00:00+01:00", "contaminated", bin_id="E2-B"),  # not reviewed: not confirmed
        inspection("2026-11-16T07:00:00+01:00", "contaminated", "confirmed", bin_id="E2-C"),
        inspection("2026-11-17T07:00:00+01:00", "contaminated", "confirmed", bin_id="E2-C", bin_link="uncertain"),  # a passer-by?
        inspection("2025-10-01T07:00:00+02:00", "contaminated", "confirmed", bin_id="E2-D"),  # over a year earlier
        inspection("2026-11-16T07:00:00+01:00", "contaminated", "confirmed", bin_id="E2-D"),
        inspection("2026-11-16T07:00:00+01:00", "contaminated", "confirmed", bin_id="E2-E", fraction="paper"),
        inspection("2026-11-17T07:00:00+01:00", "contaminated", "confirmed", bin_id="E2-E", fraction="paper"),
    ])  # fmt: skip
    flt = StatsFilter(last_day=date(2026, 11, 20))
    found = repeated_findings(sessions, flt, TZ, min_findings=2, window_days=365)
    assert [(b.bin_id, b.findings) for b in found] == [("E2-A", 3), ("E2-E", 2)]
    assert found[0].district == "Nord" and found[0].first.date() == date(2026, 11, 2)
    biowaste = repeated_findings(sessions, StatsFilter(last_day=date(2026, 11, 20), fraction="biowaste"), TZ, 2, 365)
    assert [b.bin_id for b in biowaste] == ["E2-A"]
    assert [b.bin_id for b in repeated_findings(sessions, flt, TZ, 3, 365)] == ["E2-A"]
    # A window of 10 days back from 20 November starts on the 11th: E2-A's finding of the 2nd drops out.
    assert [(b.bin_id, b.findings) for b in repeated_findings(sessions, flt, TZ, 2, 10)] == [("E2-A", 2), ("E2-E", 2)]
    # With 800 days E2-D's finding of 2025 counts too.
    assert "E2-D" in [b.bin_id for b in repeated_findings(sessions, flt, TZ, 2, 800)]


def test_fractions_seen_adds_the_models_to_the_stored(sessions):
    add_all(sessions, [inspection("2026-11-16T07:00:00+01:00", fraction="paper")])
    assert fractions_seen(sessions, ["biowaste"]) == ["biowaste", "paper"]


def test_the_same_query_in_another_zone_is_compiled_anew(sessions):
    add_all(sessions, [inspection("2026-11-22T23:30:00+00:00")])  # Sunday in London and UTC, Monday 00:30 in Berlin
    with sessions() as s:
        connection = s.connection()
        prepare_connection(connection)
        berlin = connection.execute(select(local_week(Inspection.captured_at, TZ))).scalar()
        utc = connection.execute(select(local_week(Inspection.captured_at, "UTC"))).scalar()
    assert (berlin, utc) == ("2026-W48", "2026-W47")


def test_an_unknown_zone_is_refused_in_one_line():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        local_week(Inspection.captured_at, "Mars/Olympus")
