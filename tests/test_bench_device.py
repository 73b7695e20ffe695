"""`make bench-realdata` split across machines: train on a rented GPU, export and score here.

The pieces that let the training half run where only torch is installed
(stand-ins for MLflow and polars, the packed data), and the checks that the
scoring half scores what was trained: the export from a copied folder, and
the refusal to score models trained on other splits.
"""

import hashlib
import json
import lzma
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from bench import device_pack, realdata, realdata_train, tracking_standin
from tests.conftest import tiny_params_dict
from tests.test_bench_realdata import fake_source

REPO = Path(__file__).resolve().parents[1]


def test_the_tracking_standin_records_what_the_trainer_logs(tmp_path):
    log = tmp_path / "log.jsonl"
    mlflow = tracking_standin.standin(log)
    mlflow.set_tracking_uri("sqlite:///x.db")
    mlflow.set_experiment("bench")
    with mlflow.start_run(run_id=None) as run:
        mlflow.log_params({"train.lr": 0.002})
        mlflow.log_metrics({"val_map_50": 0.4}, step=3)
    with mlflow.start_run(run_id=run.info.run_id) as again:  # a resumed training names its run
        assert again.info.run_id == run.info.run_id
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["set_tracking_uri", "set_experiment", "start_run", "params", "metrics", "start_run"]
    assert rows[4] == {"kind": "metrics", "step": 3, "metrics": {"val_map_50": 0.4}}
    # Where MLflow is installed (here), the real one is used and nothing is put in its place.
    assert tracking_standin.install_if_missing(log) is False


def test_the_tracking_standin_takes_mlflows_place_only_where_it_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(tracking_standin.importlib.util, "find_spec", lambda name: None)
    monkeypatch.delitem(sys.modules, "mlflow", raising=False)
    assert tracking_standin.install_if_missing(tmp_path / "log.jsonl") is True
    from pipeline.tracking import configure  # the trainer's own route to MLflow

    mlflow = configure()
    with mlflow.start_run() as run:
        mlflow.log_metrics({"val_map": 0.1}, step=1)
    assert run.info.run_id and '"val_map": 0.1' in (tmp_path / "log.jsonl").read_text()
    sys.modules.pop("mlflow")  # the real MLflow for the tests after this one


def test_the_polars_standin_lets_ultralytics_fall_back_as_it_does(monkeypatch):
    from bench import yolo_contender

    monkeypatch.setattr(yolo_contender.importlib.util, "find_spec", lambda name: None)
    monkeypatch.delitem(sys.modules, "polars", raising=False)
    assert yolo_contender.use_polars_standin() is True
    import polars as pl  # what Ultralytics' trainer does at every checkpoint save

    try:
        pl.read_csv(b"epoch\n1\n", infer_schema_length=None)
        reached = "no error"
    except Exception as err:  # Ultralytics catches Exception and stores {} instead of the table
        reached = type(err).__name__
    assert reached == "AttributeError"
    sys.modules.pop("polars")  # no stand-in left behind for the tests after this one


def test_device_pack_reencodes_photos_keeps_labels_and_packs_weights_exactly(tmp_path, monkeypatch):
    fake_source(tmp_path / "src", {"train": 3, "valid": 2})
    for png in (tmp_path / "src").rglob("*.png"):  # TrashNet++ ships JPEG photos
        Image.open(png).save(png.with_suffix(".jpg"), quality=95)
        png.unlink()
    photos = device_pack.pack_dataset(tmp_path / "src", tmp_path / "pack", quality=40)
    assert photos == 5
    for original in (tmp_path / "src").rglob("*"):
        copy = tmp_path / "pack" / original.relative_to(tmp_path / "src")
        if original.suffix == ".jpg":
            a, b = np.asarray(Image.open(original)), np.asarray(Image.open(copy))
            assert a.shape == b.shape and copy.read_bytes() != original.read_bytes()  # same size, other bytes
        elif original.is_file():
            assert copy.read_bytes() == original.read_bytes()  # labels and data.yaml untouched
    weights = tmp_path / "w.pth"
    weights.write_bytes(np.arange(5000, dtype=np.float32).tobytes())
    digest = device_pack.pack_weights(weights, tmp_path / "w.pth.xz")
    assert lzma.decompress((tmp_path / "w.pth.xz").read_bytes()) == weights.read_bytes()
    assert digest == hashlib.sha256(weights.read_bytes()).hexdigest()
    with pytest.raises(SystemExit, match="TrashNet\\+\\+ not found"):
        device_pack.pack_dataset(tmp_path / "nowhere", tmp_path / "x", 75)


