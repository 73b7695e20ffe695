"""Finding European licence plates with OpenCV's image operations, no trained model.

OpenCV's bundled plate cascades are trained on Russian plates (another
shape, font and colour band), so a plate is found instead by what EU plates
look like: a bright, unsaturated rectangle about 2.5 to 6.5
times as wide as high, holding a row of dark characters of about half its
height. That catches upright and moderately tilted or foreshortened plates
large enough to read; it misses plates that are dirty, steeply angled, seen
at night, or yellow/coloured (bench/privacy_recall.py measures it).
"""

from __future__ import annotations

import cv2
import numpy as np

Box = tuple[float, float, float, float]

# Global brightness levels at which the plate's white field is looked for: one
# level alone fails under hard sun or at dusk, a local threshold fails for a
# plate larger than its window.
BRIGHTNESS_LEVELS = (110, 145, 180, 215)
MAX_SATURATION = 70  # a plate's field is white or grey; the bin's content is mostly coloured
ASPECT_RANGE = (2.5, 6.5)  # width / height of the white field (520 x 110 mm, less the blue band and the frame)
MIN_FILL = 0.7  # share of its rotated bounding rectangle the field fills: a rectangle, not a blob
MIN_HEIGHT_PX = 5  # characters smaller than this are unreadable anyway
MIN_CHARACTERS = 4  # German plates carry at least 1 + 1 letters and 1 digit, usually 5-8 signs
CHECK_SIZE = (176, 40)  # the field is warped to this size to count its characters


class PlateFinder:
    kind = "plate"

    def find(self, rgb: np.ndarray) -> list[Box]:
        """Boxes (x1, y1, x2, y2, pixels of `rgb`) of the plates in an RGB image."""
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        unsaturated = hsv[..., 1] <= MAX_SATURATION
        found: list[Box] = []
        for level in BRIGHTNESS_LEVELS:
            field = ((gray >= level) & unsaturated).astype(np.uint8)
            contours, _ = cv2.findContours(field, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            for contour in contours:
                box = self._plate_box(gray, contour)
                if box is not None:
                    found.append(box)
        return _merge(found)

    def _plate_box(self, gray: np.ndarray, contour: np.ndarray) -> Box | None:
        if len(contour) < 4 or cv2.contourArea(contour) < 4 * MIN_HEIGHT_PX * MIN_HEIGHT_PX:
            return None
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
        long_side, short_side = max(rw, rh), min(rw, rh)
        if short_side < MIN_HEIGHT_PX or not ASPECT_RANGE[0] <= long_side / short_side <= ASPECT_RANGE[1]:
            return None
        if cv2.contourArea(cv2.convexHull(contour)) < MIN_FILL * rw * rh:
            return None
        corners = cv2.boxPoints(((cx, cy), (rw, rh), angle))
        if not _has_characters(gray, corners):
            return None
        x, y, w, h = cv2.boundingRect(corners.astype(np.int32))
        return float(x), float(y), float(x + w), float(y + h)


def _has_characters(gray: np.ndarray, corners: np.ndarray) -> bool:
    """Whether the field holds a row of dark, character-sized marks (not a blank label or a bright bottle)."""
    width, height = CHECK_SIZE
    # Order the corners so that the long side becomes the warped width.
    ordered = _order_corners(corners)
    if np.linalg.norm(ordered[1] - ordered[0]) < np.linalg.norm(ordered[3] - ordered[0]):
        ordered = np.roll(ordered, -1, axis=0)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    patch = cv2.warpPerspective(gray, cv2.getPerspectiveTransform(ordered.astype(np.float32), target), (width, height))
    _, dark = cv2.threshold(patch, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    share = dark.mean()
    if not 0.08 <= share <= 0.55:
        return False
    count, _, stats, _ = cv2.connectedComponentsWithStats(dark.astype(np.uint8), connectivity=8)
    heights, widths = stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_WIDTH]
    characters = (heights >= 0.35 * height) & (heights <= 0.95 * height) & (widths >= 2) & (widths <= 0.2 * width)
    return int(characters.sum()) >= MIN_CHARACTERS


def _order_corners(corners: np.ndarray) -> np.ndarray:
    """Top-left, top-right, bottom-right, bottom-left."""
    s, d = corners.sum(axis=1), np.diff(corners, axis=1).ravel()
    return np.array([corners[np.argmin(s)], corners[np.argmin(d)], corners[np.argmax(s)], corners[np.argmax(d)]], np.float32)


def _merge(boxes: list[Box]) -> list[Box]:
    """One box per plate: the same plate is found at several brightness levels."""
    merged: list[list[float]] = []
    for box in sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True):
        for kept in merged:
            if _overlap(box, kept) > 0.5:
                kept[:] = [min(kept[0], box[0]), min(kept[1], box[1]), max(kept[2], box[2]), max(kept[3], box[3])]
                break
        else:
            merged.append(list(box))
    return [tuple(b) for b in merged]


def _overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller if smaller > 0 else 0.0
