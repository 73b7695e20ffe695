"""The bin registry (serve/registry.py, serve/districts.py, serve/bin_link.py relink, `binsight registry`) on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from serve.bin_link import haversine_m, relink
from serve.db import Bin, District, Inspection, make_engine, make_sessionmaker
from serve.districts import import_districts, read_districts
from serve.registry import BinImport, import_bins, read_bins, show_bin
from serve.registry_problems import RegistryRejected
from tests.conftest import REPO
from tests.serve_helpers import migrated

FRACTIONS = ("biowaste", "paper", "packaging", "residual")
HEADER = "rfid;address;district;route;fraction;latitude;longitude"
# Two districts side by side: Mitte west of longitude 7.82, Nord east of it.
MITTE = {"type": "Polygon", "coordinates": [[[7.80, 51.66], [7.82, 51.66], [7.82, 51.69], [7.80, 51.69], [7.80, 51.66]]]}
NORD = {"type": "MultiPolygon", "coordinates": [[[[7.82, 51.66], [7.84, 51.66], [7.84, 51.69], [7.82, 51.69], [7.82, 51.66]]]]}


@pytest.fixture
def sessions(database_url):
    engine = make_engine(migrated(database_url))
    yield make_sessionmaker(engine)
    engine.dispose()


def write(tmp_path, text: str, name: str = "bins.csv", bom: bool = False):
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def problems(path, **kwargs) -> list[tuple]:
    with pytest.raises(RegistryRejected) as caught:
        read_bins(path, FRACTIONS, **kwargs)
    return [(p.kind, p.line, p.column) for p in caught.value.problems]


def geojson(tmp_path, *features) -> object:
    path = tmp_path / "districts.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": list(features)}))
    return path


def feature(name, geometry, prop: str = "name") -> dict:
    return {"type": "Feature", "properties": {prop: name}, "geometry": geometry}


def bins_in(sessions) -> dict[str, tuple]:
    with sessions() as s:
        return {b.rfid: (b.address, b.district, b.route, b.fraction, b.latitude, b.longitude) for b in s.scalars(select(Bin))}


# --- reading the CSV --------------------------------------------------------------------------------


def test_a_german_excel_export_is_read_with_bom_semicolons_and_decimal_commas(tmp_path):
    path = write(tmp_path, f"{HEADER}\r\nE200A1;Hauptstr. 1;Mitte;R-12;biowaste;51,6739;7,8159\r\nE200A2;\"Am Markt 3; Hinterhof\";;;paper;;\r\n", bom=True)
    first, second = read_bins(path, FRACTIONS)
    assert (first.rfid, first.address, first.district, first.route, first.fraction, first.latitude, first.longitude) == (
        "E200A1", "Hauptstr. 1", "Mitte", "R-12", "biowaste", 51.6739, 7.8159)
    assert (second.address, second.district, second.route, second.latitude, second.longitude) == ("Am Markt 3; Hinterhof", None, None, None, None)


def test_a_comma_separated_file_in_another_column_order_is_read_and_extra_columns_ignored(tmp_path):
    path = write(tmp_path, "Fraction,RFID,latitude,longitude,address,district,route,note\npaper,E1,51.5,7.5,Weg 2,Süd,R-1,x\n")
    (record,) = read_bins(path, FRACTIONS)
    assert (record.rfid, record.fraction, record.latitude, record.district) == ("E1", "paper", 51.5, "Süd")


def test_every_problem_is_reported_with_its_line_and_column_and_nothing_is_read(tmp_path):
    path = write(tmp_path, "\n".join([
        "rfid,address,district,route,fraction,latitude,longitude",
        "E1,Weg 1,,,biowaste,51.5,7.5",      # 2: good
        ",Weg 2,,,biowaste,,",               # 3: empty rfid
        "E1,Weg 3,,,biowaste,,",             # 4: duplicate of line 2
        "E4,Weg 4,,,glass,,",                # 5: unknown fraction
        "E5,Weg 5,,,paper,north,7.5",        # 6: latitude not a number
        "E6,Weg 6,,,paper,91,181",           # 7: both out of range
        "E7,Weg 7,,,paper,51.5,",            # 8: latitude without longitude
        "E8,Weg 8,,,paper,,,extra",          # 9: one field too many
        "E 9,,,,paper,,",                    # 10: an RFID trucks cannot send; no address
        "E10,Weg 10,,,paper,nan,7",          # 11: not a finite number
    ]) + "\n")
    assert problems(path) == [
        ("empty_value", 3, "rfid"),
        ("duplicate", 4, "rfid"),
        ("unknown_fraction", 5, "fraction"),
        ("invalid_number", 6, "latitude"),
        ("out_of_range", 7, "latitude"),
        ("out_of_range", 7, "longitude"),
        ("incomplete_location", 8, "longitude"),
        ("field_count", 9, None),
        ("empty_value", 10, "address"),
        ("invalid_rfid", 10, "rfid"),
        ("out_of_range", 11, "latitude"),
    ]


def test_the_report_names_file_line_column_and_what_is_wrong(tmp_path):
    path = write(tmp_path, f"{HEADER}\nE1;Weg 1;;;biowaste;51,5;7,5\nE1;Weg 2;;;biowaste;;\n")
    with pytest.raises(RegistryRejected) as caught:
        read_bins(path, FRACTIONS)
    assert "bins.csv:3: rfid: RFID 'E1' is also on line 2" in caught.value.report()
    assert str(caught.value) == f"1 problem(s) in {path}; nothing was imported"


def test_a_missing_column_is_reported_on_the_header_line(tmp_path):
    path = write(tmp_path, "rfid;address;route;fraction;lat;longitude\nE1;Weg;R;paper;1;2\n")
    assert problems(path) == [("missing_column", 1, "district"), ("missing_column", 1, "latitude")]


def test_a_file_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "bins.csv"
    path.write_bytes(f"{HEADER}\nE1;Weg 1;;;paper;;\n".encode() + "E2;Straße 2;;;paper;;\n".encode("latin-1"))
    assert problems(path) == [("not_utf8", 3, None)]


def test_a_control_character_in_a_value_is_named_with_its_line_and_column(tmp_path):
    path = write(tmp_path, f"{HEADER}\nE1;Weg 1;;;paper;;\nE2;Weg\x002;;;paper;;\nE3;Weg 3;Mi\x1bte;;paper;;\n")
    assert problems(path) == [("control_character", 3, "address"), ("control_character", 4, "district")]


def test_a_field_too_large_for_the_csv_reader_is_a_problem_on_its_line_not_a_crash(tmp_path):
    path = write(tmp_path, f"{HEADER}\nE1;Weg 1;;;paper;;\nE2;\"{'x' * 200_000}\";;;paper;;\n")
    with pytest.raises(RegistryRejected) as caught:
        read_bins(path, FRACTIONS)
    assert [(p.kind, p.line) for p in caught.value.problems] == [("unreadable", 3)]
    assert "field larger than field limit" in caught.value.report()
    header = write(tmp_path, f"rfid;address;{'x' * 200_000}\n", name="header.csv")
    assert problems(header) == [("unreadable", 1, None)]


def test_fractions_are_not_checked_without_a_list(tmp_path):
    (record,) = read_bins(write(tmp_path, f"{HEADER}\nE1;Weg;;;glass;;\n"), None)
    assert record.fraction == "glass"


@pytest.mark.parametrize("text, message", [
    ("", "has no header line"),
    ("rfid address district\nE1 Weg Mitte\n", "cannot tell the delimiter"),
])  # fmt: skip
def test_a_file_without_a_usable_header_is_one_clear_error(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_bins(write(tmp_path, text), FRACTIONS)


# --- importing bins ---------------------------------------------------------------------------------


def test_a_good_import_upserts_and_replace_removes_the_bins_no_longer_listed(sessions, tmp_path):
    first = read_bins(write(tmp_path, f"{HEADER}\nE1;Weg 1;Mitte;R-1;paper;51,67;7,81\nE2;Weg 2;Nord;R-2;biowaste;;\n"), FRACTIONS)
    assert import_bins(sessions, first) == BinImport(added=2, updated=0, unchanged=0, removed=0, placed=0)
    second = read_bins(write(tmp_path, f"{HEADER}\nE1;Weg 1a;Mitte;R-1;paper;51,67;7,81\nE3;Weg 3;;;paper;;\n", "b.csv"), FRACTIONS)
    done = import_bins(sessions, second)
    assert (done.added, done.updated, done.unchanged, done.removed) == (1, 1, 0, 0)
    assert set(bins_in(sessions)) == {"E1", "E2", "E3"} and bins_in(sessions)["E1"][0] == "Weg 1a"
    done = import_bins(sessions, second, replace=True)
    assert (done.added, done.updated, done.unchanged, done.removed) == (0, 0, 2, 1)
    assert set(bins_in(sessions)) == {"E1", "E3"}


def test_a_file_with_any_problem_changes_nothing(sessions, tmp_path, monkeypatch):
    import_bins(sessions, read_bins(write(tmp_path, f"{HEADER}\nE1;Weg 1;Mitte;R-1;paper;;\n"), FRACTIONS))
    before = bins_in(sessions)
    bad = write(tmp_path, f"{HEADER}\nE1;Weg 1 neu;Mitte;R-1;paper;;\nE2;Weg 2;;;paper;200;7\n", "bad.csv")
    result = run_cli(tmp_path, sessions, "registry", "import-bins", str(bad), "--replace", "--classes", "configs/classes.yaml")
    assert result.returncode == 2
    assert "bad.csv:3: latitude: 200 is outside -90..90" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"binsight: error: 1 problem(s) in {bad}; nothing was imported"
    assert bins_in(sessions) == before


def test_bins_without_a_district_get_the_one_they_lie_in(sessions, tmp_path):
    import_districts(sessions, read_districts(geojson(tmp_path, feature("Mitte", MITTE), feature("Nord", NORD))))
    records = read_bins(write(tmp_path, "\n".join([
        HEADER,
        "E1;Weg 1;;;paper;51,67;7,81",      # inside Mitte
        "E2;Weg 2;;;paper;51,67;7,83",      # inside Nord (a MultiPolygon)
        "E3;Weg 3;Altstadt;;paper;51,67;7,81",  # the file's district wins
        "E4;Weg 4;;;paper;48,1;11,5",       # in no district
        "E5;Weg 5;;;paper;;",               # no location
    ]) + "\n"), FRACTIONS)
    assert import_bins(sessions, records).placed == 2
    assert {rfid: row[1] for rfid, row in bins_in(sessions).items()} == {"E1": "Mitte", "E2": "Nord", "E3": "Altstadt", "E4": None, "E5": None}


def test_importing_districts_places_the_bins_imported_before(sessions, tmp_path):
    import_bins(sessions, read_bins(write(tmp_path, f"{HEADER}\nE1;Weg 1;;;paper;51,67;7,81\nE2;Weg 2;Süd;;paper;51,67;7,83\n"), FRACTIONS))
    done = import_districts(sessions, read_districts(geojson(tmp_path, feature("Mitte", MITTE), feature("Nord", NORD))))
    assert (done.added, done.bins_placed) == (2, 1)
    assert {rfid: row[1] for rfid, row in bins_in(sessions).items()} == {"E1": "Mitte", "E2": "Süd"}


# --- districts --------------------------------------------------------------------------------------


def test_districts_are_upserted_and_replace_removes_the_others(sessions, tmp_path):
    import_districts(sessions, read_districts(geojson(tmp_path, feature("Mitte", MITTE), feature("Nord", NORD))))
    smaller = {"type": "Polygon", "coordinates": [[[7.80, 51.66], [7.81, 51.66], [7.81, 51.67], [7.80, 51.66]]]}
    done = import_districts(sessions, read_districts(geojson(tmp_path, feature("Mitte", smaller))), replace=True)
    assert (done.added, done.updated, done.removed) == (0, 1, 1)
    with sessions() as s:
        assert {d.name: d.geometry for d in s.scalars(select(District))} == {"Mitte": smaller}


def test_a_configurable_property_names_the_district(tmp_path):
    assert list(read_districts(geojson(tmp_path, feature("Mitte", MITTE, prop="STADTTEIL")), "STADTTEIL")) == ["Mitte"]


def test_every_broken_feature_is_reported_by_index_and_nothing_is_read(tmp_path):
    path = geojson(
        tmp_path,
        feature("Mitte", MITTE),
        {"type": "Feature", "properties": {"nom": "x"}, "geometry": MITTE},
        feature("Bow", {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}),  # self-intersecting
        feature("Point", {"type": "Point", "coordinates": [7.8, 51.6]}),
        feature("Mitte", NORD),
        feature("Swapped", {"type": "Polygon", "coordinates": [[[51.6, 7.8], [51.7, 7.8], [51.7, 97.9], [51.6, 7.8]]]}),
        feature("Short", {"type": "Polygon", "coordinates": [[[7.8, 51.6], [7.9, 51.6]]]}),
        "not a feature",
    )
    with pytest.raises(RegistryRejected) as caught:
        read_districts(path)
    found = [(p.kind, p.feature) for p in caught.value.problems]
    assert found == [("missing_name", 1), ("invalid_geometry", 2), ("wrong_geometry", 3), ("duplicate", 4), ("out_of_range", 5),
                     ("invalid_geometry", 6), ("not_a_feature", 7)]  # fmt: skip
    report = caught.value.report()
    assert "districts.geojson: features[2]: geometry: district 'Bow': Self-intersection" in report
    assert "its properties: nom; choose one with --name-property" in report


@pytest.mark.parametrize("text, message", [
    ('{"type": "FeatureCollection", "features": [}', "is not valid JSON: Expecting value at line 1 column 44"),
    ('{"type": "Feature"}', "is not a GeoJSON FeatureCollection"),
])  # fmt: skip
def test_a_file_that_is_no_feature_collection_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "d.geojson"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_districts(path)


# --- relink and show --------------------------------------------------------------------------------


def add_inspection(sessions, bin_id: str | None, lat: float | None = 51.67, lon: float | None = 7.81, when=datetime(2026, 11, 20, 8, tzinfo=timezone.utc)) -> str:
    inspection_id = str(uuid.uuid4())
    with sessions.begin() as s:
        s.add(Inspection(
            id=inspection_id, truck_id="t1", capture_id=inspection_id, bin_id=bin_id, fraction="paper", captured_at=when, received_at=when,
            latitude=lat, longitude=lon, verdict="contaminated", contamination_score=0.8, quality_issue=None, detections=[],
            model_version="m1", image_path=None, image_sha256="0" * 64, image_width=16, image_height=16,
        ))  # fmt: skip
    return inspection_id


def test_relink_recomputes_the_links_of_stored_inspections(sessions, tmp_path):
    early = add_inspection(sessions, "E1", when=datetime(2026, 1, 5, tzinfo=timezone.utc))
    near = add_inspection(sessions, "E1")
    far = add_inspection(sessions, "E1", lat=51.68, lon=7.81)  # about 1.1 km north
    unknown = add_inspection(sessions, "E9")
    missing = add_inspection(sessions, None)
    import_bins(sessions, read_bins(write(tmp_path, f"{HEADER}\nE1;Weg 1;Mitte;R-1;paper;51,67;7,81\n"), FRACTIONS))

    done = relink(sessions, 75.0, since=datetime(2026, 11, 1, tzinfo=timezone.utc), batch=2)  # batches: the paging is exercised
    assert (done.inspections, done.changed) == (4, 4)
    assert done.by_link == {"linked": 1, "uncertain: far_from_bin": 1, "uncertain: missing_rfid": 1, "uncertain: unknown_rfid": 1}
    with sessions() as s:
        rows = {i.id: i for i in s.scalars(select(Inspection))}
    assert (rows[near].bin_link, rows[near].bin_distance_m, rows[near].district, rows[near].route) == ("linked", 0.0, "Mitte", "R-1")
    assert (rows[far].bin_link, rows[far].bin_link_reason, rows[far].district) == ("uncertain", "far_from_bin", "Mitte")
    assert rows[far].bin_distance_m == pytest.approx(haversine_m(51.68, 7.81, 51.67, 7.81), abs=0.1) and 1100 < rows[far].bin_distance_m < 1120
    assert (rows[unknown].bin_link_reason, rows[unknown].district) == ("unknown_rfid", None)
    assert rows[missing].bin_link_reason == "missing_rfid"
    assert rows[early].bin_link is None  # before --since: untouched
    assert relink(sessions, 75.0).changed == 1  # only the early one was left to change
    wider = relink(sessions, 2000.0)  # a wider limit links the far one too; the linked ones are not even looked at
    assert (wider.inspections, wider.by_link.get("linked")) == (3, 1)
    assert relink(sessions, 2000.0, everything=True).by_link["linked"] == 3


def test_relink_keeps_linked_history_and_never_touches_an_erased_bins_copies(sessions, tmp_path):
    from serve import gdpr

    linked = add_inspection(sessions, "E1")
    unknown = add_inspection(sessions, "E2")
    erased = add_inspection(sessions, "E3")
    import_bins(sessions, read_bins(write(tmp_path, f"{HEADER}\nE1;Weg 1;Mitte;R-1;paper;51,67;7,81\nE3;Weg 3;Mitte;R-1;paper;51,67;7,81\n"), FRACTIONS))
    relink(sessions, 75.0)
    gdpr.delete_bin(sessions, tmp_path / "images", "E3", "Europe/Berlin")
    # The city redraws its routes: E1 moves to Süd, and E2 is registered at last.
    import_bins(sessions, read_bins(write(tmp_path, f"{HEADER}\nE1;Weg 1;Süd;R-9;paper;51,67;7,81\nE2;Weg 2;Süd;R-9;paper;51,67;7,81\n"), FRACTIONS))

    done = relink(sessions, 75.0)
    assert (done.inspections, done.by_link) == (1, {"linked": 1})  # only the one not linked yet
    with sessions() as s:
        rows = {i.id: i for i in s.scalars(select(Inspection))}
        [copy] = [r for r in rows.values() if r.bin_link == "erased"]
    assert (rows[linked].district, rows[linked].route) == ("Mitte", "R-1")  # as at capture time
    assert (rows[unknown].bin_link, rows[unknown].district) == ("linked", "Süd")
    assert erased not in rows and (copy.district, copy.bin_link_reason) == ("Mitte", None)

    everything = relink(sessions, 75.0, everything=True)
    assert everything.inspections == 2 and "uncertain: missing_rfid" not in everything.by_link  # the copy stays out
    with sessions() as s:
        assert (s.get(Inspection, linked).district, s.get(Inspection, copy.id).district) == ("Süd", "Mitte")


def test_show_gives_the_entry_and_how_its_inspections_are_linked(sessions, tmp_path):
    import_bins(sessions, read_bins(write(tmp_path, f"{HEADER}\nE1;Weg 1;Mitte;R-1;paper;51,67;7,81\n"), FRACTIONS))
    add_inspection(sessions, "E1")
    relink(sessions, 75.0)
    add_inspection(sessions, "E1", lat=52.0)
    found = show_bin(sessions, "E1")
    assert found.bin.address == "Weg 1" and found.inspections_by_link == {"linked": 1, None: 1}
    with pytest.raises(ValueError, match="no bin 'E2' in the registry"):
        show_bin(sessions, "E2")


def test_haversine_matches_a_known_distance():
    # One degree of latitude along a meridian: 111.2 km on the mean-radius sphere.
    assert haversine_m(51.0, 7.0, 52.0, 7.0) == pytest.approx(111_195, rel=1e-4)
    assert haversine_m(51.67, 7.81, 51.67, 7.81) == 0.0


# --- the command line -------------------------------------------------------------------------------


def run_cli(tmp_path, sessions, *args, stdin: str | None = None):
    url = sessions.kw["bind"].url.render_as_string(hide_password=False)
    env = {**os.environ, "BINSIGHT_DATABASE_URL": url, "BINSIGHT_MODEL_DIR": str(tmp_path / "no-model"), "BINSIGHT_AUTO_MIGRATE": "true"}
    return subprocess.run([sys.executable, "-m", "binsight.cli", *args], env=env, capture_output=True, text=True, input=stdin, cwd=os.getcwd())


def test_the_commands_import_relink_and_show(sessions, tmp_path):
    csv_path = write(tmp_path, f"{HEADER}\nE1;Weg 1;;R-1;paper;51,67;7,81\n")
    districts = geojson(tmp_path, feature("Mitte", MITTE, prop="STADTTEIL"))
    add_inspection(sessions, "E1")
    done = run_cli(tmp_path, sessions, "registry", "import-districts", str(districts), "--name-property", "STADTTEIL")
    assert done.returncode == 0 and "imported 1 districts" in done.stdout, done.stderr
    done = run_cli(tmp_path, sessions, "registry", "import-bins", str(csv_path), "--classes", "configs/classes.yaml")
    assert done.returncode == 0 and "1 added" in done.stdout and "1 placed in a district" in done.stdout, done.stderr
    done = run_cli(tmp_path, sessions, "registry", "relink", "--since", "2026-11-01")
    assert done.returncode == 0 and done.stdout.strip() == "relinked 1 inspections (1 changed): 1 linked", done.stderr
    again = run_cli(tmp_path, sessions, "registry", "relink")
    assert again.returncode == 0 and again.stdout.strip() == "relinked 0 inspections (0 changed): none", again.stderr  # all linked
    everything = run_cli(tmp_path, sessions, "registry", "relink", "--all")
    assert everything.returncode == 0 and everything.stdout.strip() == "relinked 1 inspections (0 changed): 1 linked", everything.stderr
    shown = run_cli(tmp_path, sessions, "registry", "show", "E1")
    assert shown.returncode == 0 and "district    Mitte" in shown.stdout and "inspections 1 linked" in shown.stdout


@pytest.mark.parametrize("args, message", [
    (("registry", "show", "NOPE"), "binsight: error: no bin 'NOPE' in the registry"),
    (("registry", "import-bins", "missing.csv", "--classes", str(REPO / "configs/classes.yaml")), "binsight: error: no file missing.csv"),
    (("registry", "import-bins", "x.csv"), "binsight: error: no model card in"),
    (("registry", "import-districts", "missing.geojson"), "binsight: error: no file missing.geojson"),
    (("registry", "relink", "--since", "yesterday"), "argument --since: 'yesterday' is not a date"),
])  # fmt: skip
def test_a_mistake_is_one_line_and_no_traceback(sessions, tmp_path, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/classes.yaml here: the fractions must come from somewhere
    done = run_cli(tmp_path, sessions, *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("action", ["import-bins", "import-districts", "relink", "show"])
def test_every_subcommand_explains_itself(action):
    done = subprocess.run([sys.executable, "-m", "binsight.cli", "registry", action, "-h"], capture_output=True, text=True)
    assert done.returncode == 0 and len(done.stdout.split("\n\n")[1]) > 40  # a description after the usage