@pytest.fixture
def offline_guard_off(monkeypatch):
    """The bench's network guard and environment switches, left off while its main() runs inside pytest."""
    monkeypatch.setattr(realdata, "forbid_network", lambda: None)
    monkeypatch.setattr(realdata_train, "forbid_network", lambda: None)
    monkeypatch.setattr(realdata_train, "quiet_update_checks", lambda: None)


def test_scoring_refuses_a_model_trained_on_other_splits(tmp_path, monkeypatch, offline_guard_off):
    monkeypatch.chdir(REPO)
    from bench.realdata_data import build_dataset, split_digest

    fake_source(tmp_path / "src", {"train": 30, "valid": 6})
    out = tmp_path / "gpu-run"
    build_dataset(tmp_path / "src", out)
    model = out / "models" / "binsight"
    model.mkdir(parents=True)
    record = {"splits_sha256": split_digest(out), "checkpoint": "model.pt", "epochs": 1}
    (model / "trained.json").write_text(json.dumps(record))
    fake_source(tmp_path / "other", {"train": 34, "valid": 6})  # more photos here: other splits
    with pytest.raises(SystemExit, match="binsight was trained on other splits than those built here"):
        realdata.main(["--score-only", "--models", "binsight", "--source", str(tmp_path / "other"), "--out", str(out)])
    # The same source: the splits agree, and scoring goes on to the export (which fails: no model.pt here).
    with pytest.raises(SystemExit, match="some contenders failed"):
        realdata.main(["--score-only", "--models", "binsight", "--source", str(tmp_path / "src"), "--out", str(out)])
    # A contender that never wrote trained.json is a row with its reason, not a traceback.
    assert "no " in realdata.load_trained("yolo11n", out)["error"] and "not copied back" in realdata.load_trained("yolo11n", out)["error"]


def test_score_only_with_training_options_is_refused(tmp_path, offline_guard_off):
    with pytest.raises(SystemExit):
        realdata.main(["--score-only", "--concurrent", "--models", "binsight", "--out", str(tmp_path)])


def test_export_without_a_train_stage_is_one_clear_error(tmp_path, offline_guard_off):
    with pytest.raises(SystemExit, match="trained.json not found: train binsight first"):
        realdata_train.main(["binsight", "--root", str(tmp_path), "--stage", "export"])
    with pytest.raises(SystemExit):
        realdata_train.main(["binsight", "--root", str(tmp_path), "--stage", "train"])  # no --epochs


