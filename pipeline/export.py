"""DVC stage `export`: the trained detector as ONNX, checked against PyTorch.

    python -m pipeline.export --model build/train/model.pt --splits build/splits --data data --out models

`models/model.onnx` takes one decoded RGB image, uint8 [H, W, 3] of any size,
and returns `boxes` (float32 [N, 4], xyxy pixels of that image), `labels`
(int64 [N], 1..K) and `scores` (float32 [N]). Resizing and normalisation live
inside the graph, so a caller (the service, a truck's computer) only decodes.
Class names, input size, thresholds, the fraction policy, the inference size
and quality gate (`inspection`), version and dataset hash are stored in the
model's metadata and in `models/model_card.json` (the git commit and the
MLflow run in `models/provenance.json`, outside DVC): the service
reads them there, so it serves the verdict the evaluation measured, at the
verdict threshold the evaluation chose (`thresholds.verdict`, from
metrics.json). The stage fails unless ONNX Runtime reproduces PyTorch's
detections on validation images.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import yaml
from pydantic import ValidationError

from pipeline import hardware
from pipeline.atomic import write_bytes_atomic
from pipeline.coco import write_json_atomic
from pipeline.config import add_config_arguments, load_params, load_taxonomy
from pipeline.dataset import CocoDetection, read_rgb
from pipeline.trained import ImageInDetectionsOut, load_trained
from pipeline.inspection import InspectionSpec
from pipeline.model_card import CARD_FILE, Evaluation, InputSpec, InspectionSection, ModelCard, Parity, Thresholds, describe
from pipeline.tracking import configure, read_run_id

INPUT_NAME = "image"
OUTPUT_NAMES = ("boxes", "labels", "scores")
PROVENANCE_FILE = "provenance.json"
"""Beside the card, outside DVC: the git commit and the MLflow run and model of the export."""


class ParityError(RuntimeError):
    pass


def export_onnx(module: torch.nn.Module, path: Path, opset: int, example: torch.Tensor) -> None:
    with warnings.catch_warnings():
        # The TorchScript tracer warns about every Python-level shape check in
        # torchvision's detectors; the parity check below is the real test.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "height", 1: "width"}, **{n: {0: "detections"} for n in OUTPUT_NAMES}},
            dynamo=False,  # the dynamo exporter does not handle torchvision's data-dependent detection post-processing
        )


def compare(torch_out, onnx_out, rtol: float) -> str | None:
    """None when both agree: the same detections (label, score and box within rtol relative), in any order.

    Order is not compared because detections whose scores tie come out in
    either order: the two runtimes' sorts need not break ties alike.
    """
    (tb, tl, ts), (ob, ol, os_) = [np.asarray(t) for t in torch_out], [np.asarray(t) for t in onnx_out]
    if tb.shape != ob.shape:
        return f"{len(tb)} detections in PyTorch, {len(ob)} in ONNX Runtime"

    def same(i: int, j: int) -> bool:
        return tl[i] == ol[j] and abs(float(ts[i]) - float(os_[j])) <= rtol and _box_error(tb[i], ob[j]) <= rtol

    free = list(range(len(ob)))
    for i in range(len(tb)):
        j = next((j for j in sorted(free, key=lambda j: abs(j - i)) if same(i, j)), None)  # the same position first
        if j is None:
            return _difference(i, (tb, tl, ts), (ob, ol, os_), rtol)
        free.remove(j)
    return None


def _box_error(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.abs(a - b) / np.maximum(np.abs(a), 1.0)).max())


def _difference(i: int, torch_out, onnx_out, rtol: float) -> str:
    """What differs at detection i, which has no counterpart in the other runtime."""
    (tb, tl, ts), (ob, ol, os_) = torch_out, onnx_out
    if tl[i] != ol[i]:
        return f"labels differ at detection {i}: {tl.tolist()} vs {ol.tolist()}"
    error = _box_error(tb[i], ob[i])
    if error > rtol:
        return f"box coordinates differ by up to {error:.2e} relative at detection {i} (allowed {rtol:.0e})"
    return f"scores differ at detection {i}: {float(ts[i]):.6f} vs {float(os_[i]):.6f}"


def parity_check(module: torch.nn.Module, session: ort.InferenceSession, images: list[np.ndarray], rtol: float) -> int:
    for i, image in enumerate(images):
        with torch.inference_mode():
            expected = [t.numpy() for t in module(torch.from_numpy(image))]
        got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: image})
        problem = compare(expected, got, rtol)
        if problem:
            raise ParityError(f"ONNX Runtime and PyTorch disagree on validation image {i}: {problem}")
    return len(images)


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        # dvc.lock is rewritten by the very `dvc repro` that runs this stage: not a local change.
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock"], capture_output=True, text=True
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dataset_hash(dvc_file: Path) -> str:
    """The md5 DVC records for the dataset folder: names the exact data a model was trained on."""
    try:
        outs = yaml.safe_load(dvc_file.read_text())["outs"]
        return outs[0]["md5"]
    except (OSError, KeyError, IndexError, TypeError):
        return "unknown"


def verdict_threshold(params, metrics: dict | None) -> float:
    """The verdict threshold for the card: the evaluation's choice, or verdict.threshold in fixed mode."""
    mode = params.verdict.threshold_mode
    if metrics is None:
        if mode == "fixed":
            return params.verdict.threshold
        raise SystemExit(
            "verdict.threshold_mode is target_precision: the threshold is chosen by the evaluate stage; "
            "pass its metrics with --metrics reports/metrics.json"
        )
    verdict = metrics.get("verdict", {})
    if verdict.get("threshold_mode") != mode or "threshold" not in verdict:
        raise SystemExit(
            f"the metrics file was written under threshold_mode {verdict.get('threshold_mode')!r}, the params say {mode!r}: "
            "run the evaluate stage again"
        )
    return float(verdict["threshold"])


