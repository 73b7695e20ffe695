"""Making a frame safe to store: what identifies people is blurred, what lies outside the hopper blanked.

Runs in the image writer thread (serve/storage.py) beside inference, on the
decoded, upright RGB frame; the verdict is computed on the original frame in
memory, and the unprotected frame is never written (serve/routers/trucks.py).

1. Finders (objects with `kind` and `find(rgb) -> boxes`: faces and people,
   serve/people_finders.py; plates, serve/plate_finder.py) look at a copy
   downscaled to BINSIGHT_PRIVACY_DETECTION_SIDE; their boxes are mapped back
   and padded, because a finder's box is tight and a blurred edge must not
   leave an ear or a plate's last letter readable.
2. Each box is pixelated to a few cells across and then blurred: the cells'
   averages are all that remains, from which no face or text can be rebuilt.
3. The truck's hopper mask (serve/hopper_masks.py) blanks everything outside
   the hopper to black. The mask is the reliable layer: finders miss things
   (README, "Privacy: limits").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import cv2
import numpy as np

from serve.hopper_masks import DEFAULT_ENTRY, HopperMasks
from serve.people_finders import FaceFinder, PersonFinder
from serve.plate_finder import PlateFinder

Box = tuple[float, float, float, float]
PAD = 0.2  # share of a found box's width and height added on each side
CELLS = 6  # pixelation cells across a blurred box's shorter side
JPEG_QUALITY = 90
# What the finders miss (README, Privacy before storage, Limits), for the warning staff pages show.
FINDER_LIMITS = ("They miss people seen from behind or only partly in view, faces under about 1/12 of the frame high or "
                 "turned aside, and plates that are small, dirty, steeply angled or of other countries. Set a real mask for every truck.")


class Finder(Protocol):
    kind: str

    def find(self, rgb: np.ndarray) -> list[Box]: ...


@dataclass(frozen=True)
class SafeImage:
    """The encoded image that may be stored, and what was done to it."""

    data: bytes
    # [{"kind": "face"|"plate"|"person"|"mask", "box": [x1, y1, x2, y2]}]; None: nothing was examined (privacy off)
    regions: list[dict] | None = field(default_factory=list)
    visible_share: float = 1.0  # area inside the hopper mask / frame area


def default_finders() -> list[Finder]:
    # Faces (OpenCV's frontal Haar cascade), upright people (its HOG people
    # detector), plates (serve/plate_finder.py). Left out after measuring
    # (BENCHMARKS.md, privacy): the profile and upper-body cascades (2-5 x the
    # cost, more false blurs on waste photos, nothing found that we could test).
    # Built once here; a missing cascade file stops the start.
    return [FaceFinder(), PersonFinder(), PlateFinder()]


class PrivacyFilter:
    def __init__(self, masks: HopperMasks | None, detection_side: int, blur: bool = True, finders: list[Finder] | None = None):
        self.masks, self.detection_side, self.blur = masks, detection_side, blur
        self.finders = (default_finders() if finders is None else finders) if blur else []

    @property
    def changes_images(self) -> bool:
        """False when privacy is off (no blur, no mask): uploads are then stored as received."""
        return bool(self.finders) or self.masks is not None

    @cached_property  # the configuration is fixed once the service has started; pages ask on every render
    def unprotected_warning(self) -> str | None:
        """What this configuration leaves recognisable in stored photos, in words for administrators; None when
        every truck has a hopper mask and blurring is on.

        Logged at start-up and shown to administrators on every staff page: the
        finders miss much (README, Privacy before storage, Limits), so a truck
        without a real mask can store a person beside the hopper recognisable,
        and the people who could set one should see that.
        """
        if self.masks is None and not self.finders:
            return ("Privacy before storage is off (BINSIGHT_PRIVACY_BLUR=false, no BINSIGHT_PRIVACY_MASKS): "
                    "photos are stored exactly as the trucks sent them, faces, people and plates included.")
        said = []
        if self.masks is None:
            said.append("No hopper mask is configured (BINSIGHT_PRIVACY_MASKS): stored photos are protected only by the finders.")
        elif unmasked := self.masks.whole_frame_entries():
            trucks = ", ".join("trucks not listed" if t == DEFAULT_ENTRY else t for t in unmasked)
            said.append(f"The hopper mask of {trucks} covers the whole frame: those photos are protected only by the finders.")
        if said and self.finders:
            said.append(FINDER_LIMITS)
        if not self.finders:
            said.append("Blurring is off (BINSIGHT_PRIVACY_BLUR=false): faces, people and plates inside the hopper are stored as seen.")
        return " ".join(said) or None

    def protect(self, rgb: np.ndarray, truck_id: str) -> tuple[np.ndarray, list[dict], float]:
        """A protected copy of the frame, the regions blurred or blanked, and the visible share; `rgb` is not changed."""
        height, width = rgb.shape[:2]
        safe = rgb.copy()
        regions: list[dict] = []
        hopper = None if self.masks is None else self.masks.raster(truck_id, width, height)
        # What the mask blanks needs no finder: they look only at the hopper's bounding box,
        # which costs less and cannot blur waste outside it by mistake.
        left, top, right, bottom = _bounds(hopper) if hopper is not None else (0, 0, width, height)
        for kind, box in self._found(rgb[top:bottom, left:right]) if right > left and bottom > top else []:
            x1, y1, x2, y2 = _padded((box[0] + left, box[1] + top, box[2] + left, box[3] + top), width, height)
            if x2 - x1 >= 1 and y2 - y1 >= 1:
                safe[y1:y2, x1:x2] = _obliterate(safe[y1:y2, x1:x2])
                regions.append({"kind": kind, "box": [x1, y1, x2, y2]})
        visible_share = 1.0
        if hopper is not None:
            outside = hopper == 0
            safe[outside] = 0
            visible_share = float(hopper.mean())
            if outside.any():
                ys, xs = np.nonzero(outside)
                regions.append({"kind": "mask", "box": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]})
        return safe, regions, visible_share

    def render(self, rgb: np.ndarray, truck_id: str, extension: str) -> SafeImage:
        """The protected frame encoded for storage: JPEG (quality 90), or PNG for a PNG upload (lossless stays lossless)."""
        safe, regions, visible_share = self.protect(rgb, truck_id)
        bgr = cv2.cvtColor(safe, cv2.COLOR_RGB2BGR)
        params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if extension == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
        ok, encoded = cv2.imencode(f".{extension}", bgr, params)
        if not ok:
            raise RuntimeError(f"OpenCV could not encode a {rgb.shape[1]}x{rgb.shape[0]} image as {extension}")
        return SafeImage(encoded.tobytes(), regions, visible_share)

    def _found(self, rgb: np.ndarray) -> list[tuple[str, Box]]:
        if not self.finders:
            return []
        height, width = rgb.shape[:2]
        scale = min(1.0, self.detection_side / max(height, width))
        small = rgb if scale == 1.0 else cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
        return [(finder.kind, tuple(v / scale for v in box)) for finder in self.finders for box in finder.find(small)]


def _bounds(hopper: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box (left, top, right, bottom) of a mask's inside; all zero when nothing is inside."""
    ys, xs = np.nonzero(hopper)
    return (0, 0, 0, 0) if xs.size == 0 else (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _padded(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    pad_x, pad_y = PAD * (x2 - x1), PAD * (y2 - y1)
    return (max(0, int(np.floor(x1 - pad_x))), max(0, int(np.floor(y1 - pad_y))),
            min(width, int(np.ceil(x2 + pad_x))), min(height, int(np.ceil(y2 + pad_y))))


def _obliterate(patch: np.ndarray) -> np.ndarray:
    """Pixelate to CELLS cells across the shorter side, then blur the cells' edges away."""
    h, w = patch.shape[:2]
    cell = max(1, min(h, w) // CELLS)
    coarse = cv2.resize(patch, (max(1, w // cell), max(1, h // cell)), interpolation=cv2.INTER_AREA)
    blocky = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_NEAREST)
    kernel = 2 * (cell // 2) + 1
    return cv2.GaussianBlur(blocky, (kernel, kernel), 0) if kernel > 1 else blocky
