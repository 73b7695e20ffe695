"""One scoring path for every contender: the evaluate stage's own (`pipeline.evaluate.measure`).

Each ONNX model becomes the inspection path's detector (`DetectFn`), so every
contender is measured exactly as binsight's evaluate stage measures its own
model and as the service would serve it: the quality gate sets photos aside
(counted under `gated`), the photo is downscaled to the recipe's inference
size, the fraction's policy decides what is a contaminant, and the verdict
threshold is chosen on val for the recipe's target precision
(pipeline/threshold.py) and applied unchanged to the test split. mAP
(pycocotools) is computed from the same detections.
"""

from __future__ import annotations

from pathlib import Path

from bench.onnx_detectors import OnnxDetector
from pipeline.config import Params, Taxonomy
from pipeline.dataset import CocoDetection
from pipeline.evaluate import measure
from pipeline.inspection import DetectFn, to_detections


def onnx_detect_fn(detector: OnnxDetector, class_names: list[str]) -> DetectFn:
    def detect(small, scale: float):
        found = detector.predict(small)
        return to_detections(found.boxes, found.labels, found.scores, class_names, scale)

    return detect


def score(detector: OnnxDetector, splits: Path, data: Path, params: Params, taxonomy: Taxonomy) -> dict:
    measured = measure(
        onnx_detect_fn(detector, taxonomy.class_names),
        CocoDetection(splits / "val.json", data),
        CocoDetection(splits / "test.json", data),
        params,
        taxonomy,
    ).metrics
    return {k: measured[k] for k in ("map_50", "map", "per_class", "verdict", "gated", "val_gated")}
