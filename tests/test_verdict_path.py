"""The verdict that is measured is the verdict that is served.

The evaluation (torch, pipeline/evaluate.py) and the service (ONNX Runtime,
serve/app.py) run the same inspection path on the same upright pixels; these
tests hold them to it: same gate, same scores, same verdicts, EXIF-rotated
uploads drawn where the object is, background labels never a class.
"""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from pipeline.coco import IMAGES_DIR, load_coco, write_json_atomic
from pipeline.config import load_params
from pipeline.imageio import read_rgb
from pipeline.inspection import Detection, InspectionSpec, quality_issue
from pipeline.policy import FractionPolicy
from serve import auth
from serve.app import API_KEY_HEADER, create_app
from serve.imaging import decode_image
from serve.settings import ServeSettings
from tests.conftest import REPO
from tests.serve_helpers import form

VERDICT = load_params(REPO / "configs/params.yaml").verdict


def settings_for(tmp_path, model_dir=None, **overrides) -> ServeSettings:
    return ServeSettings(model_dir=model_dir or tmp_path / "no-model", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                         image_dir=tmp_path / "images", auth_cache_s=0, _env_file=None, **overrides)


def client_for(app) -> TestClient:
    client = TestClient(app)
    client.__enter__()
    client.headers[API_KEY_HEADER] = auth.create_key(client.app.state.sessions, "truck-101")
    return client


def post(client, data: bytes, capture_id: str, fraction: str = "biowaste"):
    r = client.post("/v1/inspections", data=form(capture_id=capture_id, fraction=fraction), files={"image": ("bin.jpg", data, "image/jpeg")})
    assert r.status_code == 201, r.text
    return r.json()


# What the tiny test split lacks, added to a copy of it: photos the gate sets aside (night, steam) and one far
# larger than the inference size, which both sides must downscale alike. The tiny photos are all usable and 128 px.
DARK, FOGGY, LARGE = "added-dark.jpg", "added-foggy.jpg", "added-large.jpg"
ADDED_ISSUES = {DARK: "too_dark", FOGGY: "foggy", LARGE: None}
LARGE_SIDE = 1280  # 2 x verdict.inference_max_side


def save_jpeg(rgb: np.ndarray, path: Path) -> None:
    Image.fromarray(rgb).save(path, "JPEG", quality=95)


def recording(detect, seen: list):
    """`detect`, noting the shape of each image it is given: what the detector saw after the downscale."""

    def detect_and_note(small: np.ndarray, scale: float):
        seen.append(small.shape)
        return detect(small, scale)

    return detect_and_note


@pytest.fixture(scope="module")
def hard_split(tmp_path_factory, tiny_splits, tiny_dataset, tiny_params) -> tuple[Path, Path]:
    """(splits, data): copies of the tiny ones whose test split also holds a dark, a foggy and a 1280 px photo.

    Each is made from an original test photo: the dark one at a tenth of its brightness, the foggy one half
    veiled in light grey (fog or steam), the large one upscaled 10 x with its boxes scaled alike.
    """
    root = tmp_path_factory.mktemp("hard")
    data, splits = root / "data", root / "splits"
    shutil.copytree(tiny_dataset, data)
    splits.mkdir()
    shutil.copy(tiny_splits / "val.json", splits / "val.json")
    test = load_coco(tiny_splits / "test.json")
    gate = tiny_params[0].verdict.quality
    annotated = {a["image_id"] for a in test["annotations"]}
    # The large photo from one with objects on it, so that its boxes are compared on the photo's own pixels.
    sources = {DARK: test["images"][0], FOGGY: test["images"][1], LARGE: next(im for im in test["images"] if im["id"] in annotated)}
    next_image = max(im["id"] for im in test["images"]) + 1000
    next_ann = max(a["id"] for a in test["annotations"]) + 1000
    for offset, (name, source) in enumerate(sources.items()):
        rgb = read_rgb(data / IMAGES_DIR / source["file_name"])
        factor = 1
        if name == DARK:
            rgb = (rgb * 0.1).astype(np.uint8)
        elif name == FOGGY:
            rgb = (rgb * 0.5 + 100).round().astype(np.uint8)
        else:
            factor = LARGE_SIDE // max(rgb.shape[:2])
            rgb = np.asarray(Image.fromarray(rgb).resize((rgb.shape[1] * factor, rgb.shape[0] * factor), Image.Resampling.BICUBIC))
        save_jpeg(rgb, data / IMAGES_DIR / name)
        stored = read_rgb(data / IMAGES_DIR / name)
        assert quality_issue(stored, gate) == ADDED_ISSUES[name], name  # what the photo was made for
        image_id = next_image + offset
        test["images"].append({**source, "id": image_id, "file_name": name, "width": stored.shape[1], "height": stored.shape[0]})
        for ann in [a for a in test["annotations"] if a["image_id"] == source["id"]]:
            next_ann += 1
            test["annotations"].append({**ann, "id": next_ann, "image_id": image_id, "bbox": [v * factor for v in ann["bbox"]],
                                        "area": ann["area"] * factor * factor})
    assert max(read_rgb(data / IMAGES_DIR / LARGE).shape[:2]) > tiny_params[0].verdict.inference_max_side
    write_json_atomic(splits / "test.json", test)
    return splits, data


