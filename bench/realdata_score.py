"""One scoring path for every contender: pycocotools mAP and the per-image verdict.

Verdict: an image is truly contaminated when it has any box (all seven
TrashNet++ classes are contaminants in biowaste, configs/recipes/trashnetpp/),
and its contamination score is its best detection's score. The verdict
threshold is chosen on the val split (the lowest score at which precision
reaches `min_precision`, i.e. the most recall at that precision) and then
applied unchanged to the test split; the rule is the evaluate stage's own
(pipeline/threshold.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.onnx_detectors import OnnxDetector
from pipeline.imageio import read_rgb
from pipeline.metrics import coco_detection_metrics, verdict_metrics
from pipeline.predict import ImagePrediction, to_coco_results
from pipeline.threshold import lowest_threshold_for_precision


def predict_split(detector: OnnxDetector, coco: dict, images_dir: Path) -> list[ImagePrediction]:
    out = []
    for im in coco["images"]:
        d = detector.predict(read_rgb(images_dir / im["file_name"]))
        out.append(ImagePrediction(im["id"], d.boxes, d.scores, d.labels))
    return out


def image_truth_and_scores(coco: dict, predictions: list[ImagePrediction]) -> tuple[list[bool], list[float]]:
    with_boxes = {a["image_id"] for a in coco["annotations"]}
    truth = [p.image_id in with_boxes for p in predictions]
    scores = [float(p.scores.max()) if len(p.scores) else 0.0 for p in predictions]
    return truth, scores


def choose_threshold(truth: list[bool], scores: list[float], min_precision: float) -> tuple[float, bool]:
    """(threshold, reached) by the project's rule (pipeline/threshold.py), as the evaluate stage chooses it.

    Without any basis (no contaminated val image, or no detection at all)
    the threshold is 1.0, which flags almost nothing, and reached is False.
    """
    found = lowest_threshold_for_precision(truth, scores, min_precision)
    return found if found is not None else (1.0, False)


def score(detector: OnnxDetector, val: dict, test: dict, images_dir: Path, min_precision: float) -> dict:
    val_truth, val_scores = image_truth_and_scores(val, predict_split(detector, val, images_dir))
    threshold, reached = choose_threshold(val_truth, val_scores, min_precision)
    test_predictions = predict_split(detector, test, images_dir)
    detection = coco_detection_metrics(test, to_coco_results(test_predictions))
    truth, scores = image_truth_and_scores(test, test_predictions)
    verdict = verdict_metrics(truth, list(np.asarray(scores) >= threshold))
    return {
        "map_50": detection["map_50"],
        "map": detection["map"],
        "per_class": detection["per_class"],
        "verdict": {"threshold": threshold, "min_precision": min_precision, "reached_on_val": reached, **verdict},
    }
