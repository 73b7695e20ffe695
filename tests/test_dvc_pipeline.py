"""dvc.yaml itself: a tiny `dvc repro` in a scratch copy of the repository runs every stage,
leaves `dvc status` clean, and a second `dvc repro` runs nothing."""

from __future__ import annotations

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
