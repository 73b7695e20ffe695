"""Open data (serve/open_data.py): no published row can identify a household; the numbers are worked out by hand.

The weeks: 2026-W47 is Monday 16 to Sunday 22 November 2026 in Berlin, W48
23 to 29 November, W49 starts on Monday 30 November. "Today" is Wednesday
2 December, so W49 is still running and must not be published. The
hand-worked tests publish exactly (EXACT: no rounding, no grace period);
the tests of rounding and the grace period use the defaults.
"""

import csv
import io
import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from serve.db import Inspection, make_engine, make_sessionmaker
from serve.open_data import COLUMNS, DATA_FILE, METADATA_FILE, Rounding, collect, export_open_data
from serve.statistics import StatsFilter
from tests.conftest import REPO
from tests.serve_helpers import migrated
from tests.stats_helpers import TZ, add_all, inspection

TODAY = date(2026, 12, 2)
K = 3
SECRET_TRUCK, SECRET_ROUTE = "HAM-SECRET-7", "R-SECRET-9"
EXACT = {"grace_days": 0, "rounding": Rounding(base=1, rate_step=0)}


@pytest.fixture
def sessions(database_url):
    engine = make_engine(migrated(database_url))
    yield make_sessionmaker(engine)
    engine.dispose()


def city(sessions) -> None:
    def bio(when, verdict="clean", review=None, **kw):
        kw = {"truck": SECRET_TRUCK, "route": SECRET_ROUTE, **kw}
        return inspection(when, verdict, review, **kw)

    add_all(sessions, [
        # Nord, W47, biowaste: 4 bins, 5 photos; usable 4 (one inconclusive), contaminated 2, confirmed 1 -> published
        bio("2026-11-16T07:00:00+01:00", "contaminated", "confirmed", bin_id="E2-SECRET-A1"),
        bio("2026-11-18T07:00:00+01:00", "clean", bin_id="E2-SECRET-A1"),
        bio("2026-11-16T07:01:00+01:00", "contaminated", bin_id="E2-SECRET-A2"),
        bio("2026-11-16T07:02:00+01:00", "clean", bin_id="E2-SECRET-A3"),
        bio("2026-11-16T07:03:00+01:00", "inconclusive", bin_id="E2-SECRET-A4"),
        # Nord, W47, paper: 2 bins -> suppressed
        bio("2026-11-17T07:00:00+01:00", "contaminated", "confirmed", bin_id="E2-SECRET-B1", fraction="paper"),
        bio("2026-11-17T07:01:00+01:00", "clean", bin_id="E2-SECRET-B2", fraction="paper"),
        # Süd, W47, biowaste: 4 photos but 1 bin (3 photos) and an unread RFID -> 1 bin, suppressed
        bio("2026-11-19T07:00:00+01:00", "contaminated", "confirmed", bin_id="E2-SECRET-C1", district="Süd"),
        bio("2026-11-19T07:01:00+01:00", "contaminated", bin_id="E2-SECRET-C1", district="Süd"),
        bio("2026-11-19T07:02:00+01:00", "contaminated", bin_id="E2-SECRET-C1", district="Süd"),
        bio("2026-11-19T07:03:00+01:00", "clean", bin_id=None, district="Süd"),
        # Süd, W48, biowaste: 3 bins, all contaminated -> published, rate 1
        *[bio(f"2026-11-24T07:0{i}:00+01:00", "contaminated", bin_id=f"E2-SECRET-D{i}", district="Süd") for i in range(3)],
        # No district, W48, biowaste: 3 bins -> published as "unassigned"; one at 00:30 on Monday 23rd (Sunday in UTC)
        bio("2026-11-23T00:30:00+01:00", "clean", bin_id="E2-SECRET-E0", district=None),
        *[bio(f"2026-11-25T07:0{i}:00+01:00", "clean", bin_id=f"E2-SECRET-E{i}", district=None) for i in (1, 2)],
        # Ost, W47, biowaste: 3 bins, but 2 of them inconclusive: usable 1, contaminated 1 would be one household -> suppressed
        bio("2026-11-20T07:00:00+01:00", "inconclusive", bin_id="E2-SECRET-G1", district="Ost"),
        bio("2026-11-20T07:01:00+01:00", "inconclusive", bin_id="E2-SECRET-G2", district="Ost"),
        bio("2026-11-20T07:02:00+01:00", "contaminated", bin_id="E2-SECRET-G3", district="Ost"),
        # Nord, W49 (running): 5 bins -> not published at all
        *[bio(f"2026-11-30T07:0{i}:00+01:00", "contaminated", bin_id=f"E2-SECRET-F{i}") for i in range(5)],
    ])  # fmt: skip