@pytest.fixture(scope="module")
def hard_reports(tmp_path_factory, tiny_trained, hard_split, tiny_params, taxonomy) -> Path:
    """The evaluate stage on the hard split. The model is copied without its run.json: the tiny run's MLflow
    metrics stay those of the tiny split."""
    from pipeline.evaluate import evaluate

    model = tmp_path_factory.mktemp("hard-model") / "model.pt"
    shutil.copy(tiny_trained / "model.pt", model)
    reports = tmp_path_factory.mktemp("hard-reports")
    evaluate(model, *hard_split, reports, tiny_params[0], taxonomy)
    return reports


def test_evaluation_reports_what_the_gate_sets_aside(hard_reports, hard_split, tiny_params):
    """metrics.json's `gated` counts the test photos the gate sets aside, by reason, and leaves them out of the verdict
    figures; the split holds a dark and a foggy photo, so a gate the evaluation skipped would report none."""
    splits, data = hard_split
    metrics = json.loads((hard_reports / "metrics.json").read_text())
    test = load_coco(splits / "test.json")
    gate = tiny_params[0].verdict.quality
    issues = Counter(quality_issue(read_rgb(data / IMAGES_DIR / im["file_name"]), gate) for im in test["images"])
    del issues[None]
    assert metrics["test_images"] == len(test["images"])
    assert metrics["gated"]["by_issue"].get("too_dark", 0) >= 1 and metrics["gated"]["by_issue"].get("foggy", 0) >= 1
    assert metrics["gated"]["count"] == sum(issues.values()) >= 2 and metrics["gated"]["by_issue"] == dict(issues)
    assert metrics["gated"]["share"] == pytest.approx(sum(issues.values()) / len(test["images"]))
    v = metrics["verdict"]
    assert v["images_with_verdict"] == metrics["test_images"] - metrics["gated"]["count"] == v["tp"] + v["fp"] + v["fn"] + v["tn"]
    assert "quality gate" in v["measured_on"] and v["threshold_mode"] == "target_precision"


