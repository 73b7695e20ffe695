"""The real-data benchmark's own logic, without Ultralytics (AGPL: never a test dependency).

YOLO output decoding and letterbox maths, the dataset and splits it builds
through the importer and the prepare stage, the YOLO view of them, and the
scoring through the evaluate stage's verdict path.
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.onnx_detectors import Detections, Letterbox, OnnxDetector, decode_end2end, decode_raw, letterbox, unletterbox
from bench.realdata_data import build_dataset, recipe_params, recipe_taxonomy
from bench.realdata_score import score

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


TRASHNET_NAMES = ["Cable", "E-waste", "Glass", "Medical Waste", "Metal", "Plastics", "can"]


def fake_source(root, counts: dict[str, int], clean_every: int | None = None):
    """A small TrashNet++ look-alike: its data.yaml names, textured images (the quality gate passes them), one box each
    but the first (or each `clean_every`-th from the first: clean bins enough for the verdict threshold to be chosen)."""
    rng = np.random.default_rng(0)
    (root).mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(json.dumps({"nc": 7, "names": TRASHNET_NAMES}))
    for split, n in counts.items():
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for i in range(n):
            # A size of its own per image: the oracle detector below recognises images by it.
            pixels = rng.integers(0, 256, (48 if split == "train" else 60, 64 + i, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / "images" / f"{split}_{i:04d}.png")
            clean = i % clean_every == 0 if clean_every else i == 0
            label = "" if clean else f"{i % 7} 0.5 0.5 0.5 0.5\n"
            (root / split / "labels" / f"{split}_{i:04d}.txt").write_text(label)


def test_source_missing_is_one_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="TrashNet\\+\\+ not found: .*nowhere/data.yaml"):
        build_dataset(tmp_path / "nowhere", tmp_path / "out")


def test_the_bench_splits_as_the_recipe_does_and_test_is_the_source_valid_split(tmp_path):
    fake_source(tmp_path / "src", {"train": 40, "valid": 9})
    report = build_dataset(tmp_path / "src", tmp_path / "out")
    assert report["import"]["images_added"] == 49 and report["import"]["boxes_added"] == 39 + 8
    assert report["images"]["test"] == 9 and report["images"]["val"] + report["images"]["train"] == 40
    assert 4 <= report["images"]["val"] <= 8  # about prepare.val_share (0.15) of the 40, stratified by class
    splits = {s: json.loads((tmp_path / "out/splits" / f"{s}.json").read_text()) for s in ("train", "val", "test")}
    names = {s: {im["source"]["path"] for im in c["images"]} for s, c in splits.items()}
    assert names["test"] == {f"valid/images/valid_{i:04d}.png" for i in range(9)}
    assert not names["train"] & names["val"]
    # The same seed gives the same split: a rerun replaces the last one and splits alike.
    again = build_dataset(tmp_path / "src", tmp_path / "out")
    assert again["images"] == report["images"]
    assert {im["source"]["path"] for im in json.loads((tmp_path / "out/splits/val.json").read_text())["images"]} == names["val"]
    limited = build_dataset(tmp_path / "src", tmp_path / "lim", limit=3)
    assert limited["images"] == {"train": 3, "val": 3, "test": 3}


def test_the_yolo_view_links_the_imported_images_and_agrees_on_boxes(tmp_path):
    fake_source(tmp_path / "src", {"train": 12, "valid": 3})
    build_dataset(tmp_path / "src", tmp_path / "out")
    spec = __import__("yaml").safe_load((tmp_path / "out/yolo/data.yaml").read_text())
    assert spec["val"] == "images/val" and spec["names"][0] == "cable" and spec["names"][6] == "can"
    test = json.loads((tmp_path / "out/splits/test.json").read_text())
    image = next(im for im in test["images"] if im["source"]["path"].endswith("valid_0002.png"))
    link = tmp_path / f"out/yolo/images/test/{image['id']:06d}.png"
    assert link.is_symlink() and link.resolve() == (tmp_path / "out/data/images" / image["file_name"]).resolve()
    label = (tmp_path / f"out/yolo/labels/test/{image['id']:06d}.txt").read_text().split()
    # valid_0002 holds one box of source class 2 (Glass) -> binsight "glass", category 3, YOLO class 2 again.
    assert label == ["2", "0.500000", "0.500000", "0.500000", "0.500000"]
    first = next(im for im in test["images"] if im["source"]["path"].endswith("valid_0000.png"))
    assert (tmp_path / f"out/yolo/labels/test/{first['id']:06d}.txt").read_text() == ""  # background image


class OracleOnnx(OnnxDetector):
    """Answers each image's true boxes at 0.9 and one false box at 0.3 (recognised by size): no ONNX file involved."""

    def __init__(self, truth_by_size: dict):
        self.truth_by_size = truth_by_size

    def predict(self, rgb):
        boxes, labels = self.truth_by_size[rgb.shape[:2]]
        boxes, labels = [*boxes, [0.0, 0.0, 5.0, 5.0]], [*labels, 1]
        scores = [0.9] * (len(boxes) - 1) + [0.3]
        return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64), np.array(scores, np.float32))