def read_rows(out) -> tuple[list[str], list[dict]]:
    text = (out / DATA_FILE).read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    return reader.fieldnames, list(reader)


def test_cells_are_published_or_suppressed_by_distinct_bins(sessions, tmp_path):
    city(sessions)
    export_open_data(sessions, StatsFilter(), TZ, K, tmp_path, "dl-de/by-2-0", "Stadt Hamm", today=TODAY, **EXACT)
    header, rows = read_rows(tmp_path)
    assert header == list(COLUMNS)
    assert [(r["district"], r["iso_week"], r["fraction"], r["suppressed"]) for r in rows] == [
        ("Nord", "2026-W47", "biowaste", ""),
        ("Nord", "2026-W47", "paper", "fewer than 3 bins with usable photos"),
        ("Ost", "2026-W47", "biowaste", "fewer than 3 bins with usable photos"),
        ("Süd", "2026-W47", "biowaste", "fewer than 3 bins with usable photos"),
        ("Süd", "2026-W48", "biowaste", ""),
        ("unassigned", "2026-W48", "biowaste", ""),
    ]  # fmt: skip
    nord = rows[0]
    assert (nord["week_start"], nord["inspections"], nord["usable"], nord["contaminated"], nord["confirmed"]) == ("2026-11-16", "5", "4", "2", "1")
    assert (nord["rate"], nord["confirmed_rate"]) == ("0.5", "0.25")
    assert (rows[4]["usable"], rows[4]["contaminated"], rows[4]["rate"]) == ("3", "3", "1.0")
    assert rows[5]["inspections"] == "3"  # the 00:30 Monday photo counts in W48, as Berlin's calendar has it
    for suppressed in rows[1:4]:
        assert all(suppressed[c] == "" for c in ("inspections", "usable", "contaminated", "confirmed", "rate", "confirmed_rate"))


