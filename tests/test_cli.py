"""The `binsight` command: help on every subcommand, imports, and one-line errors without tracebacks."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from binsight.cli import build_parser, main
from tests.conftest import REPO
from tests.import_helpers import GOOD, jpeg, snapshot, yolo

SUBCOMMANDS = [["import"], ["import", "yolo"], ["import", "coco"], ["import", "labelstudio"], ["serve"], ["create-key"], ["revoke-key"],
               ["retention"], ["migrate"], ["settings"], ["config"], ["create-user"], ["set-password"], ["disable-user"],
               ["enable-user"], ["list-users"], ["export-reviewed"], ["labelstudio-config"], ["gdpr"], ["gdpr", "export"],
               ["gdpr", "delete"], ["notices"], ["notices", "list"], ["notices", "render"], ["export"],
               ["export", "inspections"], ["export", "loads"], ["export", "open-data"], ["registry"], ["registry", "import-bins"],
               ["registry", "import-districts"], ["registry", "relink"], ["registry", "show"], ["access-log"]]


def test_every_subcommand_is_listed():
    choices = build_parser()._subparsers._group_actions[0].choices
    assert sorted(choices) == sorted({c[0] for c in SUBCOMMANDS})


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "-h"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert out.startswith(f"usage: binsight {' '.join(command)}")
    assert len(out.split("\n\n")) >= 3  # usage, a description, the options


def run_import(tmp_path, *extra):
    source = tmp_path / "src"
    if not source.exists():
        yolo(source, {"train": {"good": GOOD, "bad": "0 0.5 0.5\n"}})
    return main(["import", "yolo", str(source), "--data", str(tmp_path / "data"), "--report", str(tmp_path / "report.json"), *extra])


def test_import_prints_the_summary_and_writes_the_report(tmp_path, capsys):
    assert run_import(tmp_path) == 0
    out = capsys.readouterr().out
    assert "images added:             1" in out and "items skipped (problems): 1" in out
    assert "train/labels/bad.txt:1: 3 numbers" in out and "dvc add" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["images_added"], report["problems_by_kind"]) == (1, {"malformed_label": 1})
    assert report["problems"][0] == {"kind": "malformed_label", "file": "train/labels/bad.txt", "line": 1, "detail": report["problems"][0]["detail"]}


def test_strict_import_fails_with_one_error_line_and_writes_nothing(tmp_path, capsys):
    assert run_import(tmp_path, "--strict") == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("binsight: error: 1 problem(s)") and "--strict" in err.splitlines()[-1]
    assert "train/labels/bad.txt:1" in err and "Traceback" not in err
    assert not (tmp_path / "data").exists()
    assert json.loads((tmp_path / "report.json").read_text())["problems_by_kind"] == {"malformed_label": 1}


@pytest.mark.parametrize("mistake, expected", [
    (["--map", "{missing}/map.yaml"], "class map {missing}/map.yaml not found"),
    (["--map", "{bad_yaml}"], "is not valid YAML"),
    (["--classes", "{missing}/classes.yaml"], "config file not found"),
    (["--classes", "{bad_classes}"], "class list"),
    (["--classes", "{bad_yaml}"], "config file {bad_yaml} is not valid YAML: expected ',' or ']', but got '<stream end>' (line 2, column 1)"),
    (["--classes", "{latin1}"], "config file {latin1} is not UTF-8 text (line 3, byte 8212 of the file); save it as UTF-8"),
    (["--fraction", "compost"], "unknown waste fraction 'compost'"),
    # a path of the wrong kind: named by its option, not errno's "[Errno 21] Is a directory"
    (["--map", "{folder}"], "--map {folder}: is a directory, expected a YAML file"),
    (["--classes", "{folder}"], "--classes {folder}: is a directory, expected a YAML file"),
    (["--data", "{bad_yaml}"], "--data {bad_yaml}: is a file, expected the dataset folder"),
    (["--data", "{bad_yaml}/data"], "--data {bad_yaml}/data: {bad_yaml} is a file, not a folder"),
    # a map key no source class has is a typo: ignored, it would import the boxes it meant to drop
    (["--map", "{typo_map}"], "class map key(s) 'Glas' match no class of {src}/data.yaml (its classes: Plastic Bag, can, glass)"),
])
def test_user_mistakes_are_one_line(tmp_path, capsys, mistake, expected):
    (tmp_path / "bad.yaml").write_text("a: [unclosed\n")
    (tmp_path / "classes.yaml").write_text("classes: [{name: Bad Name, group: x}]\nfractions: {biowaste: []}\n")
    # Saved by an editor in Latin-1, the odd byte past the reader's first 8 KiB: the position counts from the file's start.
    (tmp_path / "latin1.yaml").write_bytes(("# " + "x" * 8190 + "\n\nclasses: [{name: M\xfcll}]\n").encode("latin-1"))
    (tmp_path / "typo.yaml").write_text("can: can\nGlas: null\n")
    (tmp_path / "folder").mkdir()
    paths = {"missing": tmp_path / "nowhere", "bad_yaml": tmp_path / "bad.yaml", "bad_classes": tmp_path / "classes.yaml",
             "latin1": tmp_path / "latin1.yaml", "typo_map": tmp_path / "typo.yaml", "folder": tmp_path / "folder",
             "src": tmp_path / "src"}
    assert run_import(tmp_path, *[m.format(**paths) for m in mistake]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("binsight: error: ") and expected.format(**paths) in err


@pytest.mark.parametrize("report", ["{tmp}/folder", "{tmp}/file.txt/report.json"], ids=["a folder", "under a file"])
def test_an_unwritable_report_refuses_the_import_before_data_changes(tmp_path, capsys, report):
    assert run_import(tmp_path) == 0
    jpeg(tmp_path / "src/train/images/new.jpg", 123)  # something the second import would add
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("not a folder")
    before = snapshot(tmp_path / "data")
    capsys.readouterr()
    report = report.format(tmp=tmp_path)
    assert run_import(tmp_path, "--report", report) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"binsight: error: --report {report}: ") and err.count("\n") == 1
    assert snapshot(tmp_path / "data") == before


def test_the_default_class_list_outside_the_project_folder_says_what_to_do(tmp_path, monkeypatch, capsys):
    source = yolo(tmp_path / "src", {"train": {"a": GOOD}})
    monkeypatch.chdir(tmp_path)  # configs/classes.yaml is relative to the working directory
    for command in (["import", "yolo", str(source)], ["labelstudio-config"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith("binsight: error: config file not found: configs/classes.yaml") and err.count("\n") == 1
        assert "run from the project folder or pass --classes FILE" in err
    assert not (tmp_path / "data").exists()
    assert main(["labelstudio-config", "--classes", str(REPO / "configs/classes.yaml")]) == 0


def coco_file(tmp_path: Path, **changes) -> Path:
    """A one-image COCO file; changes: 'images.0.id' -> the value to put there."""
    jpeg(tmp_path / "images/a.jpg", 5)
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
           "annotations": [{"id": 7, "image_id": 1, "category_id": 3, "bbox": [1, 2, 10, 10]}],
           "categories": [{"id": 3, "name": "can"}]}
    for where, value in changes.items():
        key, index, field = where.split(".")
        doc[key][int(index)][field] = value
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    return tmp_path / "coco.json"


@pytest.mark.parametrize("where, value", [
    ("images.0.id", [1]), ("annotations.0.id", [7]), ("annotations.0.image_id", {"id": 1}),
    ("annotations.0.category_id", {"id": 3}), ("categories.0.id", None),
])
def test_coco_ids_that_are_not_numbers_or_strings_are_one_line(tmp_path, capsys, where, value):
    json_path = coco_file(tmp_path, **{where: value})
    assert main(["import", "coco", str(json_path), str(tmp_path / "images"), "--data", str(tmp_path / "data"),
                 "--report", str(tmp_path / "report.json")]) == 2
    key, index, field = where.split(".")
    err = capsys.readouterr().err
    assert err == f"binsight: error: {json_path}: {key}[{index}].{field} must be a number or string, not {json.dumps(value)}\n"
    assert not (tmp_path / "data").exists()


def test_coco_problems_name_their_image_and_annotation_ids(tmp_path, capsys):
    json_path = coco_file(tmp_path, **{"annotations.0.bbox": "oops"})
    assert main(["import", "coco", str(json_path), str(tmp_path / "images"), "--data", str(tmp_path / "data"),
                 "--report", str(tmp_path / "report.json")]) == 0
    assert "a.jpg: bbox 'oops' is not four numbers [x, y, w, h] (image id 1, annotation id 7)" in capsys.readouterr().out


@pytest.mark.parametrize("url, expected", [
    ("garbage", "BINSIGHT_DATABASE_URL is not a database URL"),
    ("nosuchdb://admin:s3cret@db.example/binsight", "BINSIGHT_DATABASE_URL is not a database URL"),
    ("postgresql+pg8000://admin:s3cret@127.0.0.1:1/binsight", "BINSIGHT_DATABASE_URL names the driver 'postgresql+pg8000', which is not installed"),
    ("postgresql://admin:s3cret@127.0.0.1:1/binsight", "the database of BINSIGHT_DATABASE_URL=postgresql://admin:***@127.0.0.1:1/binsight cannot be used: "),
    ("postgresql://admin:s3c@ret@127.0.0.1:1/binsight", "BINSIGHT_DATABASE_URL has more than one @"),
    ("sqlite:///{tmp}", "the database of BINSIGHT_DATABASE_URL=sqlite:///{tmp} cannot be used: unable to open database file"),
    # No '@HOST': SQLAlchemy reads the password as the port and its error quotes it.
    ("postgresql://admin:s3cret/binsight", "BINSIGHT_DATABASE_URL does not parse: what follows a ':' is not a port number"),
    ("postgresql://admin:s3cret@db.example:abc/binsight", "BINSIGHT_DATABASE_URL does not parse: the port after HOST: is not a number"),
    # A '/' too many: SQLAlchemy parses the password into the database name, which would then be shown.
    ("postgresql:///admin:s3cret@db.example/binsight", "BINSIGHT_DATABASE_URL has an @ that does not follow USER:PASSWORD"),
    ("postgresql://admin@127.0.0.1:1/binsight?password=s3cret", "the database of BINSIGHT_DATABASE_URL=postgresql://admin@127.0.0.1:1/binsight?password=%2A%2A%2A cannot be used"),
], ids=["unparsable", "unknown scheme", "driver missing", "unreachable", "unescaped @", "a folder", "password for a port", "port not a number",
        "password in the database name", "password in the query"])
def test_an_unusable_database_url_is_one_line_without_its_password(tmp_path, monkeypatch, capsys, url, expected):
    if "pg8000" in url and importlib.util.find_spec("pg8000"):
        pytest.skip("pg8000 is installed here: no driver to miss")
    monkeypatch.setenv("BINSIGHT_DATABASE_URL", url.format(tmp=tmp_path))
    monkeypatch.setenv("BINSIGHT_IMAGE_DIR", str(tmp_path / "img"))
    assert main(["create-key", "truck-1", "--truck", "truck-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"binsight: error: {expected.format(tmp=tmp_path)}") and err.count("\n") == 1
    assert "s3cret" not in err and "ret@" not in err


def test_name_collision_is_one_line(tmp_path, capsys):
    assert run_import(tmp_path) == 0
    jpeg(tmp_path / "src/train/images/good.jpg", 250)  # another picture under the imported name
    before = snapshot(tmp_path / "data")
    capsys.readouterr()
    assert run_import(tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("binsight: error: name collision, nothing was imported") and err.count("\n") == 1
    assert snapshot(tmp_path / "data") == before


def test_config_prints_the_parameter_reference(capsys):
    assert main(["config"]) == 0
    assert "train.epochs:" in capsys.readouterr().out


def test_service_commands_share_serve_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BINSIGHT_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("BINSIGHT_IMAGE_DIR", str(tmp_path / "img"))
    assert main(["create-key", "truck-1", "--truck", "truck-1"]) == 0
    assert capsys.readouterr().out.startswith("bsk_")
    assert main(["revoke-key", "truck-1"]) == 0 and main(["revoke-key", "nobody"]) == 1


@pytest.mark.parametrize("command", [["settings"], ["migrate"]])
def test_commands_that_show_the_url_never_show_a_password_it_does_not_parse(monkeypatch, capsys, command):
    monkeypatch.setenv("BINSIGHT_DATABASE_URL", "postgresql://admin:s3cret/binsight")
    assert main(command) != 0
    captured = capsys.readouterr()
    assert "s3cret" not in captured.out + captured.err and "is not a port number" in captured.err


def test_a_missing_package_in_a_pipeline_command_is_not_blamed_on_the_database(monkeypatch):
    """Only the service commands open the database; an ImportError elsewhere is a real missing package."""
    import binsight.cli as cli

    monkeypatch.setenv("BINSIGHT_DATABASE_URL", "nosuchdb://admin:s3cret@db.example/binsight")  # a problem for the service commands

    def missing(args):
        raise ImportError("No module named 'albumentations'")

    monkeypatch.setattr(cli, "_import", missing)
    with pytest.raises(ImportError, match="albumentations"):
        main(["import", "yolo", "anywhere"])


def test_a_bad_setting_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("BINSIGHT_PORT", "eighty")
    assert main(["settings"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("binsight: error: port: ") and err.count("\n") == 1


def test_installed_console_script(tmp_path):
    """The `binsight` executable that `pip install` puts next to the interpreter."""
    script = Path(sys.executable).parent / "binsight"
    assert script.is_file(), "no binsight script: reinstall with `pip install -e .` (make install)"
    source = yolo(tmp_path / "src", {"valid": {"a": GOOD}})
    env = {**os.environ, "PYTHONPATH": ""}
    run = subprocess.run([script, "import", "yolo", source, "--data", tmp_path / "data", "--report", tmp_path / "r.json"],
                         cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "images added:             1" in run.stdout, run.stderr
    missing = subprocess.run([script, "import", "coco", tmp_path / "none.json", tmp_path], cwd=REPO, env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr == f"binsight: error: COCO file {tmp_path / 'none.json'} not found\n"
    module = subprocess.run([sys.executable, "-m", "binsight", "--help"], cwd=REPO, capture_output=True, text=True)
    assert module.returncode == 0 and "import" in module.stdout


def test_debug_shows_the_traceback_instead_of_one_line(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["--debug", "import", "coco", str(tmp_path / "none.json"), str(tmp_path)])