@pytest.mark.slow
def test_binsight_trained_in_one_place_exports_from_a_copy_elsewhere(tmp_path):
    """The GPU half writes trained.json and model.pt; a copy of the folder exports here."""
    fake_source(tmp_path / "src", {"train": 16, "valid": 4})
    params = tiny_params_dict()
    recipe = yaml.safe_load((REPO / "configs/recipes/trashnetpp/params.yaml").read_text())
    recipe["model"].update(params["model"])
    recipe["train"].update(params["train"], cpu_numerics="native")
    recipe["export"].update(params["export"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(recipe))
    there = tmp_path / "there"
    from bench.realdata_data import build_dataset, split_digest

    build_dataset(tmp_path / "src", there)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    train = [sys.executable, "-m", "bench.realdata_train", "binsight", "--root", str(there), "--stage", "train",
             "--epochs", "1", "--params", str(tmp_path / "params.yaml")]
    subprocess.run(train, cwd=REPO, env=env, check=True, capture_output=True)
    trained = json.loads((there / "models/binsight/trained.json").read_text())
    assert trained["checkpoint"] == "model.pt" and "onnx" not in trained and trained["epochs"] == 1
    assert trained["splits_sha256"] == split_digest(there) and trained["trained_concurrently"] is False

    here = tmp_path / "here"  # another root: the copy brought back, with the dataset built anew
    build_dataset(tmp_path / "src", here)
    shutil.copytree(there / "models", here / "models")
    export = [sys.executable, "-m", "bench.realdata_train", "binsight", "--root", str(here), "--stage", "export"]
    subprocess.run(export, cwd=REPO, env=env, check=True, capture_output=True)
    exported = json.loads((here / "models/binsight/trained.json").read_text())
    assert exported["onnx"] == "model.onnx" and (here / "models/binsight/model.onnx").is_file()
    assert (here / "models/binsight/model-map.onnx").is_file() and exported["parameters"] > 0
    assert exported["train_seconds"] == trained["train_seconds"]  # the training's own figures kept


def test_device_wheels_pins_what_is_installed_here_and_asks_pip_for_the_devices_python(tmp_path, monkeypatch):
    from importlib.metadata import version

    from bench import device_wheels

    assert device_wheels.pinned(("pydantic", "pycocotools")) == [f"pydantic=={version('pydantic')}", f"pycocotools=={version('pycocotools')}"]
    with pytest.raises(SystemExit, match="not installed in .*: no-such-package-here"):
        device_wheels.pinned(("pydantic", "no-such-package-here"))
    asked = []
    monkeypatch.setattr(device_wheels.subprocess, "run", lambda cmd: asked.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    device_wheels.download(["pydantic==2.14.3"], tmp_path / "whl")
    [cmd] = asked
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.12" and cmd[cmd.index("--implementation") + 1] == "cp"
    assert "manylinux2014_x86_64" in cmd and cmd[-1] == "pydantic==2.14.3" and cmd[cmd.index("--dest") + 1] == str(tmp_path / "whl")


@pytest.mark.parametrize(
    "extra, problem",
    [
        (None, None),
        ("pydantic-2.13.0-py3-none-any.whl", "pydantic-2.13.0-py3-none-any.whl is not the pinned pydantic==2.14.3"),
        ("ultralytics-8.4.190-py3-none-any.whl", "ultralytics-8.4.190-py3-none-any.whl is not on the list"),
    ],
    ids=["exactly-the-pins", "second-version", "left-over"],
)
def test_device_wheels_accepts_exactly_the_pinned_wheels_for_the_devices_python(tmp_path, extra, problem):
    from bench import device_wheels

    pins = ["pydantic==2.14.3", "pydantic-core==2.50.4"]
    for name in ("pydantic-2.14.3-py3-none-any.whl", "pydantic_core-2.50.4-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", extra):
        if name:
            (tmp_path / name).touch()
    if problem is None:
        assert len(device_wheels.check(pins, tmp_path)) == 2
    else:
        with pytest.raises(SystemExit, match=re.escape(problem)):
            device_wheels.check(pins, tmp_path)
    with pytest.raises(SystemExit, match=re.escape("no wheel for pycocotools==2.0.11")):
        device_wheels.check([*pins, "pycocotools==2.0.11"], tmp_path)


def test_device_wheels_refuses_a_wheel_for_another_python(tmp_path):
    from bench import device_wheels

    (tmp_path / "pydantic_core-2.50.4-cp311-cp311-manylinux2014_x86_64.whl").touch()
    with pytest.raises(SystemExit, match="is not for CPython 3.12 on x86-64 Linux"):
        device_wheels.check(["pydantic-core==2.50.4"], tmp_path)
    assert device_wheels.runs_on_the_device(Path("pycocotools-2.0.11-cp312-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"))
    assert not device_wheels.runs_on_the_device(Path("pycocotools-2.0.11-cp312-abi3-macosx_11_0_arm64.whl"))


LOST_SECONDS = 0.5


def test_a_cut_binsight_training_resumes_from_its_checkpoint_and_sums_its_wall_time(
    monkeypatch, tmp_path, tiny_splits, tiny_dataset, tiny_params, taxonomy, mlflow_store, capsys
):
    """A GPU call's time limit cuts a training; the next call (--resume) goes on from its checkpoint, and
    the training's wall time is both parts': the first up to its checkpoint, the second in full."""
    from bench.binsight_contender import TRAIN_PARTS, train_contender
    from pipeline import train as train_module

    params = tiny_params[0].model_copy(update={"train": tiny_params[0].train.model_copy(update={"device": "cpu", "epochs": 2})})
    out = tmp_path / "models" / "binsight"
    real_save = train_module.save_checkpoint

    def save_then_cut(path, **state):
        real_save(path, **state)
        if state["epoch"] == 1:
            time.sleep(LOST_SECONDS)  # work after the last checkpoint, done again by the resumed part
            raise KeyboardInterrupt  # `timeout --signal=INT`

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_cut)
    started = time.time()
    with pytest.raises(KeyboardInterrupt):
        train_contender("binsight", params, taxonomy.class_names, tiny_splits, tiny_dataset, out)
    first_part = time.time() - started
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    assert "seconds" not in json.loads((out / TRAIN_PARTS).read_text())[0]  # cut before it could say
    capsys.readouterr()

    trained = train_contender("binsight", params, taxonomy.class_names, tiny_splits, tiny_dataset, out, resume=True)
    assert f"resuming from {out / 'checkpoint.pt'} after epoch 1" in capsys.readouterr().out
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=False)
    assert checkpoint["epoch"] == 2 and [h["epoch"] for h in checkpoint["history"]] == [1, 2]
    first, second = trained["train_parts_seconds"]
    assert 0 < first <= first_part - LOST_SECONDS and second > 0  # the first part counts up to its checkpoint
    assert trained["train_seconds"] == pytest.approx(first + second)
    assert (out / "model.pt").is_file()


