"""The real-data benchmark's own logic, without Ultralytics (AGPL: never a test dependency).

YOLO output decoding and letterbox maths, the split and the two dataset views
it writes, and the verdict threshold choice.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.onnx_detectors import Letterbox, decode_end2end, decode_raw, letterbox, unletterbox
from bench.realdata_data import Box, Sample, coco_document, make_splits, parse_yolo_row, read_source, write_coco_view, write_yolo_view
from bench.realdata_score import choose_threshold

REPO = Path(__file__).resolve().parents[1]


def raw_output(rows: list[list[float]], num_classes: int) -> np.ndarray:
    """[1, 4 + nc, anchors] from rows of (cx, cy, w, h, class scores...)."""
    out = np.array(rows, np.float32)
    assert out.shape[1] == 4 + num_classes
    return out.T[None]


def test_letterbox_pads_the_short_side_centred_and_boxes_map_back():
    image = np.full((100, 200, 3), 7, np.uint8)  # wide: scaled by 1.6 to 320 x 160, padded 80 above and below
    padded, lb = letterbox(image, 320)
    assert padded.shape == (320, 320, 3)
    assert lb == Letterbox(gain=1.6, pad_x=0, pad_y=80)
    assert (padded[:80] == 114).all() and (padded[240:] == 114).all() and (padded[80:240] == 7).all()
    # A box in model-input pixels comes back to image pixels, clipped to the image.
    boxes = np.array([[16.0, 96.0, 176.0, 176.0], [-10.0, 60.0, 400.0, 300.0]])
    back = unletterbox(boxes, lb, 100, 200)
    np.testing.assert_allclose(back[0], [10, 10, 110, 60])
    np.testing.assert_allclose(back[1], [0, 0, 200, 100])


def test_letterbox_leaves_a_square_image_of_the_input_size_alone():
    image = np.random.default_rng(0).integers(0, 255, (320, 320, 3), dtype=np.uint8)
    padded, lb = letterbox(image, 320)
    assert lb == Letterbox(1.0, 0, 0)
    assert np.array_equal(padded, image)


def test_letterbox_odd_padding_puts_the_extra_pixel_at_the_bottom():
    _, lb = letterbox(np.zeros((99, 320, 3), np.uint8), 320)  # 221 px of padding
    assert (lb.pad_x, lb.pad_y) == (0, 110)


def test_decode_raw_converts_centre_boxes_and_suppresses_per_class():
    rows = [
        [50, 50, 20, 20, 0.9, 0.0],  # class 0 at (40, 40, 60, 60)
        [51, 50, 20, 20, 0.8, 0.0],  # same object, lower score: suppressed
        [51, 50, 20, 20, 0.0, 0.7],  # same place, other class: kept (NMS is per class)
        [200, 200, 10, 10, 0.0005, 0.0],  # below the confidence
    ]
    boxes, scores, classes = decode_raw(raw_output(rows, 2), conf=0.001, iou=0.7, max_det=100)
    np.testing.assert_allclose(boxes, [[40, 40, 60, 60], [41, 40, 61, 60]])
    np.testing.assert_allclose(scores, [0.9, 0.7])
    assert classes.tolist() == [0, 1]


def test_decode_raw_keeps_every_class_above_the_confidence_and_at_most_max_det():
    rows = [[10 + 30 * i, 10, 8, 8, 0.5 + 0.01 * i, 0.2] for i in range(5)]
    boxes, scores, classes = decode_raw(raw_output(rows, 2), conf=0.1, iou=0.7, max_det=3)
    assert len(boxes) == 3
    np.testing.assert_allclose(scores, [0.54, 0.53, 0.52])  # best first
    _, _, all_classes = decode_raw(raw_output(rows, 2), conf=0.1, iou=0.7, max_det=100)
    assert sorted(all_classes.tolist()) == [0] * 5 + [1] * 5  # multi-label: both classes of every anchor


def test_decode_raw_with_nothing_above_the_confidence_is_empty():
    boxes, scores, classes = decode_raw(raw_output([[5, 5, 2, 2, 0.0, 0.0]], 2), conf=0.001, iou=0.7, max_det=100)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and classes.shape == (0,)


def test_decode_end2end_reads_corner_boxes_score_and_class():
    out = np.array([[[1, 2, 3, 4, 0.2, 5.0], [10, 20, 30, 40, 0.9, 1.0], [0, 0, 0, 0, 0.0, 0.0]]], np.float32)
    boxes, scores, classes = decode_end2end(out, conf=0.001, max_det=100)
    np.testing.assert_allclose(boxes, [[10, 20, 30, 40], [1, 2, 3, 4]])
    np.testing.assert_allclose(scores, [0.9, 0.2])
    assert classes.tolist() == [1, 5]
    assert len(decode_end2end(out, conf=0.001, max_det=1)[0]) == 1


def test_parse_yolo_row_box_polygon_and_clipping():
    assert parse_yolo_row("2 0.5 0.5 0.25 0.5", 320, 160) == Box(2, (120.0, 40.0, 200.0, 120.0))
    # A polygon row becomes its bounding box, as Ultralytics makes it.
    assert parse_yolo_row("0 0.1 0.2 0.3 0.1 0.2 0.4", 100, 100) == Box(0, (10.0, 10.0, 30.0, 40.0))
    assert parse_yolo_row("1 0.05 0.5 0.2 0.2", 100, 100).xyxy == pytest.approx((0.0, 40.0, 15.0, 60.0))  # clipped at 0
    with pytest.raises(ValueError, match="not a YOLO box or polygon"):
        parse_yolo_row("1 0.5 0.5 0.2", 100, 100)


def fake_source(root, counts: dict[str, int]):
    for split, n in counts.items():
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (64, 48)).save(root / split / "images" / f"{split}_{i:04d}.jpg")
            label = "" if i == 0 else f"{i % 7} 0.5 0.5 0.5 0.5\n3 0.5 0.5 0.001 0.5"  # second box degenerate
            (root / split / "labels" / f"{split}_{i:04d}.txt").write_text(label)


def test_source_missing_is_one_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="TrashNet\\+\\+ not found: .*train/images"):
        read_source(tmp_path / "nowhere", 7)


def test_splits_are_disjoint_seeded_and_test_is_the_source_valid_split(tmp_path):
    fake_source(tmp_path, {"train": 40, "valid": 9})
    source, dropped = read_source(tmp_path, 7)
    assert dropped == 39 + 8  # the 1 px-narrow boxes
    splits = make_splits(source, 0.15, seed=3)
    names = {k: [s.image.name for s in v] for k, v in splits.items()}
    assert len(names["val"]) == 6 and len(names["train"]) == 34
    assert names["test"] == [f"valid_{i:04d}.jpg" for i in range(9)]
    assert not set(names["train"]) & set(names["val"])
    assert names == {k: [s.image.name for s in v] for k, v in make_splits(source, 0.15, seed=3).items()}
    assert names["val"] != [s.image.name for s in make_splits(source, 0.15, seed=4)["val"]]
    assert {k: len(v) for k, v in make_splits(source, 0.15, seed=3, limit=5).items()} == {"train": 5, "val": 5, "test": 5}


def test_views_link_images_and_agree_on_boxes(tmp_path):
    fake_source(tmp_path / "src", {"train": 12, "valid": 3})
    source, _ = read_source(tmp_path / "src", 7)
    splits = make_splits(source, 0.25, seed=0)
    names = [f"c{i}" for i in range(7)]
    data_yaml = write_yolo_view(splits, names, tmp_path / "yolo")
    splits_dir, data_dir = write_coco_view(splits, names, tmp_path / "coco")

    spec = __import__("yaml").safe_load(data_yaml.read_text())
    assert spec["val"] == "images/val" and spec["names"][6] == "c6"
    sample = splits["test"][1]
    assert (tmp_path / "yolo/images/test" / sample.image.name).resolve() == sample.image
    assert (data_dir / "images" / sample.image.name).is_symlink()
    label = (tmp_path / "yolo/labels/test" / f"{sample.image.stem}.txt").read_text().split()
    assert label == ["1", "0.500000", "0.500000", "0.500000", "0.500000"]

    test = json.loads((splits_dir / "test.json").read_text())
    assert [im["id"] for im in test["images"]] == [1, 2, 3]
    assert [a["id"] for a in test["annotations"]] == [1, 2]  # ids from 1: pycocotools ignores id 0
    assert test["annotations"][0] == {"id": 1, "image_id": 2, "category_id": 2, "bbox": [16.0, 12.0, 32.0, 24.0], "area": 768.0, "iscrowd": 0}
    assert [c["id"] for c in test["categories"]] == list(range(1, 8))


def test_coco_document_without_boxes():
    doc = coco_document([Sample(REPO / "x.jpg", 10, 10)], ["a"])
    assert doc["images"] == [{"id": 1, "file_name": "x.jpg", "width": 10, "height": 10}] and doc["annotations"] == []


def test_threshold_is_the_lowest_reaching_the_precision():
    truth = [True, True, False, True, False]
    scores = [0.9, 0.8, 0.7, 0.6, 0.1]
    assert choose_threshold(truth, scores, 0.95) == (0.8, True)  # at 0.6 precision is 3/4
    assert choose_threshold(truth, scores, 0.7) == (0.6, True)


def test_threshold_falls_back_to_the_most_precise_and_says_so():
    assert choose_threshold([False, True, False], [0.9, 0.5, 0.2], 0.95) == (0.5, False)
    # An image without any detection (score 0) never sets the threshold to 0.
    assert choose_threshold([True, True], [0.0, 0.0], 0.95) == (1.0, False)


def test_the_benchmark_imports_no_ultralytics():
    code = "import sys, bench.realdata, bench.realdata_train, bench.binsight_contender; print('ultralytics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
