"""Staff exports for BI tools (serve/exports.py, `binsight export inspections|loads`): rows, formats, filters, failures."""

import csv
import io
import json
import os
import subprocess
import sys
from datetime import date

import pytest

from serve import exports
from serve.db import make_engine, make_sessionmaker
from serve.exports import INSPECTION_COLUMNS, LOAD_COLUMNS, export_inspections, export_loads
from serve.load_grade import grade_loads, load_materials, policy_from_files
from serve.statistics import StatsFilter
from tests.conftest import REPO
from tests.serve_helpers import migrated
from tests.stats_helpers import TZ, add_all, box, inspection


@pytest.fixture
def sessions(database_url):
    engine = make_engine(migrated(database_url))
    yield make_sessionmaker(engine)
    engine.dispose()


def three(sessions) -> list[str]:
    return add_all(sessions, [
        inspection("2026-11-16T07:00:00+01:00", "contaminated", "confirmed", bin_id="E2-1", truck="HAM-1", tour="1", route="R1",
                   detections=[box("can", 0, 0, 10, 10), box("glass", 0, 0, 5, 5), box("plastic_bag", 50, 50, 60, 60, 0.35, contaminant=False)]),
        inspection("2026-11-23T00:30:00+01:00", "clean", bin_id="E2-2", gps=None, district="=HYPERLINK(\"x\")"),
        inspection("2026-11-24T07:00:00+01:00", "inconclusive", fraction="paper", bin_id=None),
    ])  # fmt: skip


def read_csv(path):
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_inspections_as_csv_one_row_each_with_local_day_and_week(sessions, tmp_path):
    ids = three(sessions)
    assert export_inspections(sessions, StatsFilter(), TZ, "csv", tmp_path / "all.csv") == 3
    rows = read_csv(tmp_path / "all.csv")
    assert list(rows[0]) == list(INSPECTION_COLUMNS)
    first, second, third = rows
    assert (first["id"], first["bin_id"], first["truck_id"], first["tour_id"], first["route"]) == (ids[0], "E2-1", "HAM-1", "1", "R1")
    assert (first["verdict"], first["review_state"], first["contamination_score"]) == ("contaminated", "confirmed", "0.9")
    assert first["contaminants"] == "can;glass" and first["detections"] == "3"  # the faint bag was not a contaminant
    assert (first["captured_at"], first["local_day"], first["iso_week"]) == ("2026-11-16T06:00:00+00:00", "2026-11-16", "2026-W47")
    assert (first["latitude"], first["longitude"]) == ("51.68", "7.82")
    # 00:30 on Monday in Berlin is Sunday 23:30 in UTC: the local day and ISO week are Monday's.
    assert (second["captured_at"], second["local_day"], second["iso_week"]) == ("2026-11-22T23:30:00+00:00", "2026-11-23", "2026-W48")
    assert second["latitude"] == "" and second["district"] == "'=HYPERLINK(\"x\")"  # a spreadsheet shows it, never runs it
    assert third["bin_id"] == "" and third["verdict"] == "inconclusive" and third["quality_issue"] == "too_dark"


def test_the_filter_selects_local_days_and_a_fraction(sessions, tmp_path):
    three(sessions)
    assert export_inspections(sessions, StatsFilter(last_day=date(2026, 11, 22)), TZ, "csv", tmp_path / "a.csv") == 1
    assert export_inspections(sessions, StatsFilter(first_day=date(2026, 11, 23)), TZ, "csv", tmp_path / "b.csv") == 2
    assert export_inspections(sessions, StatsFilter(fraction="paper"), TZ, "csv", tmp_path / "c.csv") == 1
    assert [r["fraction"] for r in read_csv(tmp_path / "c.csv")] == ["paper"]


def test_inspections_as_geojson_points_at_the_capture(sessions, tmp_path):
    ids = three(sessions)
    export_inspections(sessions, StatsFilter(), TZ, "geojson", tmp_path / "all.geojson")
    collection = json.loads((tmp_path / "all.geojson").read_text(encoding="utf-8"))
    assert collection["type"] == "FeatureCollection" and [f["id"] for f in collection["features"]] == ids
    first, second, _ = collection["features"]
    assert first["type"] == "Feature" and first["geometry"] == {"type": "Point", "coordinates": [7.82, 51.68]}  # lon, lat
    assert first["properties"]["bin_id"] == "E2-1" and "latitude" not in first["properties"]
    assert second["geometry"] is None  # no GPS: a feature without a place, as RFC 7946 allows
    empty = tmp_path / "none.geojson"
    assert export_inspections(sessions, StatsFilter(fraction="residual"), TZ, "geojson", empty) == 0
    assert json.loads(empty.read_text()) == {"type": "FeatureCollection", "features": []}


