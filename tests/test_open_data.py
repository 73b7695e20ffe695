"""Open data (serve/open_data.py): no published row can identify a household; the numbers are worked out by hand.

The weeks: 2026-W47 is Monday 16 to Sunday 22 November 2026 in Berlin, W48
23 to 29 November, W49 starts on Monday 30 November. "Today" is Wednesday
2 December, so W49 is still running and must not be published.
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
from serve.open_data import COLUMNS, DATA_FILE, METADATA_FILE, collect, export_open_data
from serve.statistics import StatsFilter
from tests.conftest import REPO
from tests.serve_helpers import migrated
from tests.stats_helpers import TZ, add_all, inspection

TODAY = date(2026, 12, 2)
K = 3
SECRET_TRUCK, SECRET_ROUTE = "HAM-SECRET-7", "R-SECRET-9"


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
        # Nord, W49 (running): 5 bins -> not published at all
        *[bio(f"2026-11-30T07:0{i}:00+01:00", "contaminated", bin_id=f"E2-SECRET-F{i}") for i in range(5)],
    ])  # fmt: skip


def read_rows(out) -> tuple[list[str], list[dict]]:
    text = (out / DATA_FILE).read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    return reader.fieldnames, list(reader)


def test_cells_are_published_or_suppressed_by_distinct_bins(sessions, tmp_path):
    city(sessions)
    export_open_data(sessions, StatsFilter(), TZ, K, tmp_path, "dl-de/by-2-0", "Stadt Hamm", today=TODAY)
    header, rows = read_rows(tmp_path)
    assert header == list(COLUMNS)
    assert [(r["district"], r["iso_week"], r["fraction"], r["suppressed"]) for r in rows] == [
        ("Nord", "2026-W47", "biowaste", ""),
        ("Nord", "2026-W47", "paper", "fewer than 3 bins"),
        ("Süd", "2026-W47", "biowaste", "fewer than 3 bins"),
        ("Süd", "2026-W48", "biowaste", ""),
        ("unassigned", "2026-W48", "biowaste", ""),
    ]  # fmt: skip
    nord = rows[0]
    assert (nord["week_start"], nord["inspections"], nord["usable"], nord["contaminated"], nord["confirmed"]) == ("2026-11-16", "5", "4", "2", "1")
    assert (nord["rate"], nord["confirmed_rate"]) == ("0.5", "0.25")
    assert (rows[3]["usable"], rows[3]["contaminated"], rows[3]["rate"]) == ("3", "3", "1.0")
    assert rows[4]["inspections"] == "3"  # the 00:30 Monday photo counts in W48, as Berlin's calendar has it
    for suppressed in rows[1:3]:
        assert all(suppressed[c] == "" for c in ("inspections", "usable", "contaminated", "confirmed", "rate", "confirmed_rate"))


def test_no_row_can_identify_a_household(sessions, tmp_path):
    city(sessions)
    export_open_data(sessions, StatsFilter(), TZ, K, tmp_path, "CC-BY-4.0", None, today=TODAY)
    header, rows = read_rows(tmp_path)
    published_text = (tmp_path / DATA_FILE).read_text(encoding="utf-8") + (tmp_path / METADATA_FILE).read_text(encoding="utf-8")

    # No field that names a bin, a place finer than a district, a truck or a time finer than a week.
    forbidden = {"bin", "bin_id", "rfid", "address", "latitude", "longitude", "gps", "truck", "truck_id", "route", "tour", "tour_id",
                 "captured_at", "time", "id", "capture_id", "day"}  # fmt: skip
    assert not forbidden & set(header)
    for secret in ("E2-SECRET", SECRET_TRUCK, SECRET_ROUTE, "51.68", "7.82", "T07:0"):
        assert secret not in published_text

    # Every published cell describes at least K distinct bins, counted here from the database on its own.
    bins = defaultdict(set)
    with sessions() as s:
        for district, fraction, bin_id, captured in s.execute(select(Inspection.district, Inspection.fraction, Inspection.bin_id,
                                                                     Inspection.captured_at)):  # fmt: skip
            local = captured.replace(tzinfo=captured.tzinfo or ZoneInfo("UTC")).astimezone(ZoneInfo(TZ)).isocalendar()
            if bin_id is not None:
                bins[(district or "unassigned", f"{local.year}-W{local.week:02d}", fraction)].add(bin_id)
    published = [r for r in rows if not r["suppressed"]]
    assert published and all(len(bins[(r["district"], r["iso_week"], r["fraction"])]) >= K for r in published)
    assert all(len(bins[(r["district"], r["iso_week"], r["fraction"])]) < K for r in rows if r["suppressed"])

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
    whole = collect(sessions, StatsFilter(date(2026, 11, 16)), TZ, K, today=TODAY)
    cut = collect(sessions, StatsFilter(date(2026, 11, 18), date(2026, 11, 25)), TZ, K, today=TODAY)
    later = collect(sessions, StatsFilter(date(2026, 11, 16)), TZ, K, today=date(2026, 12, 3))
    assert whole.cells == cut.cells == later.cells
    assert (whole.first_day, whole.last_day) == (date(2026, 11, 16), date(2026, 11, 29))
    assert "2026-W49" not in {c.week for c in whole.cells}  # the running week
    on_monday = collect(sessions, StatsFilter(), TZ, K, today=date(2026, 12, 7))  # W49 is over now
    assert "2026-W49" in {c.week for c in on_monday.cells}


def test_metadata_describes_dataset_licence_and_method(sessions, tmp_path):
    city(sessions)
    export_open_data(sessions, StatsFilter(fraction="biowaste"), TZ, K, tmp_path, "dl-de/by-2-0", "Stadt Hamm", today=TODAY)
    meta = json.loads((tmp_path / METADATA_FILE).read_text(encoding="utf-8"))
    assert meta["@type"] == "dcat:Dataset" and meta["dct:title"]
    assert meta["dct:license"] == {"@id": "https://www.govdata.de/dl-de/by-2-0", "dct:identifier": "dl-de/by-2-0",
                                   "dct:title": "Datenlizenz Deutschland – Namensnennung – Version 2.0"}  # fmt: skip
    assert meta["dct:publisher"]["foaf:name"] == "Stadt Hamm"
    assert meta["dct:temporal"] == {"@type": "dct:PeriodOfTime", "dcat:startDate": "2026-11-16", "dcat:endDate": "2026-11-29"}
    assert meta["dct:spatial"] == ["Nord", "Süd", "unassigned"]
    assert meta["method"]["minimum_group_size"]["k"] == 3 and "fewer than 3 distinct bins" in meta["method"]["minimum_group_size"]["rule"]
    assert (meta["method"]["minimum_group_size"]["published"], meta["method"]["minimum_group_size"]["suppressed"]) == (3, 1)
    assert "Model output" in meta["method"]["source"] and "human review" in meta["method"]["source"]
    assert [c["name"] for c in meta["columns"]] == read_rows(tmp_path)[0]
    assert meta["dcat:distribution"][0]["dcat:downloadURL"] == DATA_FILE
    assert not list(tmp_path.glob(".*.tmp"))  # written through temporary files, none left


def test_k_below_two_and_a_range_without_a_complete_week_are_refused(sessions):
    with pytest.raises(ValueError, match=r"--k must be at least 2 \(got 1\)"):
        collect(sessions, StatsFilter(), TZ, 1, today=TODAY)
    with pytest.raises(ValueError, match="no complete week lies in the range"):
        collect(sessions, StatsFilter(date(2026, 11, 30)), TZ, K, today=TODAY)


def cli(tmp_path, *args):
    env = {**os.environ, "BINSIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "BINSIGHT_IMAGE_DIR": str(tmp_path / "img")}
    return subprocess.run([sys.executable, "-m", "serve.cli", "export", "open-data", *args], env=env, cwd=REPO, capture_output=True, text=True)


def test_the_command_writes_the_files_and_says_each_mistake_in_one_line(tmp_path):
    engine = make_engine(migrated(f"sqlite:///{tmp_path / 'cli.db'}"))
    add_all(make_sessionmaker(engine), [inspection("2026-11-16T07:00:00+01:00", bin_id=f"E2-{i}") for i in range(10)])
    engine.dispose()
    done = cli(tmp_path, "--out", str(tmp_path / "portal"), "--to", "2026-11-22")
    assert done.returncode == 0, done.stderr
    assert "1 district-week cells, 0 suppressed (fewer than 10 bins)" in done.stdout  # 10 bins: the default k lets it through
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
    unwritable = cli(tmp_path, "--out", str(blocker / "portal"), "--to", "2026-11-22")
    assert (unwritable.returncode, unwritable.stderr.strip()) == (2, f"cannot write into {blocker / 'portal'}: {blocker} is a file, not a folder")
    assert "Traceback" not in unwritable.stderr and len(unwritable.stderr.strip().splitlines()) == 1