def export(model_path: Path, splits: Path, data: Path, out: Path, dvc_file: Path, metrics: Path | None, params, taxonomy) -> dict:
    hardware.fix_cpu_numerics(params.train.cpu_numerics)  # the arithmetic training used (pipeline/hardware.py)
    torch.set_num_threads(params.train.threads)
    evaluation = json.loads(metrics.read_text()) if metrics is not None and metrics.exists() else None
    threshold = verdict_threshold(params, evaluation)
    detector, class_names, model_cfg = load_trained(model_path)
    module = ImageInDetectionsOut(detector).eval()
    val = CocoDetection(splits / "val.json", data)
    images = [read_rgb(data / "images" / im["file_name"]) for im in val.images[: params.export.parity_images]]
    if not images:
        raise SystemExit("the validation split is empty; nothing to check the export against")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".model.onnx.tmp"
    export_onnx(module, tmp, params.export.opset, torch.from_numpy(images[0]))

    weights_digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in detector.state_dict().values())).hexdigest()
    try:
        card = ModelCard(
            version=weights_digest[:12],
            architecture=f"{model_cfg.architecture}/{model_cfg.backbone}",
            class_names=class_names,
            input=InputSpec(name=INPUT_NAME, min_size=model_cfg.min_size, max_size=model_cfg.max_size),
            thresholds=Thresholds(box_score=model_cfg.box_score_thresh, nms_iou=model_cfg.box_nms_thresh, verdict=threshold),
            fractions=taxonomy.fractions,
            inspection=InspectionSection.from_spec(InspectionSpec.from_params(params.verdict)),
            dataset_md5=dataset_hash(dvc_file),
            opset=params.export.opset,
            evaluation=None if evaluation is None else Evaluation(
                map=evaluation["map"], map_50=evaluation["map_50"], verdict=evaluation["verdict"], gated=evaluation["gated"]
            ),
        )
    except ValidationError as err:  # e.g. a class list whose fractions name classes the model was not trained on
        tmp.unlink(missing_ok=True)
        raise SystemExit(f"cannot write the model card: {describe(err)}") from None

    model_proto = onnx.load(str(tmp))
    onnx.checker.check_model(model_proto)
    for key, value in card.onnx_metadata().items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model_proto, str(tmp))

    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    try:
        checked = parity_check(module, session, images, params.export.parity_rtol)
    except ParityError as err:
        tmp.unlink(missing_ok=True)
        raise SystemExit(f"export failed the parity check: {err}") from None
    card = card.model_copy(update={"parity": Parity(images=checked, rtol=params.export.parity_rtol)})
    tmp.replace(out / "model.onnx")
    write_bytes_atomic(out / CARD_FILE, card.to_json().encode("utf-8"))

    # Where the model came from (commit, MLflow run) goes beside the card, not
    # into it: model.onnx and the card are DVC outputs whose hashes dvc.lock
    # records, and the same commit must give the same hashes. A commit id or a
    # run id inside them would differ on every run (and the commit that holds
    # dvc.lock can never be the one the lock's outputs name).
    written = json.loads(card.to_json())
    provenance = {"git_commit": git_commit()}
    run_id = read_run_id(model_path.parent / "run.json")
    if run_id:
        provenance["mlflow"] = _log_to_mlflow(run_id, model_proto, written, provenance["git_commit"])
    write_json_atomic(out / PROVENANCE_FILE, provenance)
    return written


def _log_to_mlflow(run_id: str, model_proto: onnx.ModelProto, card: dict, commit: str) -> dict:
    mlflow = configure()
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, 3), INPUT_NAME)]),
        outputs=Schema(
            [
                TensorSpec(np.dtype(np.float32), (-1, 4), "boxes"),
                TensorSpec(np.dtype(np.int64), (-1,), "labels"),
                TensorSpec(np.dtype(np.float32), (-1,), "scores"),
            ]
        ),
    )
    with mlflow.start_run(run_id=run_id):
        info = mlflow.onnx.log_model(model_proto, name="model", signature=signature)
        mlflow.log_dict(card, "model_card.json")
        mlflow.set_tag("git_commit", commit)
    return {"run_id": run_id, "model_uri": info.model_uri}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for model.onnx and model_card.json")
    parser.add_argument("--dataset-dvc", type=Path, default=Path("data.dvc"), help="the dataset's .dvc file (its hash goes in the card)")
    parser.add_argument("--metrics", type=Path, default=None, help="evaluation metrics.json to quote in the card")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    card = export(args.model, args.splits, args.data, args.out, args.dataset_dvc, args.metrics, load_params(args.params), load_taxonomy(args.classes))
    print(f"exported {args.out / 'model.onnx'} version {card['version']}; parity on {card['parity']['images']} validation images")


if __name__ == "__main__":
    main()