def test_a_failed_export_leaves_the_earlier_file_whole_and_no_temporary_file(sessions, tmp_path, monkeypatch):
    three(sessions)
    out = tmp_path / "bi" / "inspections.csv"
    export_inspections(sessions, StatsFilter(), TZ, "csv", out)
    before = out.read_bytes()
    calls = []

    def fail_on_second(row, tz):
        calls.append(row)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return original(row, tz)

    original = exports.inspection_record
    monkeypatch.setattr(exports, "inspection_record", fail_on_second)
    with pytest.raises(RuntimeError):
        export_inspections(sessions, StatsFilter(), TZ, "csv", out)
    assert out.read_bytes() == before and [p.name for p in out.parent.iterdir()] == ["inspections.csv"]


def test_load_grades_as_csv_labelled_as_an_indicator(sessions, tmp_path):
    add_all(sessions, [
        # HAM-1's tour 1: two 100 x 100 photos; a 20 x 10 bag and a 10 x 10 can -> 300 / 20 000 = 1.5 % foreign, 1.0 % plastics
        inspection("2026-11-16T07:00:00+01:00", "contaminated", truck="HAM-1", tour="1",
                   detections=[box("plastic_bag", 0, 0, 20, 10), box("can", 30, 30, 40, 40)]),
        inspection("2026-11-16T07:05:00+01:00", "clean", truck="HAM-1", tour="1"),
        inspection("2026-11-16T07:06:00+01:00", "inconclusive", truck="HAM-1", tour="1"),
    ])  # fmt: skip
    policy = policy_from_files(REPO / "configs/classes.yaml", tmp_path)
    loads = grade_loads(sessions, StatsFilter(), TZ, "biowaste", policy, load_materials(REPO / "serve/defaults/materials.yaml"))
    assert export_loads(loads, tmp_path / "loads.csv") == 1
    (row,) = read_csv(tmp_path / "loads.csv")
    assert list(row) == list(LOAD_COLUMNS)
    assert (row["truck_id"], row["day"], row["tour"], row["images"], row["excluded"]) == ("HAM-1", "2026-11-16", "1", "2", "1")
    assert (row["foreign_share_pct"], row["plastics_share_pct"], row["limit_foreign_pct"], row["limit_plastics_pct"]) == ("1.5", "1.0", "3.0", "1.0")
    assert (row["grade"], row["over"], row["indicator"]) == ("within limits", "", "image-based indicator, not a lab analysis")


def run_cli(tmp_path, *args):
    env = {**os.environ, "BINSIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "BINSIGHT_IMAGE_DIR": str(tmp_path / "img"),
           "BINSIGHT_MODEL_DIR": str(tmp_path / "no-model")}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "serve.cli", "export", *args], env=env, cwd=REPO, capture_output=True, text=True)


def test_the_commands_write_the_files_and_say_each_mistake_in_one_line(tmp_path):
    engine = make_engine(migrated(f"sqlite:///{tmp_path / 'cli.db'}"))
    three(make_sessionmaker(engine))
    engine.dispose()
    done = run_cli(tmp_path, "inspections", "--format", "geojson", "--out", str(tmp_path / "i.geojson"), "--fraction", "biowaste")
    assert done.returncode == 0 and "wrote" in done.stdout and "2 inspections (personal data: for internal use only)" in done.stdout
    loads = run_cli(tmp_path, "loads", "--out", str(tmp_path / "l.csv"), "--classes", "configs/classes.yaml")
    # HAM-1 on the 16th (can and glass inside it: 1 % foreign matter) and T1 on the 23rd (clean): both within the limits
    assert loads.returncode == 0 and "2 loads, 0 over a limit (image-based indicator, not a lab analysis)" in loads.stdout
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for args, message in [
        (["loads", "--out", str(tmp_path / "l.csv")], "no model card"),
        (["inspections", "--format", "csv", "--out", str(tmp_path / "x.csv"), "--to", "26-11-2026"], "--to '26-11-2026' is not a date (YYYY-MM-DD)"),
        (["inspections", "--format", "csv", "--out", str(blocker / "x.csv")], f"cannot write {blocker / 'x.csv'}: {blocker} is a file, not a folder"),
    ]:  # fmt: skip
        r = run_cli(tmp_path, *args)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    wrong_format = run_cli(tmp_path, "inspections", "--format", "xlsx", "--out", str(tmp_path / "x"))
    assert wrong_format.returncode == 2 and "invalid choice: 'xlsx'" in wrong_format.stderr
