"""DVC stage `evaluate`: the trained detector on the held-out test split, through the service's verdict path.

    python -m pipeline.evaluate --model build/train/model.pt --splits build/splits --data data --out reports

Every validation and test photo goes through `pipeline.inspection.inspect`,
the code the service runs: read upright, quality gate, downscale to the
inference size, detect, fraction policy, threshold. The detector is the very
module export turns into ONNX (`ImageInDetectionsOut`). The verdict
threshold is chosen on the validation split for `verdict.target_precision`
(pipeline/threshold.py); at that threshold, `metrics.json` reports on the
test split:
- COCO mAP@[.5:.95], mAP@.5 and per-class AP (pycocotools), over all test photos;
- `verdict`: precision, recall and F1 of the per-image verdict under each
  photo's fraction policy, over the photos the quality gate let through
  (the others are `inconclusive` in service: neither right nor wrong), with
  the threshold, how it was chosen and the validation precision/recall at it;
- `gated`: how many test photos the gate set aside, and for what.
Under `plots/`: the verdict PR curve, the class confusion matrix and a grid
of test images with predictions drawn. The test split is never seen in
training or model selection (that is what `val` is for).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision.ops import box_iou

from pipeline import hardware
from pipeline.coco import IMAGES_DIR
from pipeline.config import add_config_arguments, load_params, load_taxonomy
from pipeline.dataset import CocoDetection, read_rgb, xywh_to_xyxy
from pipeline.inspection import DetectFn, InspectionResult, InspectionSpec, inspect, judge
from pipeline.labels import label_name
from pipeline.metrics import coco_detection_metrics, precision_recall_curve, verdict_metrics
from pipeline.policy import FractionPolicy
from pipeline.threshold import choose_threshold
from pipeline.tracking import configure, read_run_id
from pipeline.trained import ImageInDetectionsOut, load_trained, torch_detect_fn

MATCH_IOU = 0.5
# The files under reports/plots/, each a DVC output of its own (dvc.yaml).
PR_CURVE, CONFUSION, GRID = "verdict_pr.json", "confusion.csv", "predictions.png"
PLOTS = (PR_CURVE, CONFUSION, GRID)
BACKGROUND = "background"
MEASURED_ON = (
    "test images the quality gate let through; the service answers `inconclusive` for the others, counted under `gated`"
)


@dataclass(frozen=True)
class InspectedImage:
    image_id: int
    fraction: str
    contaminated: bool
    """The truth: the image holds a contaminant of its fraction."""
    result: InspectionResult


def inspect_split(dataset: CocoDetection, detect: DetectFn, policy: FractionPolicy, spec: InspectionSpec, class_names: list[str]) -> list[InspectedImage]:
    out = []
    for info in dataset.images:
        fraction = info["capture"]["fraction"]
        rgb = read_rgb(dataset.data_dir / IMAGES_DIR / info["file_name"])  # upright, as the service decodes uploads
        result = inspect(rgb, fraction, detect, policy, spec.gate, spec.max_side)
        truth = {label_name(class_names, a["category_id"]) for a in dataset.annotations[info["id"]]}
        out.append(InspectedImage(info["id"], fraction, bool(truth & policy.contaminants(fraction)), result))
    return out


def served(images: list[InspectedImage], policy: FractionPolicy) -> list[InspectedImage]:
    """The images with the verdicts the service would give under `policy` (same rule: `judge`)."""
    return [
        InspectedImage(im.image_id, im.fraction, im.contaminated, judge(im.fraction, im.result.detections, im.result.quality_issue, policy))
        for im in images
    ]


def with_verdict(images: list[InspectedImage]) -> list[InspectedImage]:
    return [im for im in images if im.result.verdict != "inconclusive"]


def verdict_report(images: list[InspectedImage]) -> dict:
    """Precision, recall, F1 and counts of the verdicts, over the images that got one."""
    kept = with_verdict(images)
    m = verdict_metrics([im.contaminated for im in kept], [im.result.verdict == "contaminated" for im in kept])
    return {**m, "images_with_verdict": len(kept)}


def gated_report(images: list[InspectedImage]) -> dict:
    issues = Counter(im.result.quality_issue for im in images if im.result.quality_issue)
    count = sum(issues.values())
    return {"count": count, "share": count / len(images) if images else 0.0, "by_issue": dict(sorted(issues.items()))}


def coco_results(images: list[InspectedImage], class_names: list[str]) -> list[dict]:
    category = {name: i for i, name in enumerate(class_names, start=1)}
    return [
        {"image_id": im.image_id, "category_id": category[d.label], "bbox": [d.box[0], d.box[1], d.box[2] - d.box[0], d.box[3] - d.box[1]], "score": d.score}
        for im in images
        for d in im.result.detections
    ]


def confusion_pairs(gt: dict, images: list[InspectedImage], class_names: list[str], threshold: float) -> list[tuple[str, str]]:
    """(actual, predicted) per box: matched greedily by IoU >= 0.5, else paired with `background`."""
    gt_by_image: dict[int, list[dict]] = {im["id"]: [] for im in gt["images"]}
    for a in gt["annotations"]:
        gt_by_image[a["image_id"]].append(a)
    pairs = []
    for im in images:
        found = [d for d in im.result.detections if d.score >= threshold]
        anns = gt_by_image[im.image_id]
        actual = [label_name(class_names, a["category_id"]) for a in anns]
        match: dict[int, int] = {}  # ground-truth index -> detection index
        if anns and found:
            gt_boxes = torch.tensor([xywh_to_xyxy(a["bbox"]) for a in anns], dtype=torch.float32)
            iou = box_iou(gt_boxes, torch.tensor([d.box for d in found], dtype=torch.float32))
            for flat in torch.argsort(iou.flatten(), descending=True).tolist():
                g, k = divmod(flat, len(found))
                if iou[g, k] < MATCH_IOU:
                    break
                if g not in match and k not in match.values():
                    match[g] = k
        for g, name in enumerate(actual):
            pairs.append((name, found[match[g]].label if g in match else BACKGROUND))
        matched = set(match.values())
        pairs.extend((BACKGROUND, d.label) for k, d in enumerate(found) if k not in matched)
    return pairs


def draw_grid(dataset: CocoDetection, images: list[InspectedImage], threshold: float, count: int, path: Path) -> None:
    tiles = []
    for info, im in list(zip(dataset.images, images, strict=True))[:count]:
        img = cv2.cvtColor(read_rgb(dataset.data_dir / IMAGES_DIR / info["file_name"]), cv2.COLOR_RGB2BGR)
        for a in dataset.annotations[info["id"]]:
            x0, y0, x1, y1 = (int(v) for v in xywh_to_xyxy(a["bbox"]))
            cv2.rectangle(img, (x0, y0), (x1, y1), (0, 200, 0), 1)  # ground truth in green
        for d in im.result.detections:
            if d.score < threshold:
                continue
            x0, y0, x1, y1 = (int(v) for v in d.box)
            cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 255), 2)  # predictions in red
            cv2.putText(img, f"{d.label} {d.score:.2f}", (x0, max(10, y0 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 255), 1)
        if im.result.quality_issue:
            cv2.putText(img, im.result.quality_issue, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 165, 255), 1)
        tiles.append(cv2.resize(img, (320, 320)))
    if not tiles:
        return
    cols = 4
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.vstack([np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)])
    cv2.imwrite(str(path), grid)


@dataclass(frozen=True)
class Measurement:
    metrics: dict
    """What metrics.json holds: mAP on the test split, the verdict at the threshold chosen on val, gated counts."""
    test: list[InspectedImage]
    """The test images with the verdicts the service would give."""
    threshold: float


def measure(detect: DetectFn, val_set: CocoDetection, test_set: CocoDetection, params, taxonomy) -> Measurement:
    """Any detector through the service's verdict path: threshold chosen on val, everything reported on test.

    The evaluate stage passes the trained torch model, `make bench-realdata`
    every contender's ONNX model: one definition of what is measured.
    """
    class_names = taxonomy.class_names
    spec = InspectionSpec.from_params(params.verdict)
    # The verdict score does not depend on the threshold; the threshold is
    # applied afterwards through the same `judge` the service calls.
    scoring = FractionPolicy.from_mapping(taxonomy.fractions, params.verdict.threshold)

    val = inspect_split(val_set, detect, scoring, spec, class_names)
    usable = with_verdict(val)
    choice = choose_threshold(params.verdict, [im.contaminated for im in usable], [im.result.score for im in usable])
    policy = FractionPolicy.from_mapping(taxonomy.fractions, choice.threshold)
    val = served(val, policy)

    test = served(inspect_split(test_set, detect, scoring, spec, class_names), policy)
    detection = coco_detection_metrics(test_set.coco, coco_results(test, class_names))
    on_val, on_test = verdict_report(val), verdict_report(test)
    metrics = {
        "test_images": len(test),
        "map": detection["map"],
        "map_50": detection["map_50"],
        "per_class": detection["per_class"],
        "verdict": {
            "threshold": choice.threshold,
            "threshold_mode": choice.mode,
            "target_precision": choice.target_precision,
            "target_reached": choice.target_reached,
            "threshold_basis": choice.basis,
            "val_precision": on_val["precision"],
            "val_recall": on_val["recall"],
            "val_images_with_verdict": on_val["images_with_verdict"],
            # Precision is only as good as the clean bins it was measured on: the counts say how many.
            "val_clean_images": on_val["fp"] + on_val["tn"],
            "clean_images": on_test["fp"] + on_test["tn"],
            **on_test,
            "measured_on": MEASURED_ON,
        },
        "gated": gated_report(test),
        "val_gated": gated_report(val),
    }
    return Measurement(metrics, test, choice.threshold)


def evaluate(model_path: Path, splits: Path, data: Path, out: Path, params, taxonomy) -> dict:
    hardware.fix_cpu_numerics(params.train.cpu_numerics)  # the arithmetic training used (pipeline/hardware.py)
    torch.set_num_threads(params.train.threads)
    model, class_names, _ = load_trained(model_path)
    if class_names != taxonomy.class_names:
        raise SystemExit(f"the model's classes {class_names} differ from configs/classes.yaml {taxonomy.class_names}")
    detect = torch_detect_fn(ImageInDetectionsOut(model).eval(), class_names)
    dataset = CocoDetection(splits / "test.json", data)
    measured = measure(detect, CocoDetection(splits / "val.json", data), dataset, params, taxonomy)
    metrics, test, threshold = measured.metrics, measured.test, measured.threshold
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    kept = with_verdict(test)
    curve = precision_recall_curve([im.contaminated for im in kept], [im.result.score for im in kept])
    (plots / PR_CURVE).write_text(json.dumps(curve, indent=1) + "\n")
    with open(plots / CONFUSION, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        writer.writerows(confusion_pairs(dataset.coco, test, class_names, threshold))
    draw_grid(dataset, test, threshold, params.evaluate.grid_images, plots / GRID)

    run_id = read_run_id(model_path.parent / "run.json")
    if run_id:
        mlflow = configure()
        numbers = {k: v for k, v in metrics["verdict"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        with mlflow.start_run(run_id=run_id):
            mlflow.log_metrics({
                "test_map": metrics["map"], "test_map_50": metrics["map_50"], "test_gated_share": metrics["gated"]["share"],
                **{f"test_verdict_{k}": v for k, v in numbers.items()},
            })
            for name, ap in metrics["per_class"].items():
                if ap["ap"] is not None:
                    mlflow.log_metric(f"test_ap_{name}", ap["ap"])
            for plot in PLOTS:  # not the whole folder: DVC clears only its declared outputs there
                mlflow.log_artifact(str(plots / plot), artifact_path="evaluation")
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="reports folder: metrics.json and plots/")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    m = evaluate(args.model, args.splits, args.data, args.out, load_params(args.params), load_taxonomy(args.classes))
    v, g = m["verdict"], m["gated"]
    print(f"test: mAP {m['map']:.3f}  mAP@.5 {m['map_50']:.3f}")
    print(f"verdict threshold {v['threshold']:.3f} ({v['threshold_basis']}); validation P {v['val_precision']:.3f} R {v['val_recall']:.3f} "
          f"on {v['val_images_with_verdict']} images, {v['val_clean_images']} of them clean")
    print(f"test verdict P {v['precision']:.3f} R {v['recall']:.3f} F1 {v['f1']:.3f} on {v['images_with_verdict']} images, {v['clean_images']} of them clean; "
          f"{g['count']} of {m['test_images']} set aside by the quality gate {g['by_issue']}")
    for name, ap in m["per_class"].items():
        print(f"  {name:16s} AP {ap['ap'] if ap['ap'] is None else round(ap['ap'], 3)}  AP@.5 {ap['ap_50'] if ap['ap_50'] is None else round(ap['ap_50'], 3)}")


if __name__ == "__main__":
    main()
