"""Each dvc.yaml stage lists, as deps, every pipeline file its module runs: changing any of them re-runs the stage."""

import re

import pytest
import yaml

from pipeline import sources
from tests.conftest import REPO


def stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def stage_module(stage: dict) -> str:
    match = re.search(r"python -m (pipeline\.\S+)", stage["cmd"])
    assert match, f"cannot tell which module runs {stage['cmd']!r}"
    return match.group(1)


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name", list(stages()))
def test_stage_deps_list_every_pipeline_file_it_runs(name):
    stage = stages()[name]
    deps = [str(d) for d in stage["deps"]]
    missing = [f for f in sources.stage_sources(stage_module(stage)) if not covered(f, deps)]
    assert not missing, f"dvc.yaml stage {name!r} runs these files but does not list them in deps: {missing}"


def test_folder_deps_cover_their_files():
    assert covered("pipeline/synth/degrade.py", ["pipeline/synth"]) and covered("pipeline/synth/degrade.py", ["pipeline/synth/"])
    assert not covered("pipeline/synthetic.py", ["pipeline/synth"])
