"""The API with a detector injected through FastAPI's dependency overrides.

The tiny model trained for the tests reports nothing, so these tests swap in
a detector that always sees the same objects: the API then has to show a
`contaminated` verdict, draw boxes where they are, and apply each waste
fraction's policy (configs/classes.yaml): a can spoils biowaste and paper,
not the packaging bin; cardboard spoils the packaging bin, not paper.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from pipeline.inspection import Detection, InspectionSpec
from pipeline.policy import FractionPolicy
from serve import auth
from serve.app import API_KEY_HEADER, create_app
from serve.dependencies import get_detector
from serve.evidence import CONTAMINANT, OTHER
from serve.settings import ServeSettings
from tests.conftest import REPO
from tests.serve_helpers import form, jpeg_bytes, scrape_metrics

VERDICT_THRESHOLD = 0.5
WIDTH, HEIGHT = 320, 240
CAN_BOX = (40.0, 60.0, 120.0, 160.0)  # in pixels of the uploaded photo
CARDBOARD_BOX = (180.0, 50.0, 290.0, 200.0)


class SeeingDetector:
    """Sees a can (0.9), cardboard (0.8) and a faint plastic bag (0.1) in every photo, where a model would report them."""

    version = "injected-1"
    ready = True

    def __init__(self, fractions: dict[str, list[str]]):
        from pipeline.config import load_params

        self.class_names = ["plastic_bag", "plastic_bottle", "can", "glass", "cardboard"]
        self.policy = FractionPolicy.from_mapping(fractions, VERDICT_THRESHOLD)
        self.spec = InspectionSpec.from_params(load_params(REPO / "configs/params.yaml").verdict)
        self.calls = 0

    def warm_up(self) -> None:
        pass

    def detect(self, rgb: np.ndarray, scale: float = 1.0, min_score: float | None = None) -> list[Detection]:
        self.calls += 1
        # The boxes are fixed in the photo's pixels; the service hands over a
        # downscaled copy and the factor back, as with a real model.
        assert rgb.shape[1] * scale == pytest.approx(WIDTH, abs=1)
        return [Detection("can", 0.9, CAN_BOX), Detection("cardboard", 0.8, CARDBOARD_BOX), Detection("plastic_bag", 0.1, (0.0, 0.0, 10.0, 10.0))]


def photo() -> bytes:
    """A textured, well lit bin (passes the quality gate); no red or yellow in it."""
    rng = np.random.default_rng(7)
    blocks = rng.integers(60, 200, (HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    blocks[..., 0] //= 3  # little red, so that drawn boxes stand out
    return jpeg_bytes(np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1), quality=95)


@pytest.fixture
def detector(taxonomy) -> SeeingDetector:
    return SeeingDetector(taxonomy.fractions)


@pytest.fixture
def client(tmp_path, detector):
    # No model on disk: the app loads none, and every detection comes from the override.
    settings = ServeSettings(model_dir=tmp_path / "no-model", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                             image_dir=tmp_path / "images", auth_cache_s=0, _env_file=None)
    app = create_app(settings)
    app.dependency_overrides[get_detector] = lambda: detector
    with TestClient(app) as c:
        c.headers[API_KEY_HEADER] = auth.create_key(c.app.state.sessions, "truck-7")
        yield c


def upload(client, fraction: str, capture_id: str):
    r = client.post("/v1/inspections", data=form(capture_id=capture_id, fraction=fraction), files={"image": ("bin.jpg", photo(), "image/jpeg")})
    assert r.status_code == 201, r.text
    return r.json()


def by_label(body) -> dict[str, dict]:
    return {d["label"]: d for d in body["detections"]}


def test_injected_detector_makes_a_contaminated_verdict(client, detector):
    body = upload(client, "biowaste", "c-bio")
    assert body["verdict"] == "contaminated" and body["quality_issue"] is None and body["model_version"] == "injected-1"
    assert body["contamination_score"] == pytest.approx(0.9)
    found = by_label(body)
    assert found["can"]["contaminant"] and found["cardboard"]["contaminant"]
    assert found["can"]["box"] == pytest.approx(list(CAN_BOX))
    assert "plastic_bag" not in found  # below BINSIGHT_MIN_DETECTION_SCORE (0.3) and no contaminant: not reported
    assert detector.calls == 1
    assert client.get(f"/v1/inspections/{body['id']}").json() == body
    listed = client.get("/v1/inspections", params={"verdict": "contaminated"}).json()
    assert [i["id"] for i in listed["items"]] == [body["id"]]
    assert 'binsight_verdicts_total{fraction="biowaste",verdict="contaminated"} 1.0' in scrape_metrics(client).text


@pytest.mark.parametrize(
    "fraction, verdict, contaminants",
    [
        ("biowaste", "contaminated", {"can", "cardboard"}),
        ("paper", "contaminated", {"can"}),  # cardboard belongs in the paper bin
        ("packaging", "contaminated", {"cardboard"}),  # a can belongs in the packaging bin
        ("residual", "clean", set()),  # anything goes in residual waste
    ],
)
def test_the_same_detections_count_differently_by_fraction(client, fraction, verdict, contaminants):
    body = upload(client, fraction, f"c-{fraction}")
    assert body["verdict"] == verdict
    assert {d["label"] for d in body["detections"] if d["contaminant"]} == contaminants
    assert {d["label"] for d in body["detections"]} == {"can", "cardboard"}  # reported whatever the fraction
    expected_score = max((s for label, s in (("can", 0.9), ("cardboard", 0.8)) if label in contaminants), default=0.0)
    assert body["contamination_score"] == pytest.approx(expected_score)


def test_detect_marks_contaminants_under_the_fraction_asked_for(client):
    def flags(fraction=None):
        data = {"fraction": fraction} if fraction else {}
        r = client.post("/v1/detect", files={"image": ("b.jpg", photo(), "image/jpeg")}, data=data)
        assert r.status_code == 200, r.text
        assert (r.json()["width"], r.json()["height"]) == (WIDTH, HEIGHT) and r.json()["model_version"] == "injected-1"
        return {d["label"]: d["contaminant"] for d in r.json()["detections"]}

    assert flags("paper") == {"can": True, "cardboard": False}
    assert flags("packaging") == {"can": False, "cardboard": True}
    assert flags() == {"can": False, "cardboard": False}  # no fraction: nothing judged
    assert client.get("/v1/inspections").json()["total"] == 0


def edge_pixels(picture: np.ndarray, box) -> np.ndarray:
    """The pixels on the box's outline, 2 px wide, corners left out (labels are drawn near them)."""
    x0, y0, x1, y1 = (round(v) for v in box)
    top = picture[y0 : y0 + 2, x0 + 6 : x1 - 6]
    bottom = picture[y1 - 1 : y1 + 1, x0 + 6 : x1 - 6]
    left = picture[y0 + 6 : y1 - 6, x0 : x0 + 2]
    right = picture[y0 + 6 : y1 - 6, x1 - 1 : x1 + 1]
    return np.concatenate([part.reshape(-1, 3) for part in (top, bottom, left, right)]).astype(int)


