"""Train and export one contender of `make bench-realdata`, in a process of its own.

    python -m bench.realdata_train binsight --root build/bench-realdata --epochs 2 --seed 1

bench/realdata.py runs this once per contender, after it has written the
dataset views under --root: a process each keeps one trainer's global state
(Ultralytics switches on deterministic algorithms, sets thread counts, ...)
away from the next, and a crash costs one contender, not the run. Writes
<root>/models/<name>/trained.json: the ONNX file, training wall time,
parameter count, selected epoch, and any network access that was refused.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from bench.no_network import ATTEMPTS, forbid_network, quiet_update_checks
from bench.realdata_data import class_names, data_dir, splits_dir, yolo_dir

YOLO_MODELS = ("yolo11n", "yolo26n")
BINSIGHT_MODELS = ("binsight", "binsight-imagenet")
MODELS = YOLO_MODELS + BINSIGHT_MODELS
IMAGE_SIZE = 320
# binsight's recipe for TrashNet++ where the project has one (its model, augmentation and training
# settings are the default recipe's), else the default parameters.
RECIPE_PARAMS = Path("configs/recipes/trashnetpp/params.yaml")
DEFAULT_BINSIGHT_PARAMS = RECIPE_PARAMS if RECIPE_PARAMS.is_file() else Path("configs/params.yaml")
DEFAULT_BACKBONE_WEIGHTS = Path("../shared/weights/mobilenet_v2_imagenet.pth")
YOLO_BATCH = 16


def model_dir(root: Path, name: str) -> Path:
    return root / "models" / name


def auto_device() -> str:
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def train_one(name: str, root: Path, epochs: int, seed: int, backbone_weights: Path, params_file: Path, overrides: tuple[str, ...]) -> dict:
    out = model_dir(root, name)
    if name in YOLO_MODELS:
        from bench.yolo_contender import train_and_export

        data_yaml = yolo_dir(root) / "data.yaml"
        return train_and_export(name, data_yaml, out, epochs, IMAGE_SIZE, YOLO_BATCH, seed, auto_device())

    from bench.binsight_contender import contender_params, train_and_export
    params = contender_params(name, epochs, seed, backbone_weights, params_file, overrides)
    return train_and_export(name, params, class_names(), splits_dir(root), data_dir(root), out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=MODELS)
    parser.add_argument("--root", type=Path, required=True, help="the benchmark's output folder (views already written)")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--backbone-weights", type=Path, required=True)
    parser.add_argument("--params", type=Path, required=True, help="binsight's parameter file")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="binsight parameter override")
    args = parser.parse_args(argv)
    quiet_update_checks()  # before train_one imports albumentations and MLflow
    forbid_network()
    # binsight's trainer logs to MLflow: into the bench's own store, not the project's mlflow.db.
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{(args.root / 'mlflow.db').resolve()}"
    os.environ["MLFLOW_EXPERIMENT_NAME"] = "bench-realdata"
    result = train_one(args.model, args.root, args.epochs, args.seed, args.backbone_weights, args.params, tuple(args.set))
    result.update(epochs=args.epochs, seed=args.seed, network_attempts=list(ATTEMPTS))
    (model_dir(args.root, args.model) / "trained.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