def test_no_row_can_identify_a_household(sessions, tmp_path):
    city(sessions)
    export_open_data(sessions, StatsFilter(), TZ, K, tmp_path, "CC-BY-4.0", None, today=TODAY, **EXACT)
    header, rows = read_rows(tmp_path)
    published_text = (tmp_path / DATA_FILE).read_text(encoding="utf-8") + (tmp_path / METADATA_FILE).read_text(encoding="utf-8")

    # No field that names a bin, a place finer than a district, a truck or a time finer than a week.
    forbidden = {"bin", "bin_id", "rfid", "address", "latitude", "longitude", "gps", "truck", "truck_id", "route", "tour", "tour_id",
                 "captured_at", "time", "id", "capture_id", "day"}  # fmt: skip
    assert not forbidden & set(header)
    for secret in ("E2-SECRET", SECRET_TRUCK, SECRET_ROUTE, "51.68", "7.82", "T07:0"):
        assert secret not in published_text

    # Every published figure describes at least K distinct bins, counted here from the database on its own: `usable`,
    # `contaminated`, `confirmed` and the rates describe the usable photos, so their bins are what count.
    bins, usable_bins = defaultdict(set), defaultdict(set)
    with sessions() as s:
        for district, fraction, bin_id, captured, verdict, state in s.execute(select(
                Inspection.district, Inspection.fraction, Inspection.bin_id, Inspection.captured_at, Inspection.verdict,
                Inspection.review_state)):  # fmt: skip
            local = captured.replace(tzinfo=captured.tzinfo or ZoneInfo("UTC")).astimezone(ZoneInfo(TZ)).isocalendar()
            cell = (district or "unassigned", f"{local.year}-W{local.week:02d}", fraction)
            if bin_id is not None:
                bins[cell].add(bin_id)
                if verdict != "inconclusive" and state != "unusable":
                    usable_bins[cell].add(bin_id)
    key = lambda r: (r["district"], r["iso_week"], r["fraction"])  # noqa: E731
    published = [r for r in rows if not r["suppressed"]]
    assert published and all(len(usable_bins[key(r)]) >= K and len(bins[key(r)]) >= K for r in published)
    assert all(len(usable_bins[key(r)]) < K for r in rows if r["suppressed"])
    # 2 inconclusive bins and 1 contaminated one: K bins in all, yet "usable 1, contaminated 1, rate 1" would be one household.
    ost = next(r for r in rows if key(r) == ("Ost", "2026-W47", "biowaste"))
    assert len(bins[key(ost)]) == K and len(usable_bins[key(ost)]) == 1
    assert ost["suppressed"] and (ost["usable"], ost["contaminated"], ost["rate"]) == ("", "", "")

    # No totals to subtract from: every row is one (district, week, fraction) cell, each once, none a sum over the others.
    keys = [(r["district"], r["iso_week"], r["fraction"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert not {r["district"] for r in rows} & {"", "all", "total", "*"} and not {r["fraction"] for r in rows} & {"", "all", "total", "*"}
    # The attacker's subtraction: Nord's W47 inspections from the published rows (5) against what Nord really had (7):
    # the 2 photos of the suppressed paper cell appear in no published number, neither alone nor as a difference.
    nord_w47 = [int(r["inspections"]) for r in published if (r["district"], r["iso_week"]) == ("Nord", "2026-W47")]
    assert nord_w47 == [5]
    assert "2" not in {r["inspections"] for r in published if r["district"] == "Nord"}
    metadata = json.loads((tmp_path / METADATA_FILE).read_text(encoding="utf-8"))
    assert "inspections" not in json.dumps(metadata["method"]["minimum_group_size"])  # cell counts only, no sums of photos


def test_two_exports_cannot_be_subtracted_from_each_other(sessions, tmp_path):
    """A --from in mid-week, or an export a day later, gives the same cells: their difference is never a small group."""
    city(sessions)
    whole = collect(sessions, StatsFilter(date(2026, 11, 16)), TZ, K, today=TODAY, **EXACT)
    cut = collect(sessions, StatsFilter(date(2026, 11, 18), date(2026, 11, 25)), TZ, K, today=TODAY, **EXACT)
    later = collect(sessions, StatsFilter(date(2026, 11, 16)), TZ, K, today=date(2026, 12, 3), **EXACT)
    assert whole.cells == cut.cells == later.cells
    assert (whole.first_day, whole.last_day) == (date(2026, 11, 16), date(2026, 11, 29))
    assert "2026-W49" not in {c.week for c in whole.cells}  # the running week
    on_monday = collect(sessions, StatsFilter(), TZ, K, today=date(2026, 12, 7), **EXACT)  # W49 is over now
    assert "2026-W49" in {c.week for c in on_monday.cells}


def test_metadata_describes_dataset_licence_and_method(sessions, tmp_path):
    city(sessions)
    export_open_data(sessions, StatsFilter(fraction="biowaste"), TZ, K, tmp_path, "dl-de/by-2-0", "Stadt Hamm", today=TODAY, **EXACT)
    meta = json.loads((tmp_path / METADATA_FILE).read_text(encoding="utf-8"))
    assert meta["@type"] == "dcat:Dataset" and meta["dct:title"]
    assert meta["dct:license"] == {"@id": "https://www.govdata.de/dl-de/by-2-0", "dct:identifier": "dl-de/by-2-0",
                                   "dct:title": "Datenlizenz Deutschland – Namensnennung – Version 2.0"}  # fmt: skip
    assert meta["dct:publisher"]["foaf:name"] == "Stadt Hamm"
    assert meta["dct:temporal"] == {"@type": "dct:PeriodOfTime", "dcat:startDate": "2026-11-16", "dcat:endDate": "2026-11-29"}
    assert meta["dct:spatial"] == ["Nord", "Ost", "Süd", "unassigned"]
    assert meta["method"]["minimum_group_size"]["k"] == 3 and "fewer than 3 distinct bins" in meta["method"]["minimum_group_size"]["rule"]
    assert (meta["method"]["minimum_group_size"]["published"], meta["method"]["minimum_group_size"]["suppressed"]) == (3, 2)
    assert "Model output" in meta["method"]["source"] and "human review" in meta["method"]["source"]
    assert [c["name"] for c in meta["columns"]] == read_rows(tmp_path)[0]
    assert meta["dcat:distribution"][0]["dcat:downloadURL"] == DATA_FILE
    assert not list(tmp_path.glob(".*.tmp"))  # written through temporary files, none left


def test_k_below_two_and_a_range_without_a_complete_week_are_refused(sessions):
    with pytest.raises(ValueError, match=r"--k must be at least 2 \(got 1\)"):
        collect(sessions, StatsFilter(), TZ, 1, today=TODAY)
    with pytest.raises(ValueError, match="no complete week lies in the range"):
        collect(sessions, StatsFilter(date(2026, 11, 30)), TZ, K, today=TODAY, **EXACT)
    with pytest.raises(ValueError, match=r"a week is published 28 days after it ends: the last one ends on 2026-11-01\)"):
        collect(sessions, StatsFilter(date(2026, 11, 16)), TZ, K, today=TODAY)  # W47 ended 10 days ago: not settled yet


def cli(tmp_path, *args):
    env = {**os.environ, "BINSIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "BINSIGHT_IMAGE_DIR": str(tmp_path / "img")}
    return subprocess.run([sys.executable, "-m", "serve.cli", "export", "open-data", *args], env=env, cwd=REPO, capture_output=True, text=True)


def test_the_command_writes_the_files_and_says_each_mistake_in_one_line(tmp_path):
    engine = make_engine(migrated(f"sqlite:///{tmp_path / 'cli.db'}"))
    # Weeks long over: the default grace period (28 days) has passed whenever this runs.
    add_all(make_sessionmaker(engine), [inspection("2026-10-12T07:00:00+02:00", bin_id=f"E2-{i}") for i in range(10)])
    engine.dispose()
    done = cli(tmp_path, "--out", str(tmp_path / "portal"), "--to", "2026-10-18")
    assert done.returncode == 0, done.stderr
    assert "1 district-week cells, 0 suppressed (fewer than 10 bins, or one bin dominant); weeks up to 2026-10-18 (28 days' grace)" \
        in done.stdout  # 10 bins: the default k lets it through
    assert "BINSIGHT_OPEN_DATA_PUBLISHER" in done.stdout
    assert read_rows(tmp_path / "portal")[1][0]["inspections"] == "10"
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for args, message in [
        (["--k", "1"], "--k must be at least 2 (got 1): a cell of one bin describes one household"),
        (["--from", "2026-02-30"], "--from '2026-02-30' is not a date (YYYY-MM-DD)"),
        (["--from", "2026-11-20", "--to", "2026-11-10"], "the range starts after it ends (2026-11-20 > 2026-11-10)"),
    ]:  # fmt: skip
        r = cli(tmp_path, "--out", str(tmp_path / "x"), *args)
        assert (r.returncode, r.stderr.strip()) == (2, message)
    unwritable = cli(tmp_path, "--out", str(blocker / "portal"), "--to", "2026-10-18")
    assert (unwritable.returncode, unwritable.stderr.strip()) == (2, f"cannot write into {blocker / 'portal'}: {blocker} is a file, not a folder")
    assert "Traceback" not in unwritable.stderr and len(unwritable.stderr.strip().splitlines()) == 1


def test_nine_inconclusive_bins_and_one_contaminated_are_not_published_at_the_default_k(sessions):
    """The reviewer's case: 10 bins at k=10, but only one of them usable. Counting all bins would publish 'rate 1.0'."""
    add_all(sessions, [inspection(f"2026-11-17T07:0{i}:00+01:00", "inconclusive", bin_id=f"E2-DARK-{i}") for i in range(9)]
            + [inspection("2026-11-17T07:09:00+01:00", "contaminated", bin_id="E2-THE-ONE")])  # fmt: skip
    dataset = collect(sessions, StatsFilter(), TZ, 10, today=TODAY, **EXACT)
    [cell] = dataset.cells
    assert (cell.bins, cell.usable_bins, cell.counts.usable, cell.counts.contaminated) == (10, 1, 1, 1)
    assert dataset.suppressed(cell) == "fewer than 10 bins with usable photos"


def test_a_cell_whose_contamination_is_one_bins_repeated_findings_is_suppressed(sessions):
    clean = [inspection(f"2026-11-17T08:0{i}:00+01:00", "clean", bin_id=f"E2-CLEAN-{i}") for i in range(4)]
    add_all(sessions, clean + [
        # Süd: one bin photographed three times, contaminated each time, and one other contaminated bin: 3 of 4 are one household's
        *[inspection(f"2026-11-17T07:0{i}:00+01:00", "contaminated", bin_id="E2-AGAIN", district="Süd") for i in range(3)],
        inspection("2026-11-17T07:05:00+01:00", "contaminated", bin_id="E2-ONCE", district="Süd"),
        *[inspection(f"2026-11-17T08:0{i}:00+01:00", "clean", bin_id=f"E2-S-CLEAN-{i}", district="Süd") for i in range(3)],
        # Nord: one contaminated photo among 5 bins is "one of at least k bins": published
        inspection("2026-11-17T07:00:00+01:00", "contaminated", bin_id="E2-N-ONCE"),
    ])  # fmt: skip
    dataset = collect(sessions, StatsFilter(), TZ, 5, today=TODAY, **EXACT)
    why = {c.district: dataset.suppressed(c) for c in dataset.cells}
    assert why == {"Süd": "one bin holds most contaminated photos", "Nord": ""}


def test_a_late_change_never_shows_as_a_one_bin_difference_between_two_exports(sessions, tmp_path):
    """2026-W40 is 28 September to 4 October. A late upload comes before the grace period ends; a late review after it."""
    week = [inspection(f"2026-09-29T07:{i:02d}:00+02:00", "contaminated" if i < 2 else "clean", bin_id=f"E2-W40-{i}") for i in range(11)]
    first = add_all(sessions, week)
    in_grace = collect(sessions, StatsFilter(), TZ, 10, today=date(2026, 10, 7))  # 3 days after the week
    assert "2026-W40" not in {c.week for c in in_grace.cells} and in_grace.last_day == date(2026, 9, 6)
    # The truck was offline: its photo of a 12th bin arrives on 9 October, before the week is ever published.
    add_all(sessions, [inspection("2026-10-02T07:00:00+02:00", "contaminated", bin_id="E2-W40-LATE")])

    def export(name: str) -> dict:
        export_open_data(sessions, StatsFilter(date(2026, 9, 28)), TZ, 10, tmp_path / name, "CC0-1.0", None, today=date(2026, 11, 4))
        [row] = [r for r in read_rows(tmp_path / name)[1] if r["iso_week"] == "2026-W40"]
        return row

    published = export("before")
    assert (published["inspections"], published["usable"], published["contaminated"], published["confirmed"]) == ("10", "10", "5", "0")
    assert (published["rate"], published["confirmed_rate"]) == ("0.25", "0.0")  # 3/12 and 0/12, from the true counts
    # A reviewer confirms a finding in the published week: the true `confirmed` goes from 0 to 1.
    with sessions.begin() as s:
        s.get(Inspection, first[0]).review_state = "confirmed"
    later = export("after")
    for column in ("inspections", "usable", "contaminated", "confirmed"):
        assert later[column] == published[column]  # rounded to 5: a one-bin change inside a step does not show
    step = round(float(later["confirmed_rate"]) - float(published["confirmed_rate"]), 4)
    assert step == 0.1 and round(step / 0.05, 6).is_integer()  # 1/12 seen only as whole steps of 0.05, as 1 of 12 or 2 of 24 would be
