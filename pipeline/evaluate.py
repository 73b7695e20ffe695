"""DVC stage `evaluate`: the trained detector on the held-out test split.

    python -m pipeline.evaluate --model build/train/model.pt --splits build/splits --data data --out reports

Writes `metrics.json` (COCO mAP@[.5:.95], mAP@.5, per-class AP, and per-image
verdict precision/recall/F1 under each image's fraction policy) and, under
`plots/`, the verdict PR curve, the class confusion matrix and a grid of test
images with predictions drawn. The test split is never seen in training or
model selection (that is what `val` is for).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision.ops import box_iou

from pipeline.config import ModelConfig, add_config_arguments, load_params, load_taxonomy
from pipeline.dataset import CocoDetection, read_rgb, xywh_to_xyxy
from pipeline.metrics import coco_detection_metrics, precision_recall_curve, verdict_metrics
from pipeline.model import build_model
from pipeline.policy import FractionPolicy
from pipeline.predict import ImagePrediction, predict, to_coco_results
from pipeline.tracking import configure, read_run_id

MATCH_IOU = 0.5
BACKGROUND = "background"


def load_trained(path: Path) -> tuple[torch.nn.Module, list[str], ModelConfig]:
    bundle = torch.load(path, map_location="cpu", weights_only=False)
    cfg = ModelConfig.model_validate(bundle["model_config"])
    model = build_model(cfg.model_copy(update={"backbone_weights": None}), len(bundle["class_names"]))
    model.load_state_dict(bundle["state_dict"])
    return model.eval(), bundle["class_names"], cfg


def image_verdicts(gt: dict, predictions: list[ImagePrediction], class_names: list[str], policy: FractionPolicy):
    """Per test image: (truly contaminated, predicted contaminated, contamination score)."""
    truth_labels: dict[int, list[str]] = {im["id"]: [] for im in gt["images"]}
    for a in gt["annotations"]:
        truth_labels[a["image_id"]].append(class_names[a["category_id"] - 1])
    fraction = {im["id"]: im["capture"]["fraction"] for im in gt["images"]}
    rows = []
    for p in predictions:
        names = [class_names[i - 1] for i in p.labels.tolist()]
        verdict = policy.judge(fraction[p.image_id], names, p.scores.tolist())
        truly = bool(set(truth_labels[p.image_id]) & policy.contaminants(fraction[p.image_id]))
        rows.append((truly, verdict.contaminated, verdict.score))
    return rows


def confusion_pairs(gt: dict, predictions: list[ImagePrediction], class_names: list[str], threshold: float) -> list[tuple[str, str]]:
    """(actual, predicted) per box: matched greedily by IoU >= 0.5, else paired with `background`."""
    gt_by_image: dict[int, list[dict]] = {im["id"]: [] for im in gt["images"]}
    for a in gt["annotations"]:
        gt_by_image[a["image_id"]].append(a)
    pairs = []
    for p in predictions:
        keep = p.scores >= threshold
        boxes, labels = torch.as_tensor(p.boxes[keep]).float(), p.labels[keep].tolist()
        anns = gt_by_image[p.image_id]
        actual = [class_names[a["category_id"] - 1] for a in anns]
        match: dict[int, int] = {}  # ground-truth index -> detection index
        if anns and labels:
            gt_boxes = torch.tensor([xywh_to_xyxy(a["bbox"]) for a in anns], dtype=torch.float32)
            iou = box_iou(gt_boxes, boxes)
            for flat in torch.argsort(iou.flatten(), descending=True).tolist():
                g, d = divmod(flat, len(labels))
                if iou[g, d] < MATCH_IOU:
                    break
                if g not in match and d not in match.values():
                    match[g] = d
        for g, name in enumerate(actual):
            pairs.append((name, class_names[labels[match[g]] - 1] if g in match else BACKGROUND))
        matched = set(match.values())
        pairs.extend((BACKGROUND, class_names[labels[d] - 1]) for d in range(len(labels)) if d not in matched)
    return pairs


def draw_grid(dataset: CocoDetection, predictions: list[ImagePrediction], class_names: list[str], threshold: float, count: int, path: Path) -> None:
    tiles = []
    for info, p in list(zip(dataset.images, predictions, strict=True))[:count]:
        img = cv2.cvtColor(read_rgb(dataset.data_dir / "images" / info["file_name"]), cv2.COLOR_RGB2BGR)
        for a in dataset.annotations[info["id"]]:
            x0, y0, x1, y1 = (int(v) for v in xywh_to_xyxy(a["bbox"]))
            cv2.rectangle(img, (x0, y0), (x1, y1), (0, 200, 0), 1)  # ground truth in green
        for box, score, label in zip(p.boxes, p.scores, p.labels, strict=True):
            if score < threshold:
                continue
            x0, y0, x1, y1 = (int(v) for v in box)
            cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 255), 2)  # predictions in red
            cv2.putText(img, f"{class_names[label - 1]} {score:.2f}", (x0, max(10, y0 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 255), 1)
        tiles.append(cv2.resize(img, (320, 320)))
    if not tiles:
        return
    cols = 4
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.vstack([np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)])
    cv2.imwrite(str(path), grid)


def evaluate(model_path: Path, splits: Path, data: Path, out: Path, params, taxonomy) -> dict:
    torch.set_num_threads(params.train.threads)
    model, class_names, _ = load_trained(model_path)
    if class_names != taxonomy.class_names:
        raise SystemExit(f"the model's classes {class_names} differ from configs/classes.yaml {taxonomy.class_names}")
    dataset = CocoDetection(splits / "test.json", data)
    predictions = predict(model, dataset)
    detection = coco_detection_metrics(dataset.coco, to_coco_results(predictions))
    policy = FractionPolicy.from_mapping(taxonomy.fractions, params.verdict.threshold)
    rows = image_verdicts(dataset.coco, predictions, class_names, policy)
    verdict = verdict_metrics([r[0] for r in rows], [r[1] for r in rows])
    metrics = {
        "test_images": len(dataset),
        "map": detection["map"],
        "map_50": detection["map_50"],
        "per_class": detection["per_class"],
        "verdict": {"threshold": params.verdict.threshold, **verdict},
    }
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    (plots / "verdict_pr.json").write_text(json.dumps(precision_recall_curve([r[0] for r in rows], [r[2] for r in rows]), indent=1) + "\n")
    with open(plots / "confusion.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        writer.writerows(confusion_pairs(dataset.coco, predictions, class_names, params.verdict.threshold))
    draw_grid(dataset, predictions, class_names, params.verdict.threshold, params.evaluate.grid_images, plots / "predictions.png")

    run_id = read_run_id(model_path.parent / "run.json")
    if run_id:
        mlflow = configure()
        with mlflow.start_run(run_id=run_id):
            mlflow.log_metrics({"test_map": metrics["map"], "test_map_50": metrics["map_50"], **{f"test_verdict_{k}": v for k, v in verdict.items()}})
            for name, ap in detection["per_class"].items():
                if ap["ap"] is not None:
                    mlflow.log_metric(f"test_ap_{name}", ap["ap"])
            mlflow.log_artifacts(str(plots), artifact_path="evaluation")
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
    v = m["verdict"]
    print(f"test: mAP {m['map']:.3f}  mAP@.5 {m['map_50']:.3f}  verdict P {v['precision']:.3f} R {v['recall']:.3f} F1 {v['f1']:.3f}")
    for name, ap in m["per_class"].items():
        print(f"  {name:16s} AP {ap['ap'] if ap['ap'] is None else round(ap['ap'], 3)}  AP@.5 {ap['ap_50'] if ap['ap_50'] is None else round(ap['ap_50'], 3)}")


if __name__ == "__main__":
    main()