def near(pixels: np.ndarray, colour) -> float:
    """Share of pixels within JPEG's error of `colour`."""
    return float((np.abs(pixels - np.array(colour)).max(axis=1) < 60).mean())


def test_evidence_draws_contaminants_red_and_other_objects_yellow(client):
    body = upload(client, "paper", "c-evidence")  # can: contaminant; cardboard: not in the paper bin
    r = client.get(f"/v1/inspections/{body['id']}/evidence")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    drawn = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    original = np.asarray(Image.open(io.BytesIO(photo())).convert("RGB"))
    assert drawn.shape == original.shape == (HEIGHT, WIDTH, 3)

    assert near(edge_pixels(original, CAN_BOX), CONTAMINANT) < 0.05  # not red before drawing
    assert near(edge_pixels(drawn, CAN_BOX), CONTAMINANT) > 0.9
    assert near(edge_pixels(drawn, CARDBOARD_BOX), OTHER) > 0.9
    inside = (slice(90, 130), slice(60, 100))  # well inside the can's box: the photo as it was
    assert np.abs(drawn[inside].astype(int) - original[inside].astype(int)).mean() < 8


def test_without_the_override_the_app_has_no_model(client):
    client.app.dependency_overrides.clear()
    r = client.post("/v1/detect", files={"image": ("b.jpg", photo(), "image/jpeg")})
    assert r.status_code == 503 and r.json()["error"]["code"] == "model_unavailable"
