"""Install profiles: the service installs and runs without the training stack.

pyproject.toml's base dependencies are what the service (and a truck's
computer) gets from `pip install .`; torch, MLflow, DVC and friends are the
`train` extra. These tests keep the two apart: the base list names none of the
training stack, and the service's modules and command paths (`serve`,
`migrate`, `create-key`) run in a process where importing it fails.
`make check-serve-install` does the same in a real venv built from the wheel.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRAINING_STACK = ("torch", "torchvision", "mlflow", "dvc", "albumentations", "pycocotools")

# Run first in the subprocess: any import of the training stack (or of onnx,
# the exporter's library) raises, and whatever asks for it is named.
REFUSE_HOOK = """
import importlib.abc, sys
REFUSED = {refused!r}
class RefuseTrainingStack(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in REFUSED:
            raise ImportError(f"the service imported {{name}}, which `pip install .` does not install")
sys.meta_path.insert(0, RefuseTrainingStack())
""".format(refused=set(TRAINING_STACK) | {"onnx", "tqdm"})


def requirement_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-")


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_base_dependencies_hold_no_training_stack():
    base = {requirement_name(r) for r in project()["dependencies"]}
    assert not base & set(TRAINING_STACK), f"in the base dependencies: {sorted(base & set(TRAINING_STACK))}"
    assert {"onnxruntime", "fastapi", "uvicorn", "sqlalchemy", "alembic", "psycopg", "numpy", "opencv-python-headless",
            "pillow", "pydantic", "pydantic-settings", "prometheus-client", "python-multipart", "pyyaml", "httpx",
            "argon2-cffi", "jinja2"} <= base


def test_the_train_extra_holds_the_training_stack_and_make_install_takes_it():
    train = {requirement_name(r) for r in project()["optional-dependencies"]["train"]}
    assert set(TRAINING_STACK) | {"onnx"} <= train
    pins = dict(r.split("==") for r in project()["optional-dependencies"]["train"] if "==" in r)
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"  # the builds on the machines' disk
    assert "pip install --quiet -e '.[train,test]'" in (REPO / "Makefile").read_text()


def test_ultralytics_is_only_ever_the_bench_extra():
    """Ultralytics is AGPL-3.0: as a dependency of the service, the pipeline or the tests it would put binsight under
    the AGPL. Only `make bench-realdata` installs it, into its own venv (.venv-bench), from the `bench` extra."""
    declared = {"dependencies": project()["dependencies"],
                **{f"optional-dependencies.{extra}": reqs for extra, reqs in project()["optional-dependencies"].items()}}
    # Directly, or through the bench extra of binsight itself ("binsight[bench]").
    holding = sorted(where for where, reqs in declared.items()
                     if any(requirement_name(r) == "ultralytics" or re.match(r"binsight\s*\[[^]]*\bbench\b", r) for r in reqs))
    assert holding == ["optional-dependencies.bench"], holding
    installs = [line.strip() for line in (REPO / "Makefile").read_text().splitlines() if re.search(r"pip install .*\bbench\b", line)]
    assert installs and all(line.startswith("$(BENCH_VENV)/bin/pip") for line in installs), installs


def run_refusing(code: str, cwd: Path, env: dict | None = None, args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter that refuses the training stack; outside the repository, no BINSIGHT_* but `env`."""
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("BINSIGHT_")}, **(env or {})}
    return subprocess.run([sys.executable, "-c", REFUSE_HOOK + code, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


def test_the_refusing_hook_refuses(tmp_path):
    r = run_refusing("import torch", tmp_path)
    assert r.returncode != 0 and "the service imported torch" in r.stderr


def test_service_modules_import_without_the_training_stack(tmp_path):
    code = (
        "import sys, serve.app, serve.cli, serve.detector, serve.quality, serve.truck_client, binsight.cli, pipeline.model_card\n"
        f"loaded = sorted({{m.partition('.')[0] for m in sys.modules}} & {set(TRAINING_STACK)!r})\n"
        "assert not loaded, loaded\n"
    )
    r = run_refusing(code, tmp_path)
    assert r.returncode == 0, r.stderr


def test_model_card_imports_only_pydantic_and_the_standard_library(tmp_path):
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import pipeline.model_card\n"
        "found = {m.partition('.')[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names)\n"
        "found = {m for m in found if not m.startswith('_') and m != 'cython_runtime'}  # interpreter internals\n"
        "import json; print(json.dumps(sorted(found)))\n"
    )
    r = run_refusing(code, tmp_path)
    assert r.returncode == 0, r.stderr
    found = set(json.loads(r.stdout))
    # pipeline.config (QualityConfig) brings PyYAML; the rest is pydantic and what it is made of.
    assert found <= {"pipeline", "pydantic", "pydantic_core", "typing_extensions", "annotated_types", "typing_inspection", "yaml"}, found


@pytest.fixture(scope="module")
def tiny_served_model(tmp_path_factory) -> Path:
    from tests.tiny_model import build

    out = tmp_path_factory.mktemp("tiny-model")
    build(out)
    return out


SERVE_PATHS = """
import contextlib, io, sys
from pathlib import Path

from binsight.cli import main

assert main(["migrate"]) == 0
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    assert main(["create-key", "truck-1", "--truck", "HAM-EB-101"]) == 0
key = printed.getvalue().strip()

import uvicorn

def run_in_process(app, **options):
    # What uvicorn would serve, started and asked as a client would (lifespan: migrations, model, warm-up).
    from starlette.testclient import TestClient

    with TestClient(app) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        fields = {"bin_id": "E200A1B2C3D4", "truck_id": "HAM-EB-101", "fraction": "biowaste",
                  "captured_at": "2025-05-01T08:00:00+00:00", "capture_id": "cap-1"}
        photo = (Path(sys.argv[1]) / "photo.jpg").read_bytes()
        made = client.post("/v1/inspections", data=fields, files={"image": ("photo.jpg", photo, "image/jpeg")},
                           headers={"X-API-Key": key})
        assert made.status_code == 201, made.text
        print("verdict", made.json()["verdict"])

uvicorn.run = run_in_process
assert main(["serve"]) == 0
loaded = sorted({m.partition(".")[0] for m in sys.modules} & REFUSED)
assert not loaded, loaded
"""


def test_serve_migrate_and_create_key_run_without_the_training_stack(tmp_path, tiny_served_model):
    env = {
        "BINSIGHT_MODEL_DIR": str(tiny_served_model),
        "BINSIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'binsight.db'}",
        "BINSIGHT_IMAGE_DIR": str(tmp_path / "images"),
    }
    r = run_refusing(SERVE_PATHS, tmp_path, env, args=(str(tiny_served_model),))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "verdict " in r.stdout
