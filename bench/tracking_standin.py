"""A stand-in for MLflow where it is not installed, for the benchmark's training processes only.

A rented GPU machine often has torch but no package index, and MLflow with
its dependencies is too heavy to carry there. binsight's trainer needs only
five of MLflow's calls; this module answers them and appends what would have
been logged to a JSON-lines file beside the contender's model, so the
training log is not lost. The project itself always uses MLflow.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import types
import uuid
from pathlib import Path


def install_if_missing(log_file: Path) -> bool:
    """Put the stand-in under the name `mlflow` when MLflow cannot be imported; returns whether it did."""
    if importlib.util.find_spec("mlflow") is not None:
        return False
    sys.modules["mlflow"] = standin(log_file)
    return True


def standin(log_file: Path) -> types.ModuleType:
    module = types.ModuleType("mlflow", __doc__)

    def record(kind: str, **fields) -> None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": kind, **fields}, default=str) + "\n")

    @contextlib.contextmanager
    def start_run(run_id: str | None = None):
        run_id = run_id or uuid.uuid4().hex
        record("start_run", run_id=run_id)
        yield types.SimpleNamespace(info=types.SimpleNamespace(run_id=run_id))

    module.set_tracking_uri = lambda uri: record("set_tracking_uri", uri=uri)
    module.set_experiment = lambda name: record("set_experiment", name=name)
    module.start_run = start_run
    module.log_params = lambda params: record("params", params=params)
    module.log_metrics = lambda metrics, step=None: record("metrics", step=step, metrics=metrics)
    return module
