"""Detection and verdict metrics.

COCO mAP comes from pycocotools, the reference implementation, never from
hand-written matching. What is binsight's own is the operational figure: is a
bin contaminated under its fraction's policy, and how often is that right.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def coco_detection_metrics(gt: dict[str, Any], detections: list[dict[str, Any]]) -> dict[str, Any]:
    """mAP@[.5:.95], mAP@.5 and per-class AP (at [.5:.95] and .5) of detections against `gt`.

    `detections` are COCO results: {image_id, category_id, bbox [x, y, w, h], score}.
    A class without any ground-truth box in `gt` has AP None (undefined), not 0.
    """
    names = {c["id"]: c["name"] for c in gt["categories"]}
    if not gt["annotations"]:
        raise ValueError("the ground truth holds no box; mAP is undefined")
    gt = copy.deepcopy(gt)
    gt.setdefault("info", {})
    for ann in gt["annotations"]:
        ann.setdefault("area", ann["bbox"][2] * ann["bbox"][3])
        ann.setdefault("iscrowd", 0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if not detections:
            return {"map": 0.0, "map_50": 0.0, "per_class": {n: _empty_ap(coco_gt, cid) for cid, n in names.items()}}
        coco_dt = coco_gt.loadRes(copy.deepcopy(detections))
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"]  # [iou, recall, class, area, maxdets]
    per_class = {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]
        has_gt = bool(coco_gt.getAnnIds(catIds=[cat_id]))
        per_class[names[cat_id]] = {
            "ap": float(np.mean(p[p > -1])) if has_gt and (p > -1).any() else None,
            "ap_50": float(np.mean(p[0][p[0] > -1])) if has_gt and (p[0] > -1).any() else None,
        }
    return {"map": float(evaluator.stats[0]), "map_50": float(evaluator.stats[1]), "per_class": per_class}


def _empty_ap(coco_gt: COCO, cat_id: int) -> dict[str, float | None]:
    value = 0.0 if coco_gt.getAnnIds(catIds=[cat_id]) else None
    return {"ap": value, "ap_50": value}


def verdict_metrics(truth: Sequence[bool], predicted: Sequence[bool]) -> dict[str, float | int]:
    """Precision, recall and F1 of "contaminated" verdicts per image, with the counts behind them."""
    t = np.asarray(truth, bool)
    p = np.asarray(predicted, bool)
    tp, fp, fn, tn = int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum()), int((~t & ~p).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def precision_recall_curve(truth: Sequence[bool], scores: Sequence[float]) -> list[dict[str, float]]:
    """Verdict precision and recall at every distinct score threshold, highest threshold first."""
    t = np.asarray(truth, bool)
    s = np.asarray(scores, float)
    points = []
    for threshold in sorted(set(s.tolist()), reverse=True):
        m = verdict_metrics(t, s >= threshold)
        points.append({"threshold": threshold, "precision": m["precision"], "recall": m["recall"]})
    return points
