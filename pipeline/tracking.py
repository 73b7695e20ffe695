"""MLflow: one tracking store, one experiment, one run per training.

The training stage opens the run; evaluation and export add to the same run
(its id travels in build/train/run.json), so a run in the MLflow UI holds
params, per-epoch curves, the final evaluation and the ONNX model together.
The store is a local SQLite file unless MLFLOW_TRACKING_URI says otherwise,
so `dvc repro` never needs a server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
EXPERIMENT = "binsight-detector"
REGISTERED_MODEL = "binsight-detector"


def configure():
    """Import and point MLflow at the store; imported lazily because it is slow to import."""
    import mlflow

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT))
    return mlflow


def flatten(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(name, value))
        else:
            out[name] = value
    return out


def write_run_ref(path: Path, run_id: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run_id": run_id}) + "\n")


def read_run_id(path: Path) -> str | None:
    try:
        return json.loads(path.read_text())["run_id"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return None