def test_gated_images_are_counted_and_left_out_of_precision_and_recall(taxonomy):
    from pipeline.evaluate import InspectedImage, gated_report, served, verdict_report
    from pipeline.inspection import judge

    policy = FractionPolicy.from_mapping(taxonomy.fractions, 0.5)

    def image(i, truth, score, issue=None):
        return InspectedImage(i, "paper", truth, judge("paper", [Detection("can", score, (0, 0, 1, 1))], issue, policy))

    images = [image(1, True, 0.9), image(2, False, 0.2), image(3, True, 0.3),
              image(4, False, 0.95, "foggy"), image(5, True, 0.1, "too_dark"), image(6, False, 0.8, "foggy")]
    report = verdict_report(images)
    assert (report["tp"], report["fp"], report["fn"], report["tn"], report["images_with_verdict"]) == (1, 0, 1, 1, 3)
    assert gated_report(images) == {"count": 3, "share": 0.5, "by_issue": {"foggy": 2, "too_dark": 1}}
    lower = verdict_report(served(images, FractionPolicy.from_mapping(taxonomy.fractions, 0.25)))
    assert (lower["tp"], lower["fp"], lower["fn"], lower["tn"]) == (2, 0, 0, 1)  # the gated false alarms stay out


def test_service_serves_the_verdict_the_evaluation_measured(tmp_path, tiny_trained, tiny_model_dir, hard_split, tiny_params, taxonomy):
    """Photo by photo, the service's verdict, gate finding, score and boxes are the evaluation's: on the tiny test
    photos, on the dark and foggy ones the gate sets aside (inconclusive on both sides, for the same reason) and on
    the 1280 px one, which both must downscale to the inference size and answer in the photo's own pixels.

    The tiny model's resize to 128 px inside the graph makes its scores all but blind to a missed downscale
    (1e-6), so what each detector is handed is compared too.
    """
    from pipeline.dataset import CocoDetection
    from pipeline.evaluate import inspect_split
    from pipeline.trained import ImageInDetectionsOut, load_trained, torch_detect_fn

    splits, data = hard_split
    spec = InspectionSpec.from_params(tiny_params[0].verdict)
    model, class_names, _ = load_trained(tiny_trained / "model.pt")
    detect = torch_detect_fn(ImageInDetectionsOut(model).eval(), class_names)
    dataset = CocoDetection(splits / "test.json", data)
    measured = inspect_split(dataset, detect, FractionPolicy.from_mapping(taxonomy.fractions, 0.5), spec, class_names)
    by_name = {info["file_name"]: im for info, im in zip(dataset.images, measured, strict=True)}
    assert [by_name[name].result.quality_issue for name in ADDED_ISSUES] == list(ADDED_ISSUES.values())
    assert by_name[LARGE].result.detections, "the tiny model found nothing on the large photo: no box to compare"
    scores = sorted({im.result.score for im in measured if im.result.quality_issue is None})
    assert scores and scores[-1] > 0, "the tiny model saw no contaminant at all: nothing to compare"
    # Thresholds amid the scores, so that both verdicts are served: halfway across the widest gap between two scores,
    # never on one, where the ONNX export's last digits (it differs from torch by ~1e-5) would decide the verdict. The
    # tiny model's scores can bunch within 1e-5 of each other (an AVX2-only EPYC flipped one at a threshold that was a
    # score itself); then one threshold below and one above them all.
    low, high = max(zip(scores, scores[1:]), key=lambda pair: pair[1] - pair[0], default=(scores[0], scores[0]))
    thresholds = [(low + high) / 2] if high - low > 1e-3 else [scores[0] - 0.01, scores[-1] + 0.01]
    verdicts_served, issues_served, large_boxes_compared = set(), set(), 0
    large = [info["file_name"] for info in dataset.images].index(LARGE)
    for n, threshold in enumerate(thresholds):
        policy = FractionPolicy.from_mapping(taxonomy.fractions, threshold)
        seen_measured, seen_served = [], []
        measured = inspect_split(dataset, recording(detect, seen_measured), policy, spec, class_names)
        assert max(seen_measured[large][:2]) == spec.max_side  # the evaluation detected on the downscaled photo
        model_dir = tmp_path / f"model-{n}"
        shutil.copytree(tiny_model_dir, model_dir)
        card = json.loads((model_dir / "model_card.json").read_text())
        card["thresholds"]["verdict"] = threshold
        (model_dir / "model_card.json").write_text(json.dumps(card))

        # Every detection reported (not only those above 0.3), so that the boxes can be compared too.
        client = client_for(create_app(settings_for(tmp_path / f"service-{n}", model_dir, min_detection_score=0.0)))
        detector = client.app.state.detector
        detector.detect = recording(detector.detect, seen_served)
        try:
            for info, im in zip(dataset.images, measured, strict=True):
                data_bytes = (data / IMAGES_DIR / info["file_name"]).read_bytes()
                served = post(client, data_bytes, f"c{im.image_id}", im.fraction)
                assert (served["verdict"], served["quality_issue"]) == (im.result.verdict, im.result.quality_issue), info["file_name"]
                assert served["contamination_score"] == pytest.approx(im.result.score, abs=1e-4), info["file_name"]
                verdicts_served.add(served["verdict"])
                issues_served.add(served["quality_issue"])
                for d in served["detections"]:  # each served box is the evaluation's box of that score, in the photo's pixels
                    same = min(im.result.detections, key=lambda e: (e.label != d["label"], abs(e.score - d["score"])))
                    assert same.label == d["label"] and same.score == pytest.approx(d["score"], abs=1e-4), info["file_name"]
                    assert d["box"] == pytest.approx(list(same.box), abs=0.5), info["file_name"]
                    large_boxes_compared += info["file_name"] == LARGE
        finally:
            client.__exit__(None, None, None)
        assert seen_served == seen_measured  # the same sizes, the large photo's at the inference size
    assert {"clean", "contaminated"} <= verdicts_served
    assert {"too_dark", "foggy"} <= issues_served and None in issues_served
    assert large_boxes_compared, "no box of the large photo was served: its downscaling went unchecked"


