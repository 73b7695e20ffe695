"""dvc.yaml itself: a tiny `dvc repro` in a scratch copy of the repository runs every stage,
leaves `dvc status` clean, and a second `dvc repro` runs nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, tiny_params_dict

pytestmark = pytest.mark.slow


def sh(cmd: list[str], cwd: Path, env: dict) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr


def test_repro_then_status_clean_then_nothing_to_run(tmp_path, tiny_dataset):
    work = tmp_path / "repo"
    work.mkdir()
    for item in ("dvc.yaml", "params.yaml", "configs", "pipeline"):
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / item)
    (work / "configs" / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict()))
    shutil.copytree(tiny_dataset, work / "data")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "PYTHONPATH": str(work), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    dvc = [str(Path(bin_dir) / "dvc")]
    sh(["git", "init", "-q"], work, env)
    sh(dvc + ["init", "-q"], work, env)
    sh(dvc + ["config", "core.analytics", "false"], work, env)
    sh(dvc + ["add", "-q", "data"], work, env)

    first = sh(dvc + ["repro"], work, env)
    for stage in ("prepare", "train", "evaluate", "export"):
        assert f"Running stage '{stage}'" in first
    assert (work / "models" / "model.onnx").is_file() and (work / "reports" / "metrics.json").is_file()

    status = sh(dvc + ["status"], work, env)
    assert "Data and pipelines are up to date" in status, status
    second = sh(dvc + ["repro"], work, env)
    assert "Running stage" not in second, second

    # Every stage run again from scratch writes the same bytes: dvc.lock repeats (no run ids,
    # commits or times in any output; training seeded and deterministic on one machine).
    lock = (work / "dvc.lock").read_text()
    (work / "build" / "train" / "checkpoint.pt").unlink()  # else training would resume its finished run
    sh(dvc + ["repro", "--force"], work, env)
    assert (work / "dvc.lock").read_text() == lock

    # A change to a training parameter re-runs training and what follows it, not prepare.
    params = tiny_params_dict()
    params["train"]["lr"] = 0.001
    (work / "configs" / "params.yaml").write_text(yaml.safe_dump(params))
    dry = sh(dvc + ["repro", "--dry"], work, env)
    assert "Running stage 'train'" in dry and "Running stage 'prepare'" not in dry


TINY_RECIPE_CLASSES = """\
classes:
  - {name: can, group: metal}
  - {name: glass, group: glass}
  - {name: plastic, group: rigid plastic}
fractions:
  biowaste: [can, glass, plastic]
  paper: [can, glass, plastic]
  packaging: [glass]
  residual: [glass]
