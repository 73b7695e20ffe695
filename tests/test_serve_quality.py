"""The quality gate: each way a truck camera fails is named; a real scene passes."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from serve.quality import quality_issue
from serve.settings import ServeSettings

SETTINGS = ServeSettings(_env_file=None)


@pytest.fixture
def scene(tiny_dataset):
    # An undegraded capture of the generated dataset.
    import json

    coco = json.loads((tiny_dataset / "annotations.json").read_text())
    clean = next(im for im in coco["images"] if not im["degradations"])
    return np.asarray(Image.open(tiny_dataset / "images" / clean["file_name"]).convert("RGB").resize((320, 320)))


def test_usable_scene_passes(scene):
    assert quality_issue(scene, SETTINGS) is None


def test_night_is_too_dark(scene):
    assert quality_issue((scene * 0.15).astype(np.uint8), SETTINGS) == "too_dark"


def test_sun_into_the_bin_is_overexposed(scene):
    assert quality_issue(np.clip(scene.astype(int) * 8, 0, 255).astype(np.uint8), SETTINGS) == "overexposed"


def test_covered_lens_has_no_contrast():
    assert quality_issue(np.full((240, 320, 3), 120, np.uint8), SETTINGS) == "covered"


def test_heavy_blur_is_blurred(scene):
    blurred = np.asarray(Image.fromarray(scene).filter(ImageFilter.GaussianBlur(4)))
    assert quality_issue(blurred, SETTINGS) == "blurred"