class BlueObjectFinder:
    """A detector that finds the pure blue object in whatever pixels it is given, as a trained one would."""

    ready = True
    version = "blue-finder"

    def __init__(self, taxonomy):
        self.policy = FractionPolicy.from_mapping(taxonomy.fractions, 0.5)
        self.spec = InspectionSpec.from_params(VERDICT)
        self.seen: list[tuple[int, ...]] = []

    def warm_up(self) -> None:
        pass

    def detect(self, rgb: np.ndarray, scale: float = 1.0, min_score: float | None = None) -> list[Detection]:
        self.seen.append(rgb.shape)
        ys, xs = np.nonzero((rgb[..., 2] > 180) & (rgb[..., 0] < 80) & (rgb[..., 1] < 80))
        if not len(xs):
            return []
        box = (xs.min() * scale, ys.min() * scale, (xs.max() + 1) * scale, (ys.max() + 1) * scale)
        return [Detection("plastic_bag", 0.9, tuple(float(v) for v in box))]


def upright_scene() -> np.ndarray:
    """300 x 200 px, upright: a textured bin (no blue in it) with a blue bag at x 200-260, y 40-90."""
    rng = np.random.default_rng(3)
    blocks = rng.integers(60, 200, (200 // 10, 300 // 10, 3), dtype=np.uint8)
    blocks[..., 2] //= 3
    scene = np.repeat(np.repeat(blocks, 10, axis=0), 10, axis=1)
    scene[40:90, 200:260] = (20, 20, 235)
    return scene


def rotated_jpeg(upright: np.ndarray, orientation: int) -> bytes:
    """The photo stored sideways, as a camera held on its side writes it, tagged so that viewers show it upright.

    Orientation 6: viewers (and binsight) rotate it 90 degrees clockwise; 8: counter-clockwise.
    """
    stored = Image.fromarray(upright).transpose({6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


@pytest.mark.parametrize("privacy_blur", [True, False], ids=["privacy-on", "privacy-off"])
def test_rotated_jpeg_is_inspected_and_drawn_upright(tmp_path, taxonomy, privacy_blur):
    """Detected and drawn on the upright photo. With privacy on, the stored photo is an upright re-encoding; with it
    off, the upload is stored as received, tag included, and the evidence drawing must rotate it itself."""
    upright = upright_scene()
    data = rotated_jpeg(upright, 6)
    path = tmp_path / "rotated.jpg"
    path.write_bytes(data)

    # The dataset reader and the service's decoder see the same upright pixels.
    served_pixels, _ = decode_image(data, 10_000_000)
    assert served_pixels.shape == (200, 300, 3)
    assert np.array_equal(read_rgb(path), served_pixels)

    finder = BlueObjectFinder(taxonomy)
    client = client_for(create_app(settings_for(tmp_path, privacy_blur=privacy_blur), detector=finder))
    try:
        body = post(client, data, "rotated")
        evidence = client.get(f"/v1/inspections/{body['id']}/evidence")
    finally:
        client.__exit__(None, None, None)
    assert finder.seen == [(200, 300, 3)]
    assert body["verdict"] == "contaminated" and body["quality_issue"] is None
    assert body["detections"][0]["box"] == pytest.approx([200, 40, 260, 90], abs=2)  # JPEG softens the edges a pixel

    drawn = np.asarray(Image.open(io.BytesIO(evidence.content)).convert("RGB")).astype(int)
    assert drawn.shape == (200, 300, 3)  # upright, not the stored 200 x 300
    x0, y0, x1, y1 = (round(v) for v in body["detections"][0]["box"])
    top = drawn[y0 : y0 + 2, x0 + 4 : x1 - 4].reshape(-1, 3)  # the box's top edge, 2 px wide
    left = drawn[y0 + 4 : y1 - 4, x0 : x0 + 2].reshape(-1, 3)
    for edge in (top, left):
        red = (edge[:, 0] > 170) & (edge[:, 1] < 90) & (edge[:, 2] < 90)
        assert red.mean() > 0.9, edge.mean(axis=0)


@pytest.mark.parametrize("orientation", [6, 8])
def test_training_reads_an_exif_rotated_jpeg_upright_with_its_box_on_the_object(tmp_path, orientation):
    """COCO boxes are in pixels of the upright photo (as annotation tools show it): the dataset must hand the model
    the upright pixels, or every box of a sideways-stored photo lies on the wrong part of it."""
    from pipeline.dataset import CocoDetection

    (tmp_path / IMAGES_DIR).mkdir()
    (tmp_path / IMAGES_DIR / "rotated.jpg").write_bytes(rotated_jpeg(upright_scene(), orientation))
    coco = {"images": [{"id": 1, "file_name": "rotated.jpg", "width": 300, "height": 200, "capture": {"fraction": "biowaste"}}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [200, 40, 60, 50], "area": 3000, "iscrowd": 0}],
            "categories": [{"id": 1, "name": "plastic_bag", "supercategory": ""}]}
    write_json_atomic(tmp_path / "split.json", coco)

    item = CocoDetection(tmp_path / "split.json", tmp_path).load(0)
    assert item["image"].shape == (200, 300, 3)
    x0, y0, x1, y1 = (int(v) for v in item["bboxes"][0])
    assert (x0, y0, x1, y1) == (200, 40, 260, 90)
    inside = item["image"][y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].reshape(-1, 3).astype(int)  # JPEG softens the edges a pixel
    blue = (inside[:, 2] > 180) & (inside[:, 0] < 80) & (inside[:, 1] < 80)
    assert blue.mean() > 0.95, inside.mean(axis=0)


def test_background_label_from_the_model_never_becomes_a_class(tiny_model_dir):
    from serve.detector import Detector

    detector = Detector(tiny_model_dir, threads=1, workers=1)
    raw = (np.array([[1, 1, 30, 30], [5, 5, 40, 40]], np.float32), np.array([0, 1], np.int64), np.array([0.95, 0.4], np.float32))
    detector._run = lambda rgb: raw  # what onnxruntime returns for this image
    found = detector.detect(np.zeros((64, 64, 3), np.uint8))
    assert [d.label for d in found] == ["plastic_bag"] and found[0].score == pytest.approx(0.4)
