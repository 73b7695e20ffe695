"""Augmentation keeps boxes on their objects, whatever the preset does to the pixels."""

import numpy as np
import pytest

from pipeline import augment


def object_scene(rng):
    img = np.zeros((160, 200, 3), np.uint8)
    x0, y0 = int(rng.integers(10, 100)), int(rng.integers(10, 80))
    x1, y1 = x0 + int(rng.integers(20, 80)), y0 + int(rng.integers(20, 60))
    img[y0:y1, x0:x1] = (255, 255, 255)
    return img, [float(x0), float(y0), float(x1), float(y1)]


def box_of_bright_pixels(img):
    ys, xs = np.nonzero(img.max(axis=2) > 127)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize("seed", range(12))
def test_geometric_transforms_move_boxes_with_the_object(seed):
    rng = np.random.default_rng(seed)
    img, box = object_scene(rng)
    # Geometry only, so the object stays the sole bright region and can be found again.
    transform = augment.build("geometric_only", seed=seed)
    out = transform(image=img, bboxes=np.array([box], np.float32), labels=[3])
    assert out["labels"] == [3]
    np.testing.assert_allclose(out["bboxes"][0], box_of_bright_pixels(out["image"]), atol=1.0)


@pytest.mark.parametrize("seed", range(8))
def test_truck_camera_preset_keeps_boxes_inside_the_object_region(seed):
    rng = np.random.default_rng(seed)
    img, box = object_scene(rng)
    mask = np.zeros(img.shape[:2], np.uint8)
    x0, y0, x1, y1 = (int(v) for v in box)
    mask[y0:y1, x0:x1] = 1
    transform = augment.build("truck_camera", degradation_probability=1.0, seed=seed)
    out = transform(image=img, mask=mask, bboxes=np.array([box], np.float32), labels=[1])
    if not out["labels"]:  # the object was moved out of frame: its box must go too
        assert out["mask"].sum() < 0.3 * mask.sum() + 1
        return
    ys, xs = np.nonzero(out["mask"])
    expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    # Rotation by a non-right angle grows the box around the rotated rectangle ('largest_box').
    bx0, by0, bx1, by1 = out["bboxes"][0]
    assert bx0 <= expected[0] + 1.5 and by0 <= expected[1] + 1.5 and bx1 >= expected[2] - 1.5 and by1 >= expected[3] - 1.5
    assert out["image"].shape in {img.shape, (img.shape[1], img.shape[0], 3)}  # RandomRotate90 swaps sides


def test_unknown_preset_fails_loudly():
    with pytest.raises(ValueError, match="unknown augmentation preset 'sunny'.*truck_camera"):
        augment.build("sunny")
