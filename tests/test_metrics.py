"""The metric code against examples worked by hand."""

import pytest

from pipeline.metrics import coco_detection_metrics, precision_recall_curve, verdict_metrics

CATEGORIES = [{"id": 1, "name": "can"}, {"id": 2, "name": "glass"}]


def gt(boxes):
    images = [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.jpg"} for i in (1, 2)]
    anns = [{"id": k, "image_id": im, "category_id": c, "bbox": b} for k, (im, c, b) in enumerate(boxes, start=1)]
    return {"images": images, "annotations": anns, "categories": CATEGORIES}


def test_perfect_detections_score_one():
    truth = gt([(1, 1, [10, 10, 20, 20]), (2, 2, [50, 50, 30, 10])])
    dets = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
            {"image_id": 2, "category_id": 2, "bbox": [50, 50, 30, 10], "score": 0.8}]
    m = coco_detection_metrics(truth, dets)
    assert m["map"] == pytest.approx(1.0) and m["map_50"] == pytest.approx(1.0)
    assert m["per_class"]["glass"]["ap"] == pytest.approx(1.0)


def test_half_recall_with_a_false_positive_ranked_below():
    # Two cans; the detector finds one (0.9) and puts a box on nothing (0.8).
    # Precision is 1 up to recall 0.5, and recall never passes 0.5, so COCO's
    # 101-point interpolation gives 51 points at 1.0: AP = 51 / 101.
    truth = gt([(1, 1, [10, 10, 20, 20]), (2, 1, [60, 60, 20, 20])])
    dets = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
            {"image_id": 2, "category_id": 1, "bbox": [0, 0, 15, 15], "score": 0.8}]
    m = coco_detection_metrics(truth, dets)
    assert m["map_50"] == pytest.approx(51 / 101)
    assert m["per_class"]["glass"]["ap"] is None  # no glass in the ground truth: undefined, not zero


def test_loose_box_counts_at_iou_half_but_not_at_strict_thresholds():
    # Ground truth 20x20, detection 20x28 on it: IoU = 400/560 = 0.714, a hit
    # at IoU thresholds 0.50..0.70 (5 of 10) and a miss above.
    truth = gt([(1, 1, [10, 10, 20, 20])])
    dets = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 28], "score": 0.9}]
    m = coco_detection_metrics(truth, dets)
    assert m["map_50"] == pytest.approx(1.0)
    assert m["map"] == pytest.approx(0.5)


def test_no_detections_score_zero():
    assert coco_detection_metrics(gt([(1, 1, [10, 10, 20, 20])]), [])["map"] == 0.0


def test_verdict_counts_by_hand():
    truth = [True, True, True, False, False, True]
    pred = [True, False, True, True, False, True]
    m = verdict_metrics(truth, pred)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (3, 1, 1, 1)
    assert m["precision"] == pytest.approx(3 / 4) and m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(3 / 4)


def test_precision_recall_curve_by_hand():
    points = precision_recall_curve([True, False, True], [0.9, 0.6, 0.3])
    assert [(p["threshold"], p["precision"], p["recall"]) for p in points] == [
        (0.9, 1.0, 0.5), (0.6, 0.5, 0.5), (0.3, pytest.approx(2 / 3), 1.0)]