def test_every_contender_is_scored_by_the_evaluate_stage_verdict_path(tmp_path):
    fake_source(tmp_path / "src", {"train": 30, "valid": 8}, clean_every=3)
    build_dataset(tmp_path / "src", tmp_path / "out")
    truth = {}
    for split in ("val", "test"):
        coco = json.loads((tmp_path / f"out/splits/{split}.json").read_text())
        for im in coco["images"]:
            anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
            truth[(im["height"], im["width"])] = ([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], [a["category_id"] for a in anns])
    result = score(OracleOnnx(truth), tmp_path / "out/splits", tmp_path / "out/data", recipe_params(), recipe_taxonomy())
    assert set(result) == {"map_50", "map", "per_class", "verdict", "gated", "val_gated"}
    assert result["map_50"] == pytest.approx(1.0)  # the false boxes rank below every true one
    assert result["gated"]["count"] == 0  # textured, bright enough: the gate lets them through
    v = result["verdict"]
    # The threshold comes from val (above the false boxes' 0.3), so the background test images are judged clean.
    assert v["threshold_mode"] == "target_precision" and v["threshold"] == pytest.approx(0.9) and v["target_reached"] is True
    assert (v["tp"], v["fp"], v["fn"], v["tn"]) == (5, 0, 0, 3) and v["images_with_verdict"] == 8 and v["clean_images"] == 3
    assert v["val_clean_images"] >= 1

    shifted = {size: ([[b[0] + 20, b[1] + 20, b[2] + 20, b[3] + 20] for b in boxes], labels) for size, (boxes, labels) in truth.items()}
    assert score(OracleOnnx(shifted), tmp_path / "out/splits", tmp_path / "out/data", recipe_params(), recipe_taxonomy())["map_50"] < 0.5


def test_the_benchmark_imports_no_ultralytics():
    code = "import sys, bench.realdata, bench.realdata_train, bench.binsight_contender; print('ultralytics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_imagenet_contender_fine_tunes_its_backbone_at_a_lower_lr_unless_told(tmp_path):
    from bench.binsight_contender import IMAGENET_BACKBONE_LR_SCALE, contender_params

    weights = tmp_path / "mobilenet_v2_imagenet.pth"
    weights.write_bytes(b"only its presence is checked here")
    scratch = contender_params("binsight", 3, 1, weights)
    imagenet = contender_params("binsight-imagenet", 3, 1, weights)
    assert IMAGENET_BACKBONE_LR_SCALE < 1
    assert (scratch.train.backbone_lr_scale, imagenet.train.backbone_lr_scale) == (1.0, IMAGENET_BACKBONE_LR_SCALE)
    assert imagenet.model.backbone_weights == str(weights.resolve()) and imagenet.train.epochs == 3
    told = contender_params("binsight-imagenet", 3, 1, weights, overrides=("train.backbone_lr_scale=0.5", "train.lr=0.001"))
    assert (told.train.backbone_lr_scale, told.train.lr) == (0.5, 0.001)
    assert contender_params("binsight", 3, 1, weights, overrides=("train.lr=0.001",)).train.backbone_lr_scale == 1.0


def test_the_imagenet_contender_pins_the_weights_file_it_is_given_after_overrides(tmp_path):
    from bench.binsight_contender import contender_params

    weights, other = tmp_path / "mobilenet_v2_imagenet.pth", tmp_path / "other.pth"
    weights.write_bytes(b"the default file")
    other.write_bytes(b"a file chosen with --set")
    assert contender_params("binsight", 3, 1, weights).model.backbone_weights_sha256 is None
    assert contender_params("binsight-imagenet", 3, 1, weights).model.backbone_weights_sha256 == hashlib.sha256(b"the default file").hexdigest()
    chosen = contender_params("binsight-imagenet", 3, 1, weights, overrides=(f"model.backbone_weights={other}",))
    assert chosen.model.backbone_weights_sha256 == hashlib.sha256(b"a file chosen with --set").hexdigest()
    told = contender_params("binsight-imagenet", 3, 1, weights, overrides=("model.backbone_weights_sha256=" + "ab" * 32,))
    assert told.model.backbone_weights_sha256 == "ab" * 32


@pytest.mark.parametrize("verdict, note", [
    ({"threshold_mode": "target_precision", "target_precision": 0.95, "target_reached": True}, ""),
    ({"threshold_mode": "target_precision", "target_precision": 0.95, "target_reached": False}, " (P >= 0.95 not reached on val)"),
    ({"threshold_mode": "target_precision", "target_precision": 0.95, "target_reached": None}, " (verdict.threshold: val gives no basis for a precision)"),
    ({"threshold_mode": "fixed", "target_precision": None, "target_reached": None}, ""),
], ids=["reached", "missed", "no basis", "fixed"])
def test_the_table_says_how_each_threshold_came_about(verdict, note):
    """A split without clean bins gives no basis: the table must not call that a missed target, nor print 'P >= None'."""
    from bench.realdata import threshold_note

    assert threshold_note(verdict) == note
