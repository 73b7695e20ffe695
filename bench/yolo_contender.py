"""Ultralytics YOLO contenders (yolo11n, yolo26n), trained from their model YAMLs, offline.

Imported only in .venv-bench (`make bench-realdata`): Ultralytics is AGPL-3.0
and never a dependency of binsight itself, nor of its tests.

Ultralytics reaches for the network in several places; each is closed here
(ultralytics 8.4.190, read from its source):
- `YOLO_OFFLINE=1` makes `ultralytics.utils.ONLINE` false, which turns off
  its usage events, the PyPI update check, Sentry and auto-updates;
  `YOLO_AUTOINSTALL=0` makes a missing requirement fail instead of being
  pip-installed. Both are read at import, so they are set before it.
- `YOLO_CONFIG_DIR` in the bench's output: its settings.json (with every
  logging integration off: MLflow, DVC, TensorBoard, ...) stays there.
- `check_det_dataset` calls `check_font`, which downloads Arial.ttf, for
  every dataset; with `plots=False` nothing is drawn, so it becomes a no-op.
- `check_amp` downloads yolo26n.pt on a GPU to compare fp32 with AMP. On the
  CPU AMP is off (`amp=False`, binsight trains in fp32 there too); on CUDA AMP
  is on, as Ultralytics' default and like binsight's bf16 autocast, and the
  check is replaced by one that trusts it without the download.
bench/no_network.py then refuses and records anything that still tries.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import time
import types
from pathlib import Path

CONTENDERS = ("yolo11n", "yolo26n")
INTEGRATIONS = ("clearml", "comet", "dvc", "hub", "mlflow", "neptune", "raytune", "tensorboard", "wandb")


def offline_ultralytics(config_dir: Path) -> None:
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir.resolve())
    config_dir.mkdir(parents=True, exist_ok=True)
    import ultralytics.data.utils
    import ultralytics.engine.trainer
    import ultralytics.utils.checks
    import ultralytics.utils.plotting
    from ultralytics.utils import SETTINGS

    SETTINGS.update({"sync": False, **{k: False for k in INTEGRATIONS if k in SETTINGS}})

    def no_font(*args, **kwargs):
        return None

    for module in (ultralytics.data.utils, ultralytics.utils.checks, ultralytics.utils.plotting):
        module.check_font = no_font
    ultralytics.engine.trainer.check_amp = lambda model: next(model.parameters()).device.type == "cuda"


def use_polars_standin() -> bool:
    """Let Ultralytics train where polars is not installed (a GPU machine with no package index).

    Its trainer imports polars at every checkpoint save only to copy
    results.csv into the checkpoint, inside a try that falls back to an empty
    dict; polars' runtime wheel is 54 MB. A stand-in module whose every
    attribute is missing lets that fallback happen. Returns whether it was needed.
    """
    if importlib.util.find_spec("polars") is not None:
        return False
    standin = types.ModuleType("polars", "binsight bench stand-in: polars is not installed here")

    def missing(name: str):
        # AttributeError, as for any missing attribute: inspect and hasattr() probe modules for __file__ & co.
        raise AttributeError(f"polars is not installed (bench stand-in; polars.{name} unavailable)")

    standin.__getattr__ = missing
    sys.modules["polars"] = standin
    return True


def train(name: str, data_yaml: Path, out: Path, epochs: int, imgsz: int, batch: int, seed: int, device: str, workers: int) -> dict:
    """Train from the model YAML; returns the figures of training and the selected checkpoint (best.pt)."""
    if name not in CONTENDERS:
        raise ValueError(f"unknown YOLO contender {name!r}; known: {CONTENDERS}")
    shutil.rmtree(out, ignore_errors=True)  # a fresh run each time: resumed or reused runs would make the wall time lie
    out.mkdir(parents=True)
    offline_ultralytics(out / "ultralytics-config")
    polars_standin = use_polars_standin()
    from ultralytics import YOLO

    model = YOLO(f"{name}.yaml")  # architecture only: no hub weights exist offline
    best = {}

    def note_best(trainer) -> None:
        # The selected epoch, read while training: the final best.pt has its epoch stripped. The final
        # evaluation of best.pt calls this too, with epoch = epochs: not an epoch of its own.
        if trainer.epoch < trainer.epochs and trainer.fitness is not None and trainer.fitness == trainer.best_fitness:
            best.update(epoch=trainer.epoch + 1, val_map_50=float(trainer.metrics["metrics/mAP50(B)"]))

    model.add_callback("on_fit_epoch_end", note_best)
    started = time.monotonic()
    model.train(
        data=str(data_yaml.resolve()),
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        workers=workers,
        device=device,
        seed=seed,
        deterministic=True,
        pretrained=False,
        amp=device != "cpu",
        plots=False,
        project=str(out.resolve()),
        name="train",
        exist_ok=True,
    )
    train_seconds = time.monotonic() - started
    return {
        # Relative to the contender's folder: the export may run on another machine, from a copy of it.
        "checkpoint": os.path.relpath(model.trainer.best, out.resolve()),
        "train_seconds": train_seconds,
        # Selected by Ultralytics' own fitness on the val split; its val mAP@.5 by its own evaluation.
        "best_epoch": best.get("epoch"),
        "val_map_50": best.get("val_map_50"),
        "device": device,
        "polars_standin": polars_standin,
        "settings": {"architecture": f"{name}.yaml", "batch": batch, "workers": workers, "input": imgsz, "amp": device != "cpu"},
    }


def export(trained: dict, out: Path, imgsz: int) -> dict:
    """ONNX of the selected checkpoint, on the CPU; may run on another machine than the training did."""
    offline_ultralytics(out / "ultralytics-config")
    from ultralytics import YOLO

    model = YOLO(str(out / trained["checkpoint"]))
    parameters = sum(p.numel() for p in model.model.parameters())
    onnx_path, end2end = export_onnx(model, out, "model", imgsz)
    # File names relative to the contender's folder, as the checkpoint: the folder may move between machines.
    return {"onnx": onnx_path.name, "onnx_end2end": None if end2end is None else end2end.name, "parameters": int(parameters)}


def export_onnx(model, folder: Path, stem: str, imgsz: int) -> tuple[Path, Path | None]:
    """<folder>/<stem>.onnx, Ultralytics' default export (nms=None: raw predictions for NMS outside, what its
    own validation scores), and for YOLO26 <stem>-end2end.onnx, its NMS-free one-to-one head (nms=False)."""

    def exported(**options) -> str:
        return model.export(format="onnx", imgsz=imgsz, batch=1, device="cpu", **options)  # written beside the weights, or in cwd

    plain = Path(shutil.move(exported(), folder / f"{stem}.onnx"))
    end2end = None
    if getattr(model.model.model[-1], "one2one_cv2", None) is not None:
        end2end = Path(shutil.move(exported(nms=False), folder / f"{stem}-end2end.onnx"))
    return plain, end2end
