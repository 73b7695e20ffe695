"""The degradations a truck camera suffers, as labelling guides track them per image.

Each function takes and returns an RGB float32 image in 0..255 of any shape
and draws its randomness from the generator passed in (the generator draws
square images; training augmentation applies them to any). The geometry of
the scene never changes, so boxes stay exact.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Rng = np.random.Generator


def motion_blur(img: np.ndarray, rng: Rng) -> np.ndarray:
    """Falling waste and a moving lift smear the picture along one direction."""
    length = int(rng.integers(5, 13))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    m = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, m, (length, length))
    kernel /= max(kernel.sum(), 1e-6)
    return cv2.filter2D(img, -1, kernel)


def night(img: np.ndarray, rng: Rng) -> np.ndarray:
    """Early-morning collections: dark, noisy, lit by the truck's lamp from one side."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy / h, xx / w
    cx, cy = rng.uniform(0.2, 0.8, 2)
    lamp = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.25)
    gain = rng.uniform(0.18, 0.35) + 0.35 * lamp
    out = img * gain[..., None] * np.array([0.9, 0.95, 1.1], np.float32)
    return out + rng.normal(0, 7, img.shape).astype(np.float32)


def hard_shadow(img: np.ndarray, rng: Rng) -> np.ndarray:
    """Low sun and the bin's rim cast a sharp-edged shadow over part of the view."""
    h, w = img.shape[:2]
    mask = np.zeros(img.shape[:2], np.uint8)
    edge = rng.uniform(0.2, 0.8) * w
    pts = np.array([[0, 0], [edge + rng.uniform(-0.3, 0.3) * w, 0], [edge, h], [0, h]], np.int32)
    if rng.random() < 0.5:
        pts[:, 0] = w - pts[:, 0]
    cv2.fillPoly(mask, [pts], 1)
    factor = np.where(mask[..., None] == 1, rng.uniform(0.35, 0.55), rng.uniform(1.05, 1.25))
    return img * factor.astype(np.float32)


def overexposure(img: np.ndarray, rng: Rng) -> np.ndarray:
    """Direct sunlight into the open bin washes out the bright parts."""
    return img * rng.uniform(1.5, 2.2) + rng.uniform(10, 40)


def dust(img: np.ndarray, rng: Rng) -> np.ndarray:
    """Dust fog in the hopper: a patchy beige haze lowering contrast."""
    h, w = img.shape[:2]
    haze = cv2.resize(rng.random((5, 5), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    strength = (rng.uniform(0.25, 0.5) * haze.clip(0, 1))[..., None]
    return img * (1 - strength) + np.array([190, 180, 160], np.float32) * strength


def lens_dirt(img: np.ndarray, rng: Rng) -> np.ndarray:
    """Mud spots and water drops on the lens: blurred, semi-opaque blobs."""
    h, w = img.shape[:2]
    size = max(h, w)
    layer = np.zeros(img.shape[:2], np.float32)
    for _ in range(int(rng.integers(2, 7))):
        centre = tuple(int(v) for v in rng.uniform(0, 1, 2) * (w, h))
        cv2.circle(layer, centre, int(rng.uniform(0.02, 0.08) * size), float(rng.uniform(0.4, 0.9)), -1)
    layer = cv2.GaussianBlur(layer, (0, 0), size * 0.015)[..., None]
    blurred = cv2.GaussianBlur(img, (0, 0), 3)
    return blurred * layer * 0.5 + img * (1 - layer)


DEGRADATIONS: dict[str, Callable[[np.ndarray, Rng], np.ndarray]] = {
    "motion_blur": motion_blur,
    "night": night,
    "hard_shadow": hard_shadow,
    "overexposure": overexposure,
    "dust": dust,
    "lens_dirt": lens_dirt,
}


def degrade(img: np.ndarray, rng: Rng, probability: float) -> tuple[np.ndarray, list[str]]:
    """With `probability`, apply one or two degradations; return the image and their names."""
    if rng.random() >= probability:
        return img, []
    names = list(rng.choice(sorted(DEGRADATIONS), size=int(rng.integers(1, 3)), replace=False))
    for name in names:
        img = DEGRADATIONS[name](img, rng)
    return img.clip(0, 255), [str(n) for n in names]
