"""binsight's contenders: the default recipe from scratch, and with the local ImageNet backbone.

Both are built from configs/params.yaml with only the benchmark's overrides
(epochs, seed, and for the ImageNet one the backbone, its normalisation and
its learning-rate share, IMAGENET_BACKBONE_LR_SCALE),
trained by `pipeline.train.train` and exported by pipeline/export.py's
`ImageInDetectionsOut` + `export_onnx`, so what is measured is the project's
own code path.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path

import torch
import yaml

from bench.onnx_detectors import cpu_session
from pipeline import hardware
from pipeline.atomic import write_bytes_atomic
from pipeline.config import DEFAULT_PARAMS, Params
from pipeline.evaluate import load_trained
from pipeline.export import ImageInDetectionsOut, ParityError, export_onnx, parity_check
from pipeline.filehash import file_sha256
from pipeline.imageio import read_rgb
from pipeline.train import CHECKPOINT, fingerprint, train

# Detections kept for mAP: as low as the YOLO adapters' confidence (0.001) and as
# many as COCO mAP counts (100), so no contender is cut short by a deployment threshold.
MAP_SCORE_THRESH = 0.001
MAP_DETECTIONS = 100
# When each part of a training began and how long it ran (a resumed training's wall time is their sum).
TRAIN_PARTS = "train-parts.json"
# The pretrained backbone learns at this share of the recipe's lr. At the full rate (session 7, one H100, AdamW,
# batch 32, lr 0.004) its validation mAP@.5 peaked at 0.025 in epoch 4 and stayed at 0.013 from epoch 25 on: the
# likely cause, the new layers' large early updates wrecking the ImageNet features. At 0.1, the usual fine-tuning
# choice, it reached 0.345 by epoch 11 (session 13, same machine kind; BENCHMARKS.md); --set
# train.backbone_lr_scale=... overrides it.
IMAGENET_BACKBONE_LR_SCALE = 0.1


def apply_override(raw: dict, assignment: str) -> None:
    """`section.key=value` (value in YAML) into the raw params; unknown keys fail in Params validation."""
    key, sep, value = assignment.partition("=")
    section, dot, name = key.partition(".")
    if not sep or not dot or section not in raw:
        raise SystemExit(f"--set {assignment!r}: expected SECTION.KEY=VALUE with a section of the params file")
    raw[section][name] = yaml.safe_load(value)


def contender_params(name: str, epochs: int, seed: int, backbone_weights: Path, params_file: Path = DEFAULT_PARAMS,
                     overrides: tuple[str, ...] = ()) -> Params:
    raw = copy.deepcopy(yaml.safe_load(params_file.read_text()))
    raw["train"].update(epochs=epochs, seed=seed)
    if name == "binsight-imagenet":
        if not backbone_weights.is_file():
            raise SystemExit(
                f"ImageNet backbone weights not found: {backbone_weights} "
                "(../shared/weights/mobilenet_v2_imagenet.pth next to the checkout; pass --backbone-weights)"
            )
        # The file's README: a torchvision mobilenet_v2 state_dict for inputs scaled to [-1, 1].
        raw["model"].update(
            backbone="mobilenet_v2", backbone_weights=str(backbone_weights.resolve()), pixel_mean=[0.5] * 3, pixel_std=[0.5] * 3
        )
        raw["train"]["backbone_lr_scale"] = IMAGENET_BACKBONE_LR_SCALE
    elif name != "binsight":
        raise ValueError(f"unknown binsight contender {name!r}")
    for assignment in overrides:  # tuning experiments; both binsight contenders get them, after the above
        apply_override(raw, assignment)
    model = raw["model"]
    pinned = any(a.startswith("model.backbone_weights_sha256=") for a in overrides)
    if not pinned and model.get("backbone_weights") and Path(model["backbone_weights"]).is_file():
        # Pin the file this run used (whatever --set chose): the contender's params.yaml then names it exactly.
        model["backbone_weights_sha256"] = file_sha256(Path(model["backbone_weights"]))
    return Params.model_validate(raw)


def training_device(params: Params) -> str:
    """Where pipeline/hardware.py will train (`train.device: auto` takes a GPU when torch sees one)."""
    if params.train.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return params.train.device


def export(detector: torch.nn.Module, path: Path, params: Params, images: list) -> str:
    """Export and run pipeline/export.py's parity check; its outcome in words.

    A disagreement is reported, not fatal: after a few epochs many scores are
    nearly equal, and the two runtimes may order such ties differently at the
    cut-off of the detection count, which is no export fault.
    """
    module = ImageInDetectionsOut(detector).eval()
    export_onnx(module, path, params.export.opset, torch.from_numpy(images[0]))
    try:
        checked = parity_check(module, cpu_session(path), images, params.export.parity_rtol)
    except ParityError as err:
        print(f"WARNING {path}: {err}", flush=True)
        return f"differs: {err}"
    return f"identical detections on {checked} val images"


def earlier_parts(out: Path, params: Params, params_text: str, class_names: list[str], splits: Path, data: Path) -> list[dict]:
    """The parts of an interrupted training in `out` that a resumed one continues, each with the seconds
    it trained up to its last checkpoint (the trainer resumes from there; later work is done again).

    Refuses, before any training, a folder that cannot be resumed as this training: the trainer would
    start afresh (its checkpoint's fingerprint differs), and the summed wall time would lie."""
    record, checkpoint = out / TRAIN_PARTS, out / CHECKPOINT
    for needed in (record, checkpoint, out / "params.yaml"):
        if not needed.is_file():
            raise SystemExit(f"--resume: {needed} not found, so there is nothing to resume (a run cut before its first "
                             "checkpoint leaves none); train afresh without --resume")
    if (out / "params.yaml").read_text() != params_text:
        raise SystemExit(f"--resume: {out / 'params.yaml'} holds other parameters than this run's; train afresh without --resume")
    if torch.load(checkpoint, map_location="cpu", weights_only=False).get("fingerprint") != resume_fingerprint(params, class_names, splits, data):
        raise SystemExit(f"--resume: {checkpoint} was trained with other code, data or hardware setup than this run "
                         "(pipeline/train.py's fingerprint); train afresh without --resume")
    parts = json.loads(record.read_text())
    # The part that was cut off wrote the checkpoint last; its wall clock (not monotonic: another process) ends there.
    parts[-1]["seconds"] = max(0.0, checkpoint.stat().st_mtime - parts[-1]["started_unix"])
    return parts


def resume_fingerprint(params: Params, class_names: list[str], splits: Path, data: Path) -> str:
    """The fingerprint the trainer will compare with its checkpoint's, on this machine, as `pipeline.train` computes it."""
    placement = hardware.place(params.train)
    try:
        return fingerprint(params, class_names, splits, data, placement, hardware.schedule(params.train, placement))
    finally:
        hardware.release(placement)


def train_contender(name: str, params: Params, class_names: list[str], splits: Path, data: Path, out: Path,
                    resume: bool = False) -> dict:
    """Train by the project's own trainer; the figures of training and the selected weights (model.pt).

    `resume`: continue the interrupted training in `out` (a GPU call's time limit cut it; the next call, on
    the same warm machine, goes on from its checkpoint). The wall time is then the sum of the parts."""
    params_text = yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False)
    if resume:
        parts = earlier_parts(out, params, params_text, class_names, splits, data)
    else:
        shutil.rmtree(out, ignore_errors=True)  # a leftover checkpoint would resume, and the wall time would lie
        out.mkdir(parents=True)
        (out / "params.yaml").write_text(params_text)
        parts = []
    parts.append({"started_unix": time.time()})
    write_bytes_atomic(out / TRAIN_PARTS, (json.dumps(parts) + "\n").encode())
    started = time.monotonic()
    summary = train(params, class_names, splits, data, out)
    parts[-1]["seconds"] = time.monotonic() - started
    write_bytes_atomic(out / TRAIN_PARTS, (json.dumps(parts) + "\n").encode())
    device = training_device(params)
    return {
        "checkpoint": "model.pt",  # relative to the contender's folder: the export may run on another machine
        "train_seconds": sum(part["seconds"] for part in parts),
        "train_parts_seconds": [part["seconds"] for part in parts],
        "best_epoch": summary["best_epoch"],
        "val_map_50": summary["val_map_50"],
        "device": device,
        "settings": {
            "architecture": f"{params.model.architecture}/{params.model.backbone}",
            "backbone_weights": params.model.backbone_weights,
            "backbone_weights_sha256": params.model.backbone_weights_sha256,
            "backbone_lr_scale": params.train.backbone_lr_scale,
            "batch": params.train.cuda_batch_size if device == "cuda" else params.train.batch_size,
            "precision": params.train.precision,
            "input": params.model.min_size,
            "box_score_thresh": params.model.box_score_thresh,
        },
    }


def export_contender(trained: dict, params: Params, splits: Path, data: Path, out: Path) -> dict:
    """Two exports of the selected weights, on the CPU: model.onnx as configured (what the service would
    run, timed) and model-map.onnx with low thresholds (scored for mAP)."""
    torch.set_num_threads(params.train.threads)
    detector, _, _ = load_trained(out / trained["checkpoint"])
    val = json.loads((splits / "val.json").read_text())
    images = [read_rgb(data / "images" / im["file_name"]) for im in val["images"][: params.export.parity_images]]
    parity = {"model.onnx": export(detector, out / "model.onnx", params, images)}
    detector.score_thresh, detector.detections_per_img = MAP_SCORE_THRESH, MAP_DETECTIONS
    parity["model-map.onnx"] = export(detector, out / "model-map.onnx", params, images)
    return {
        "onnx": "model.onnx",  # relative to the contender's folder, as the checkpoint
        "onnx_map": "model-map.onnx",
        "parameters": sum(p.numel() for p in detector.parameters()),
        "onnx_parity": parity,
    }
