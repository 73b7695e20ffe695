"""Which parts of a photo a notice letter may show: one area per contaminant box, or per group of boxes close together.

A letter shows the evidence and nothing else of the photo (issue: "the
evidence crop ... and nothing else"). One crop around the union of all boxes
would show the whole frame when two boxes lie in opposite corners, so:

- each box gets its own area: the box grown by `margin` x its larger side on
  each side (at least MIN_MARGIN_PX), clipped to the photo;
- boxes whose areas overlap are shown together, as one area around both,
  but only while that area stays within the cap (else they stay apart:
  two small crops show less of the photo than one that spans both);
- no area may cover more than `max_share` of the frame: a margin that would
  break the cap is narrowed until it fits; a box that alone covers more than
  the cap is shown as the box itself, without margin (it is the evidence);
- at most MAX_AREAS are shown, the largest evidence first, so a photo full
  of boxes cannot add up to the whole frame either (the letter says how
  many places were left out).

Areas are (left, top, right, bottom) in whole pixels of the upright photo.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_MARGIN_PX = 8
MAX_AREAS = 3  # crops side by side in one row of the letter; with the cap, at most 3/4 of a frame ever shows
BISECT_STEPS = 24  # narrowing a margin to the cap: far below a pixel after 24 halvings

Area = tuple[int, int, int, int]


@dataclass(frozen=True)
class CropPlan:
    areas: list[Area]  # largest evidence first
    left_out: int  # boxes (or groups of boxes) not shown because MAX_AREAS were shown already


def _bounds(boxes: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def _grown(bounds: tuple[float, float, float, float], pad: float, width: int, height: int) -> Area:
    x0, y0, x1, y1 = bounds
    left, top = max(0, math.floor(x0 - pad)), max(0, math.floor(y0 - pad))
    right, bottom = min(width, math.ceil(x1 + pad)), min(height, math.ceil(y1 + pad))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def _size(area: Area) -> int:
    return (area[2] - area[0]) * (area[3] - area[1])


def _full_pad(bounds: tuple[float, float, float, float], margin: float) -> float:
    return max(MIN_MARGIN_PX, margin * max(bounds[2] - bounds[0], bounds[3] - bounds[1]))


def around(boxes: Sequence[Sequence[float]], width: int, height: int, margin: float) -> Area:
    """The boxes' bounding box grown by the full margin, inside the photo (the cap not applied)."""
    bounds = _bounds(boxes)
    return _grown(bounds, _full_pad(bounds, margin), width, height)


def capped(boxes: Sequence[Sequence[float]], width: int, height: int, margin: float, max_share: float) -> Area:
    """`around`, with the margin narrowed until the area is within max_share of the frame; the bare box if even that is not."""
    bounds = _bounds(boxes)
    cap = max_share * width * height
    full = _grown(bounds, _full_pad(bounds, margin), width, height)
    if _size(full) <= cap:
        return full
    bare = _grown(bounds, 0.0, width, height)
    if _size(bare) >= cap:
        return bare
    fits, breaks = 0.0, _full_pad(bounds, margin)  # the clipped area grows with the pad: bisect for the widest that fits
    for _ in range(BISECT_STEPS):
        middle = (fits + breaks) / 2
        fits, breaks = (middle, breaks) if _size(_grown(bounds, middle, width, height)) <= cap else (fits, middle)
    return _grown(bounds, fits, width, height)


def _overlap(a: Area, b: Area) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def plan_crops(boxes: Sequence[Sequence[float]], width: int, height: int, margin: float, max_share: float) -> CropPlan:
    """The areas to show for these boxes (module docstring); none for no boxes."""
    cap = max_share * width * height
    groups: list[list[Sequence[float]]] = [[b] for b in boxes]
    merged = True
    while merged:  # a merge grows an area, which may then reach another group: repeat until nothing changes
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                together = around(groups[i] + groups[j], width, height, margin)
                if _overlap(around(groups[i], width, height, margin), around(groups[j], width, height, margin)) and _size(together) <= cap:
                    groups[i] += groups.pop(j)
                    merged = True
                    break
            if merged:
                break
    groups.sort(key=lambda g: _size(_grown(_bounds(g), 0.0, width, height)), reverse=True)
    shown = [capped(g, width, height, margin, max_share) for g in groups[:MAX_AREAS]]
    return CropPlan(shown, max(0, len(groups) - MAX_AREAS))
