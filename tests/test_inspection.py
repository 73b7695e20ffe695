"""The one verdict path: labels to names, downscale, gate, policy and threshold, and the card that carries them."""

import numpy as np
import pytest

from pipeline.config import load_params
from pipeline.inspection import CardError, Detection, InspectionSpec, downscale, inspect, judge, to_detections
from pipeline.labels import LabelError, foreground, label_name
from pipeline.policy import FractionPolicy
from tests.conftest import REPO

CLASSES = ["plastic_bag", "plastic_bottle", "can", "glass", "cardboard"]
VERDICT = load_params(REPO / "configs/params.yaml").verdict


@pytest.fixture
def policy(taxonomy):
    return FractionPolicy.from_mapping(taxonomy.fractions, threshold=0.5)


def textured(h=240, w=320, seed=0) -> np.ndarray:
    """A photo the gate passes at any size: mid brightness, blocks with hard edges."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(20, 200, (h // 16, w // 16, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)


def test_label_zero_is_background_never_a_class():
    with pytest.raises(LabelError, match="label 0 is the background"):
        label_name(CLASSES, 0)
    with pytest.raises(LabelError, match=r"label 6 is outside 1\.\.5"):
        label_name(CLASSES, 6)
    assert label_name(CLASSES, 1) == "plastic_bag" and label_name(CLASSES, 5) == "cardboard"


def test_background_detections_are_dropped_not_renamed():
    boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 4, 4]], np.float32)
    labels = np.array([0, 1, 0], np.int64)
    scores = np.array([0.99, 0.6, 0.9], np.float32)
    found = to_detections(boxes, labels, scores, CLASSES, scale=2.0, min_score=0.05)
    assert found == [Detection("plastic_bag", pytest.approx(0.6), (10.0, 10.0, 40.0, 40.0))]
    # Unguarded, class_names[0 - 1] would have made the 0.99 background box a cardboard contaminant.
    assert all(d.label != "cardboard" for d in found)


def test_labels_beyond_the_class_list_mean_a_mismatched_model():
    with pytest.raises(LabelError, match="does not match its class list"):
        foreground(np.array([1, 9]), CLASSES)


def test_background_detection_never_flags_a_bin(policy):
    # The highest-scoring detection is background; in the biowaste bin every class is a contaminant.
    detect = lambda small, scale: to_detections(  # noqa: E731
        np.array([[10, 10, 50, 50]], np.float32), np.array([0]), np.array([0.97], np.float32), CLASSES, scale
    )
    result = inspect(textured(), "biowaste", detect, policy, VERDICT.quality, 640)
    assert result.verdict == "clean" and result.detections == [] and result.score == 0.0


def test_inspect_downscales_for_the_detector_and_maps_boxes_back(policy):
    seen = {}

    def detect(small, scale):
        seen["shape"], seen["scale"] = small.shape, scale
        return [Detection("can", 0.8, (10.0 * scale, 20.0 * scale, 30.0 * scale, 40.0 * scale))]

    result = inspect(textured(960, 1280), "paper", detect, policy, VERDICT.quality, 640)
    assert seen["shape"] == (480, 640, 3) and seen["scale"] == pytest.approx(2.0)
    assert result.verdict == "contaminated" and result.contaminant_indices == (0,) and result.score == pytest.approx(0.8)
    assert result.detections[0].box == (20.0, 40.0, 60.0, 80.0)


def test_gated_photo_is_inconclusive_whatever_the_detector_says(policy):
    dark = (textured() * 0.1).astype(np.uint8)
    result = inspect(dark, "paper", lambda s, k: [Detection("can", 0.99, (0, 0, 5, 5))], policy, VERDICT.quality, 640)
    assert result.verdict == "inconclusive" and result.quality_issue == "too_dark"
    assert result.detections and result.score == pytest.approx(0.99)  # kept for a reviewer


def test_threshold_and_fraction_decide(policy):
    found = [Detection("cardboard", 0.7, (0, 0, 1, 1)), Detection("can", 0.4, (0, 0, 1, 1))]
    assert judge("biowaste", found, None, policy).verdict == "contaminated"
    assert judge("paper", found, None, policy).verdict == "clean"  # cardboard belongs there; the can is below 0.5
    stricter = FractionPolicy.from_mapping(policy.contaminants_by_fraction, 0.75)
    assert judge("biowaste", found, None, stricter).verdict == "clean"


def test_downscale_keeps_aspect_and_reports_the_factor():
    small, scale = downscale(np.zeros((960, 1280, 3), np.uint8), 640)
    assert small.shape == (480, 640, 3) and scale == pytest.approx(2.0)
    same, one = downscale(np.zeros((100, 50, 3), np.uint8), 640)
    assert same.shape == (100, 50, 3) and one == 1.0


def test_spec_round_trips_through_the_card():
    spec = InspectionSpec.from_params(VERDICT)
    assert InspectionSpec.from_card({"inspection": spec.to_card()}) == spec
    assert spec.max_side == VERDICT.inference_max_side and spec.gate == VERDICT.quality


def test_card_without_the_section_says_to_export_again():
    with pytest.raises(CardError, match="export the model again"):
        InspectionSpec.from_card({"class_names": CLASSES})
    bad = InspectionSpec.from_params(VERDICT).to_card()
    bad["quality"]["max_saturated"] = 3.0
    with pytest.raises(CardError, match="max_saturated"):
        InspectionSpec.from_card({"inspection": bad})
