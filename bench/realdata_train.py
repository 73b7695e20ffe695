"""Train and export one contender of `make bench-realdata`, in a process of its own.

    python -m bench.realdata_train binsight --root build/bench-realdata --epochs 2 --seed 1

bench/realdata.py runs this once per contender, after it has written the
dataset views under --root: a process each keeps one trainer's global state
(Ultralytics switches on deterministic algorithms, sets thread counts, ...)
away from the next, and a crash costs one contender, not the run. Writes
<root>/models/<name>/trained.json: the selected checkpoint, training wall
time, selected epoch, and any network access that was refused; then the ONNX
files and parameter count.

`--stage train` stops after training and `--stage export` exports what a
train stage left, so the training can run on a rented GPU machine and the
export (and the scoring) here, with the same toolchain as every CPU row.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import yaml

from bench.no_network import ATTEMPTS, forbid_network, quiet_update_checks
from bench.realdata_data import class_names, data_dir, split_digest, splits_dir, yolo_dir
from bench.tracking_standin import install_if_missing
from pipeline.config import Params

YOLO_MODELS = ("yolo11n", "yolo26n")
BINSIGHT_MODELS = ("binsight", "binsight-imagenet")
MODELS = YOLO_MODELS + BINSIGHT_MODELS
IMAGE_SIZE = 320
# binsight's recipe for TrashNet++ where the project has one (its model, augmentation and training
# settings are the default recipe's), else the default parameters.
RECIPE_PARAMS = Path("configs/recipes/trashnetpp/params.yaml")
DEFAULT_BINSIGHT_PARAMS = RECIPE_PARAMS if RECIPE_PARAMS.is_file() else Path("configs/params.yaml")
DEFAULT_BACKBONE_WEIGHTS = Path("../shared/weights/mobilenet_v2_imagenet.pth")
YOLO_BATCH = 16  # on the CPU
YOLO_CUDA_BATCH = 64  # on a GPU, as the reference figures in issue 8 (Ultralytics scales its lr to a nominal 64 anyway)


def model_dir(root: Path, name: str) -> Path:
    return root / "models" / name


def machine() -> str:
    """The machine in words: cores, CPU model, GPU, and the versions that make the arithmetic."""
    import platform

    import onnxruntime as ort
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{os.cpu_count()} x {cpu}{gpu}; torch {torch.__version__}, onnxruntime {ort.__version__}"


def auto_device() -> str:
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def train_one(name: str, root: Path, epochs: int, seed: int, backbone_weights: Path, params_file: Path,
              overrides: tuple[str, ...], workers: int | None, resume: bool = False) -> dict:
    """`workers` None: YOLO loads with 2 processes on the CPU and 8 beside a GPU, binsight as its recipe says.
    `resume`: go on with binsight's interrupted training in the contender's folder (its checkpoint)."""
    out = model_dir(root, name)
    if name in YOLO_MODELS:
        if resume:
            raise SystemExit(f"--resume: {name} cannot resume here (only binsight's contenders do)")
        from bench.yolo_contender import train

        device = auto_device()
        on_gpu = device != "cpu"
        batch = YOLO_CUDA_BATCH if on_gpu else YOLO_BATCH
        workers = workers if workers is not None else (8 if on_gpu else 2)
        return train(name, yolo_dir(root) / "data.yaml", out, epochs, IMAGE_SIZE, batch, seed, device, workers)

    from bench.binsight_contender import contender_params, train_contender
    if workers is not None:  # the loading processes change the speed, not the result (pipeline/augment.py)
        overrides = (*overrides, f"train.num_workers={workers}", f"train.cuda_num_workers={workers}")
    params = contender_params(name, epochs, seed, backbone_weights, params_file, overrides)
    return train_contender(name, params, class_names(), splits_dir(root), data_dir(root), out, resume)


def export_one(name: str, root: Path, trained: dict) -> dict:
    out = model_dir(root, name)
    if name in YOLO_MODELS:
        from bench.yolo_contender import export

        return export(trained, out, IMAGE_SIZE)
    from bench.binsight_contender import export_contender

    params = Params.model_validate(yaml.safe_load((out / "params.yaml").read_text()))
    return export_contender(trained, params, splits_dir(root), data_dir(root), out)


STAGES = ("all", "train", "export")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=MODELS)
    parser.add_argument("--root", type=Path, required=True, help="the benchmark's output folder (views already written)")
    parser.add_argument("--stage", choices=STAGES, default="all",
                        help="train only (e.g. on a GPU machine), export only (the trained.json of a train stage), or both")
    parser.add_argument("--epochs", type=int, default=None, help="required unless --stage export")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None, help="data-loading processes per contender (default: YOLO 2 on the CPU and 8 with a GPU, binsight its recipe's)")
    parser.add_argument("--backbone-weights", type=Path, default=DEFAULT_BACKBONE_WEIGHTS)
    parser.add_argument("--params", type=Path, default=DEFAULT_BINSIGHT_PARAMS, help="binsight's parameter file")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="binsight parameter override")
    parser.add_argument("--concurrent", action="store_true", help="recorded only: other contenders train at the same time")
    parser.add_argument("--resume", action="store_true",
                        help="binsight only: go on from the checkpoint an interrupted train stage left under --root")
    args = parser.parse_args(argv)
    if args.stage != "export" and args.epochs is None:
        parser.error("--epochs is required to train")
    if args.stage == "export" and args.resume:
        parser.error("--resume goes on with a training: leave it out with --stage export")
    quiet_update_checks()  # before train_one imports albumentations and MLflow
    forbid_network()
    record = model_dir(args.root, args.model) / "trained.json"
    if args.stage in ("all", "train"):
        # binsight's trainer logs to MLflow: into the bench's own store, not the project's mlflow.db.
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{(args.root / 'mlflow.db').resolve()}"
        os.environ["MLFLOW_EXPERIMENT_NAME"] = "bench-realdata"
        standin = install_if_missing(args.root / "mlflow-standin" / f"{args.model}.jsonl")
        result = train_one(args.model, args.root, args.epochs, args.seed, args.backbone_weights, args.params, tuple(args.set), args.workers,
                           args.resume)
        result.update(epochs=args.epochs, seed=args.seed, network_attempts=list(ATTEMPTS), mlflow_standin=standin, machine=machine(),
                      trained_concurrently=args.concurrent, splits_sha256=split_digest(args.root))
        record.write_text(json.dumps(result, indent=1) + "\n")
    if args.stage in ("all", "export"):
        if not record.is_file():
            raise SystemExit(f"{record} not found: train {args.model} first (--stage train)")
        result = json.loads(record.read_text())
        result.update(export_one(args.model, args.root, result))
        result["network_attempts"] = sorted(set(result.get("network_attempts", [])) | set(ATTEMPTS))
        record.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
