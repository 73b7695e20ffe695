"""Shared fixtures: a tiny generated dataset and a model trained on it for one epoch.

Everything runs in temporary folders with its own MLflow store, so tests never
touch the repository's data/, models/ or mlflow.db.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline.config import Params, Taxonomy, load_params, load_taxonomy

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def tiny_params_dict() -> dict:
    params = yaml.safe_load((REPO / "configs/params.yaml").read_text())
    params["synth"].update(num_bins=14, image_size=128, captures_per_bin=[1, 2], degradation_probability=0.5)
    params["prepare"].update(val_share=0.2, test_share=0.2)
    params["model"].update(min_size=128, max_size=128, fpn_channels=32)
    # native: the fixtures train inside the test process, whose kernels earlier tests have already fixed
    # (portable numerics must be set before a process's first tensor op; tests/test_cpu_numerics.py and the
    # DVC pipeline test run them in fresh processes).
    params["train"].update(epochs=1, batch_size=4, warmup_iters=2, num_workers=0, threads=2, cuda_batch_size=4, cuda_num_workers=0,
                           cpu_numerics="native")
    params["export"].update(parity_images=2)
    params["evaluate"].update(grid_images=4)
    return params


def random_mobilenet_v2_file(path: Path, seed: int) -> Path:
    """A torchvision MobileNetV2 state_dict with seeded random weights: a local weights file without a download."""
    import torch
    import torchvision

    with torch.random.fork_rng():  # the caller's random stream goes on as if this had not run
        torch.manual_seed(seed)
        torch.save(torchvision.models.mobilenet_v2().state_dict(), path)
    return path


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return load_taxonomy(REPO / "configs/classes.yaml")


@pytest.fixture(scope="session")
def tiny_params(tmp_path_factory) -> tuple[Params, Path]:
    path = write_params(tmp_path_factory.mktemp("params") / "params.yaml", tiny_params_dict())
    return load_params(path), path


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, tiny_params, taxonomy) -> Path:
    from pipeline.synth.generate import generate

    out = tmp_path_factory.mktemp("dataset") / "data"
    generate(tiny_params[0].synth, taxonomy, out)
    return out


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    yield uri
    mp.undo()


@pytest.fixture(scope="session")
def tiny_splits(tmp_path_factory, tiny_dataset, tiny_params, taxonomy) -> Path:
    from pipeline.prepare import prepare

    out = tmp_path_factory.mktemp("splits")
    prepare(tiny_dataset, out, out / "report.json", tiny_params[0].prepare, taxonomy)
    return out


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory, tiny_splits, tiny_dataset, tiny_params, taxonomy, mlflow_store) -> Path:
    """build/train of a one-epoch run: model.pt, checkpoint.pt, run.json."""
    from pipeline.train import train

    out = tmp_path_factory.mktemp("train")
    summary = train(tiny_params[0], taxonomy.class_names, tiny_splits, tiny_dataset, out)
    (out / "summary.json").write_text(json.dumps(summary))
    return out


@pytest.fixture(scope="session")
def tiny_reports(tmp_path_factory, tiny_trained, tiny_splits, tiny_dataset, tiny_params, taxonomy) -> Path:
    from pipeline.evaluate import evaluate

    reports = tmp_path_factory.mktemp("reports")
    evaluate(tiny_trained / "model.pt", tiny_splits, tiny_dataset, reports, tiny_params[0], taxonomy)
    return reports


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_trained, tiny_splits, tiny_dataset, tiny_params, taxonomy, tiny_reports) -> Path:
    """models/ of the tiny run: model.onnx and model_card.json, as the export stage writes them."""
    from pipeline.export import export

    out = tmp_path_factory.mktemp("models")
    card = export(tiny_trained / "model.pt", tiny_splits, tiny_dataset, out, tmp_path_factory.mktemp("x") / "none.dvc",
                  tiny_reports / "metrics.json", tiny_params[0], taxonomy)
    (out / "card_returned.json").write_text(json.dumps(card))
    return out


def postgres_admin_url() -> str:
    import os

    return os.environ.get("BINSIGHT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database for this test session, dropped afterwards; skips if no server answers."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"binsight_test_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as err:
        pytest.skip(f"PostgreSQL unreachable at {postgres_admin_url()}: {str(err).splitlines()[0]}")
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'binsight.db'}"
    url = request.getfixturevalue("postgres_url")
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as c:  # each test starts from an empty schema, whatever tables the migrations made
        c.execute(text("DROP SCHEMA public CASCADE"))
        c.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url
