"""The files a stage runs, found from its imports; the digest that makes checkpoints stale when one changes."""

import json
import subprocess
import sys

import pytest

from pipeline import sources
from tests.conftest import REPO

STAGE_MODULES = ["pipeline.prepare", "pipeline.train", "pipeline.evaluate", "pipeline.export"]


@pytest.fixture
def fake_repo(tmp_path, monkeypatch):
    files = {
        "pipeline/__init__.py": "",
        "pipeline/a.py": "import json\nfrom pipeline import b\n",
        "pipeline/b.py": "def f():\n    from pipeline.sub.c import g  # lazy: runs when f does\n    return g\n",
        "pipeline/sub/__init__.py": "",
        "pipeline/sub/c.py": "from . import d\nfrom .d import h\n\ndef g():\n    return h\n",
        "pipeline/sub/d.py": "def h():\n    pass\n",
        "pipeline/unrelated.py": "import pipeline.a\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    return tmp_path


def test_closure_follows_absolute_relative_and_lazy_imports(fake_repo):
    assert sources.stage_sources("pipeline.a") == [
        "pipeline/__init__.py", "pipeline/a.py", "pipeline/b.py", "pipeline/sub/__init__.py", "pipeline/sub/c.py", "pipeline/sub/d.py",
    ]


def test_digest_changes_with_any_file_of_the_closure(fake_repo):
    files = sources.stage_sources("pipeline.a")
    before = sources.digest(files)
    assert sources.digest(files) == before
    (fake_repo / "pipeline/sub/d.py").write_text("def h():\n    return 1\n")
    assert sources.digest(files) != before


def loaded_pipeline_files(module: str) -> set[str]:
    """The pipeline files a fresh interpreter has loaded after importing `module`."""
    code = (
        f"import importlib, json, sys; importlib.import_module({module!r}); "
        "print(json.dumps([m.__file__ for n, m in list(sys.modules.items()) "
        "if (n == 'pipeline' or n.startswith('pipeline.')) and getattr(m, '__file__', None)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    from pathlib import Path

    return {Path(f).resolve().relative_to(REPO).as_posix() for f in json.loads(out)}


@pytest.mark.parametrize("module", STAGE_MODULES)
def test_closure_holds_everything_importing_the_stage_loads(module):
    loaded = loaded_pipeline_files(module)
    assert f"{module.replace('.', '/')}.py" in loaded
    assert loaded <= set(sources.stage_sources(module))


def test_training_runs_the_degradations_it_augments_with():
    files = sources.stage_sources("pipeline.train")
    assert {"pipeline/synth/degrade.py", "pipeline/backbones.py", "pipeline/coco.py", "pipeline/hardware.py"} <= set(files)
    assert "pipeline/synth/generate.py" not in files and "pipeline/evaluate.py" not in files