"""
# The source's five names onto the recipe's three; cardboard's boxes are dropped.
TINY_RECIPE_MAP = {"plastic_bag": "plastic", "plastic_bottle": "plastic", "can": "can", "glass": "glass", "cardboard": None}


def write_yolo_source(coco_dataset: Path, out: Path) -> dict[str, set[str]]:
    """The tiny synthetic dataset as an Ultralytics dataset (data.yaml, train/ and valid/ with images and labels):
    every third photo in valid. Returns the file names of each split."""
    coco = json.loads((coco_dataset / "annotations.json").read_text())
    names = [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])]
    index = {c["id"]: names.index(c["name"]) for c in coco["categories"]}
    boxes: dict[int, list[str]] = {im["id"]: [] for im in coco["images"]}
    sizes = {im["id"]: (im["width"], im["height"]) for im in coco["images"]}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        iw, ih = sizes[a["image_id"]]
        boxes[a["image_id"]].append(f"{index[a['category_id']]} {(x + w / 2) / iw:.6f} {(y + h / 2) / ih:.6f} {w / iw:.6f} {h / ih:.6f}")
    splits: dict[str, set[str]] = {"train": set(), "valid": set()}
    for n, im in enumerate(sorted(coco["images"], key=lambda im: im["id"])):
        split = "valid" if n % 3 == 0 else "train"
        name = Path(im["file_name"]).name
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        (out / split / "labels").mkdir(parents=True, exist_ok=True)
        shutil.copy(coco_dataset / "images" / im["file_name"], out / split / "images" / name)
        (out / split / "labels" / f"{Path(name).stem}.txt").write_text("".join(line + "\n" for line in boxes[im["id"]]))
        splits[split].add(name)
    (out / "data.yaml").write_text(yaml.safe_dump({"train": "train/images", "val": "valid/images", "names": names}))
    return splits


def test_make_run_with_a_recipe_imports_it_and_runs_it_as_a_dvc_experiment(tmp_path, tiny_dataset):
    """README, Recipes: `make run RECIPE=NAME` imports the recipe's YOLO source through its class map, runs every
    stage on it as a DVC experiment that `dvc exp show` lists, honours the source's splits, and leaves params.yaml
    selecting the default recipe."""
    bin_dir = Path(sys.executable).parent
    installed = bin_dir.parent / ".installed"
    if not installed.is_file():
        pytest.skip("make would (re)install the running venv: it lacks the .installed marker of `make install`")
    if not (shutil.which("make") and shutil.which("git")):
        pytest.skip("needs make and git")
    work = tmp_path / "repo"
    work.mkdir()
    for item in ("dvc.yaml", "params.yaml", ".gitignore", "models/.gitignore", "configs", "pipeline", "binsight", "serve",
                 "Makefile", "pyproject.toml"):
        src = REPO / item
        (work / item).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / item)
    recipe = work / "configs" / "recipes" / "tiny"
    recipe.mkdir()
    params = tiny_params_dict()
    params["prepare"]["respect_source_splits"] = True
    (recipe / "params.yaml").write_text(yaml.safe_dump(params))
    (recipe / "classes.yaml").write_text(TINY_RECIPE_CLASSES)
    (recipe / "import.yaml").write_text(yaml.safe_dump(TINY_RECIPE_MAP))
    source_splits = write_yolo_source(tiny_dataset, tmp_path / "source")
    # PATH as the user's: the Makefile must put the venv's python first for DVC's stage commands. No outer
    # make's flags (`make test` runs this), and no git configuration of the developer's (signing, hooks).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "PYTHONPATH": str(work),
                "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})
    dvc = [str(bin_dir / "dvc")]
    sh(["git", "init", "-q"], work, env)
    sh(dvc + ["init", "-q"], work, env)
    sh(dvc + ["config", "core.analytics", "false"], work, env)
    sh(["git", "add", "-A"], work, env)
    sh(["git", "commit", "-qm", "binsight"], work, env)
    selected = (work / "params.yaml").read_text()

    # -o: the venv counts as installed whatever the timestamps say; else make could reinstall it as an
    # editable install of this scratch copy.
    out = sh(["make", "-o", str(installed), "run", "RECIPE=tiny", f"RECIPE_SOURCE={tmp_path / 'source'}", f"VENV={bin_dir.parent}"],
             work, env)
    for stage in ("prepare", "train", "evaluate", "export"):
        assert f"Running stage '{stage}'" in out, out[-3000:]
    assert (work / "params.yaml").read_text() == selected, "params.yaml must select the default recipe again"
    # What git must not track is ignored already: DVC wrote no .gitignore of its own (for data-tiny/, models/,
    # build/ or the cached reports/plots/predictions.png).
    changed = sh(["git", "status", "--porcelain", "--untracked-files=all"], work, env).splitlines()
    assert not [line for line in changed if ".gitignore" in line], changed

    imported = json.loads((work / "data-tiny" / "annotations.json").read_text())
    assert [c["name"] for c in imported["categories"]] == ["can", "glass", "plastic"]
    report = json.loads((work / "reports" / "import_report.json").read_text())
    assert set(report["boxes_dropped"]) == {"cardboard"} and report["boxes_dropped"]["cardboard"] > 0
    assert report["boxes_per_class"]["plastic"] > 0  # both plastic source classes land here
    card = json.loads((work / "models" / "model_card.json").read_text())
    assert card["class_names"] == ["can", "glass", "plastic"]
    assert card["dataset_md5"] == yaml.safe_load((work / "data-tiny.dvc").read_text())["outs"][0]["md5"]
    # The source's valid split is the test split, whole; validation is carved out of its train split.
    test = {Path(im["file_name"]).name for im in json.loads((work / "build" / "splits" / "test.json").read_text())["images"]}
    val = {Path(im["file_name"]).name for im in json.loads((work / "build" / "splits" / "val.json").read_text())["images"]}
    assert test == source_splits["valid"] and val and val <= source_splits["train"]

    lock = yaml.safe_load((work / "dvc.lock").read_text())
    plots = {o["path"]: o for o in lock["stages"]["evaluate"]["outs"] if o["path"].startswith("reports/plots/")}
    assert set(plots) == {"reports/plots/verdict_pr.json", "reports/plots/confusion.csv", "reports/plots/predictions.png"}
    assert plots["reports/plots/predictions.png"]["md5"]  # in DVC's cache: git ignores it

    shown = subprocess.run(dvc + ["exp", "show", "--json"], cwd=work, env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    shown = shown.stdout
    experiments = [rev for commit in json.loads(shown) for exp in (commit.get("experiments") or []) for rev in exp["revs"]]
    assert [e["data"]["params"]["params.yaml"]["data"]["recipe"] for e in experiments] == [
        {"params": "configs/recipes/tiny/params.yaml", "classes": "configs/recipes/tiny/classes.yaml", "data": "data-tiny"}
    ]
    assert set(experiments[0]["data"]["metrics"]["reports/metrics.json"]["data"]["per_class"]) == {"can", "glass", "plastic"}