def test_resume_refuses_what_the_trainer_would_not_resume(tmp_path, tiny_splits, tiny_dataset, tiny_params, taxonomy):
    """Nothing to resume, other parameters, or a checkpoint of other code, data or hardware (the trainer's
    fingerprint): each refused before any training, since the trainer would start afresh and the summed
    wall time would lie."""
    from bench.binsight_contender import train_contender

    params = tiny_params[0].model_copy(update={"train": tiny_params[0].train.model_copy(update={"device": "cpu"})})
    out = tmp_path / "models" / "binsight"
    out.mkdir(parents=True)

    def resume():
        train_contender("binsight", params, taxonomy.class_names, tiny_splits, tiny_dataset, out, resume=True)

    with pytest.raises(SystemExit, match="train-parts.json not found, so there is nothing to resume"):
        resume()
    (out / "train-parts.json").write_text(json.dumps([{"started_unix": time.time()}]))
    with pytest.raises(SystemExit, match="checkpoint.pt not found, so there is nothing to resume"):
        resume()
    torch.save({"fingerprint": "0" * 16}, out / "checkpoint.pt")
    (out / "params.yaml").write_text("train:\n  lr: 0.1\n")
    with pytest.raises(SystemExit, match="holds other parameters than this run's"):
        resume()
    (out / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    with pytest.raises(SystemExit, match="was trained with other code, data or hardware setup"):
        resume()


def test_resume_reaches_the_trainer_and_the_shell_takes_only_1_or_0(tmp_path):
    import argparse

    args = argparse.Namespace(epochs=50, seed=1, backbone_weights=Path("w.pth"), params=Path("p.yaml"), set=[], workers=None, resume=True)
    assert "--resume" in realdata.train_command("binsight", tmp_path, "train", args)
    assert "--resume" not in realdata.train_command("binsight", tmp_path, "export", args)
    run = subprocess.run(["bash", "bench/device_realdata.sh"], cwd=REPO, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "out"), "RESUME": "yes"})
    assert run.returncode == 2 and "RESUME must be 1 or 0, not 'yes'" in run.stderr
    assert not (tmp_path / "out").exists()  # refused before anything ran


@pytest.mark.parametrize("args", [["--models", "binsight,yolo26n"], ["--models", "binsight", "--score-only"]])
def test_resume_with_a_yolo_contender_or_scoring_is_refused(tmp_path, args, capsys, offline_guard_off):
    with pytest.raises(SystemExit) as exit_info:
        realdata.main(["--resume", "--out", str(tmp_path), *args])
    assert exit_info.value.code == 2
    assert "--resume goes on with binsight's trainings only" in capsys.readouterr().err


def test_resume_with_the_export_stage_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        realdata_train.main(["binsight", "--root", str(tmp_path), "--stage", "export", "--resume"])
    assert exit_info.value.code == 2 and "leave it out with --stage export" in capsys.readouterr().err
