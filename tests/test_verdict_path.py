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

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from pipeline.coco import IMAGES_DIR, load_coco
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


def settings_for(tmp_path, model_dir=None) -> ServeSettings:
    return ServeSettings(model_dir=model_dir or tmp_path / "no-model", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                         image_dir=tmp_path / "images", auth_cache_s=0, _env_file=None)


def client_for(app) -> TestClient:
    client = TestClient(app)
    client.__enter__()
    client.headers[API_KEY_HEADER] = auth.create_key(client.app.state.sessions, "truck-101")
    return client


def post(client, data: bytes, capture_id: str, fraction: str = "biowaste"):
    r = client.post("/v1/inspections", data=form(capture_id=capture_id, fraction=fraction), files={"image": ("bin.jpg", data, "image/jpeg")})
    assert r.status_code == 201, r.text
    return r.json()


def test_evaluation_reports_what_the_gate_sets_aside(tiny_reports, tiny_splits, tiny_dataset, tiny_params):
    metrics = json.loads((tiny_reports / "metrics.json").read_text())
    test = load_coco(tiny_splits / "test.json")
    gate = tiny_params[0].verdict.quality
    issues = Counter(quality_issue(read_rgb(tiny_dataset / IMAGES_DIR / im["file_name"]), gate) for im in test["images"])
    del issues[None]
    assert metrics["gated"]["count"] == sum(issues.values()) and metrics["gated"]["by_issue"] == dict(issues)
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


def test_service_serves_the_verdict_the_evaluation_measured(tmp_path, tiny_trained, tiny_model_dir, tiny_splits, tiny_dataset, tiny_params, taxonomy):
    from pipeline.dataset import CocoDetection
    from pipeline.evaluate import inspect_split
    from pipeline.trained import ImageInDetectionsOut, load_trained, torch_detect_fn

    spec = InspectionSpec.from_params(tiny_params[0].verdict)
    model, class_names, _ = load_trained(tiny_trained / "model.pt")
    detect = torch_detect_fn(ImageInDetectionsOut(model).eval(), class_names)
    dataset = CocoDetection(tiny_splits / "test.json", tiny_dataset)
    measured = inspect_split(dataset, detect, FractionPolicy.from_mapping(taxonomy.fractions, 0.5), spec, class_names)
    scores = sorted({im.result.score for im in measured if im.result.quality_issue is None})
    assert scores and scores[-1] > 0, "the tiny model saw no contaminant at all: nothing to compare"
    # Thresholds amid the scores, so that both verdicts are served: halfway across the widest gap between two scores,
    # never on one, where the ONNX export's last digits (it differs from torch by ~1e-5) would decide the verdict. The
    # tiny model's scores can bunch within 1e-5 of each other (an AVX2-only EPYC flipped one at a threshold that was a
    # score itself); then one threshold below and one above them all.
    low, high = max(zip(scores, scores[1:]), key=lambda pair: pair[1] - pair[0], default=(scores[0], scores[0]))
    thresholds = [(low + high) / 2] if high - low > 1e-3 else [scores[0] - 0.01, scores[-1] + 0.01]
    verdicts_served = set()
    for n, threshold in enumerate(thresholds):
        policy = FractionPolicy.from_mapping(taxonomy.fractions, threshold)
        measured = inspect_split(dataset, detect, policy, spec, class_names)
        model_dir = tmp_path / f"model-{n}"
        shutil.copytree(tiny_model_dir, model_dir)
        card = json.loads((model_dir / "model_card.json").read_text())
        card["thresholds"]["verdict"] = threshold
        (model_dir / "model_card.json").write_text(json.dumps(card))

        client = client_for(create_app(settings_for(tmp_path / f"service-{n}", model_dir)))
        try:
            for info, im in zip(dataset.images, measured, strict=True):
                data = (tiny_dataset / IMAGES_DIR / info["file_name"]).read_bytes()
                served = post(client, data, f"c{im.image_id}", im.fraction)
                assert (served["verdict"], served["quality_issue"]) == (im.result.verdict, im.result.quality_issue), info["file_name"]
                assert served["contamination_score"] == pytest.approx(im.result.score, abs=1e-4)
                verdicts_served.add(served["verdict"])
        finally:
            client.__exit__(None, None, None)
    assert {"clean", "contaminated"} <= verdicts_served


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


def test_rotated_jpeg_is_inspected_and_drawn_upright(tmp_path, taxonomy):
    upright = upright_scene()
    # Stored sideways, as a camera held on its side writes it, with EXIF orientation 6:
    # viewers (and binsight) rotate it 90 degrees clockwise to show it upright.
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif)
    data = buf.getvalue()
    path = tmp_path / "rotated.jpg"
    path.write_bytes(data)

    # The dataset reader and the service's decoder see the same upright pixels.
    served_pixels, _ = decode_image(data, 10_000_000)
    assert served_pixels.shape == (200, 300, 3)
    assert np.array_equal(read_rgb(path), served_pixels)

    finder = BlueObjectFinder(taxonomy)
    client = client_for(create_app(settings_for(tmp_path), detector=finder))
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


def test_background_label_from_the_model_never_becomes_a_class(tiny_model_dir):
    from serve.detector import Detector

    detector = Detector(tiny_model_dir, threads=1, workers=1)
    raw = (np.array([[1, 1, 30, 30], [5, 5, 40, 40]], np.float32), np.array([0, 1], np.int64), np.array([0.95, 0.4], np.float32))
    detector._run = lambda rgb: raw  # what onnxruntime returns for this image
    found = detector.detect(np.zeros((64, 64, 3), np.uint8))
    assert [d.label for d in found] == ["plastic_bag"] and found[0].score == pytest.approx(0.4)
