"""Finding faces and people with the detectors OpenCV ships: Haar cascades and the HOG people detector.

They come inside the opencv-python wheel (`cv2.data.haarcascades`,
`cv2.HOGDescriptor_getDefaultPeopleDetector()`), so they run offline and
need no model download. What they find and miss is measured by
`make bench-privacy` (README, "Privacy before storage", Limits).

Thread safety: the finders run in the image writer pool (serve/storage.py,
4 threads). `CascadeClassifier.detectMultiScale` is not safe on one shared
instance: it loads each image into the classifier's own feature evaluator
(state the next call overwrites). So every thread gets its own classifiers
(`threading.local`); the XML files are parsed and checked once, at start-up,
and a missing or unreadable file stops the start.

Parameters are tuned for few false blurs on waste photos, because a blurred
patch can hide a contaminant from the reviewer (BENCHMARKS.md, privacy).
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

Box = tuple[float, float, float, float]

# alt2 rather than `default`: at the same recall on planted faces it blurred
# 1 % of real waste photos against 4-16 % (BENCHMARKS.md, privacy).
FRONTAL_CASCADE = "haarcascade_frontalface_alt2.xml"
PROFILE_CASCADE = "haarcascade_profileface.xml"
FACE_SIDE = 320  # longer side the cascades search: a face must be >= 1/16 of the frame wide; at 480 the cost is 2.5 x
FACE_SCALE_FACTOR = 1.1  # 1.2 halves the cost but finds only half the faces 120-160 px high in a 1280 px frame
FACE_MIN_NEIGHBOURS = 3  # 5 halves recall on faces near the smallest size for no measured gain on waste photos at this side
FACE_MIN_SIZE = 20  # pixels of the searched copy: the cascades' window
# The cascades' box is the inner face (brows to mouth); the head around it
# (hair, ears, chin) is this much larger in each direction, as shares of the box.
HEAD_GROW = (0.15, 0.3, 0.15, 0.2)  # left, top, right, bottom
# A head cut by the frame's left or right edge has no whole face in any window of the cascade. Mirrored
# across that edge, the visible part and its mirror image make a whole (symmetric) face again. Each edge
# strip of this share of the searched copy's width is searched beside its mirror image (BENCHMARKS.md,
# privacy, for what it finds, what it blurs by mistake and what it costs).
EDGE_MIRROR = 0.15
EDGE_MIN_INSIDE = 0.3  # a find must lie at least this share of its width inside the frame (else it is the mirror's)
# Raw detections a find across the seam needs (FACE_MIN_NEIGHBOURS elsewhere): mirrored texture is symmetric
# like a face. 4: heads 40 % beyond the edge found 20-25 % at 120-160 px, 100 % at 320 px, for 5.5 % of real
# waste photos with a false face blur (2.5 % without the mirror); 6: 0 %, 0 %, 100 % for 4.0 %.
EDGE_MIN_NEIGHBOURS = 4

PEOPLE_SIDE = 320  # longer side HOG searches: its window is 64 x 128, so a person must be >= 1/2 of a 4:3 frame high (400: 2 x the cost)
PEOPLE_STRIDE = (8, 8)
PEOPLE_SCALE = 1.2  # 1.1 doubles the cost
PEOPLE_MIN_WEIGHT = 0.5  # SVM margin a window needs: halves the waste photos it blurred (3 % to 1 %) in the tuning run


class DetectorFileError(RuntimeError):
    """A detector that ships with OpenCV is missing or unreadable; the message names the file."""


def cascade_path(name: str) -> Path:
    path = Path(cv2.data.haarcascades) / name
    if not path.is_file():
        raise DetectorFileError(f"OpenCV's cascade {path} is missing: opencv-python(-headless) 4.x ships it in cv2/data (pyproject.toml pins it)")
    if cv2.CascadeClassifier(str(path)).empty():
        raise DetectorFileError(f"OpenCV cannot load its cascade {path}")
    return path


class _PerThread(threading.local):
    """Classifiers of one thread, built on first use from the checked paths."""

    def __init__(self, paths: tuple[Path, ...]):
        self.classifiers = tuple(cv2.CascadeClassifier(str(p)) for p in paths)


class FaceFinder:
    """Frontal faces; with `profiles`, also faces seen from the side, either way.

    The frame's left and right edge strips are also searched beside their
    mirror images (EDGE_MIRROR), so that a head cut by the edge is found too. The profile cascade knows one
    side only, so it also runs on the mirrored image. Profiles are off by default: they triple the cost and blurred 5-10 %
    of real waste photos, and no profile photo ships offline to measure what
    they find (BENCHMARKS.md). No histogram equalisation: on pasted faces it
    cost recall and raised false blurs on the synthetic scenes.
    """

    kind = "face"

    def __init__(self, profiles: bool = False, edge_mirror: float = EDGE_MIRROR):
        self.profiles, self.edge_mirror = profiles, edge_mirror
        self._local = _PerThread(tuple(cascade_path(name) for name in ((FRONTAL_CASCADE, PROFILE_CASCADE) if profiles else (FRONTAL_CASCADE,))))

    def find(self, rgb: np.ndarray) -> list[Box]:
        small, scale = _downscaled(rgb, FACE_SIDE)
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        boxes = [box for box, _ in self._finds(gray)] + self._across_edges(gray)
        return [tuple(v / scale for v in _head(box, gray.shape)) for box in boxes]

    def _finds(self, gray: np.ndarray) -> list[tuple[Box, int]]:
        """(x1, y1, x2, y2) of each face with its evidence (raw detections grouped into it)."""
        width = gray.shape[1]
        frontal, *profile = self._local.classifiers
        found = [((x, y, x + w, y + h), n) for (x, y, w, h), n in _detect(frontal, gray)]
        if profile:
            found += [((x, y, x + w, y + h), n) for (x, y, w, h), n in _detect(profile[0], gray)]
            found += [((width - x - w, y, width - x, y + h), n) for (x, y, w, h), n in _detect(profile[0], cv2.flip(gray, 1))]
        return found

    def _across_edges(self, gray: np.ndarray) -> list[Box]:
        """Heads cut by the left or right edge (EDGE_MIRROR): each edge strip beside its mirror image, searched
        apart from the main pass (whose finds stay exactly as they are); only finds across the seam count."""
        width = gray.shape[1]
        strip = min(width, round(self.edge_mirror * width))
        if strip < FACE_MIN_SIZE // 2:
            return []
        boxes = []
        for side, (left, right) in (("left", (strip, 0)), ("right", (0, strip))):
            part = np.ascontiguousarray(gray[:, :strip] if side == "left" else gray[:, width - strip:])
            mirrored = cv2.copyMakeBorder(part, 0, 0, left, right, cv2.BORDER_REFLECT)  # the seam at x = strip
            for (x1, y1, x2, y2), neighbours in self._finds(mirrored):
                inside = (x2 - strip) if side == "left" else (strip - x1)
                if not (x1 < strip < x2) or inside < EDGE_MIN_INSIDE * (x2 - x1) or neighbours < EDGE_MIN_NEIGHBOURS:
                    continue  # wholly on one side (the main pass's, or the mirror's), mostly mirror, or thin evidence
                offset = -strip if side == "left" else width - strip
                boxes.append((x1 + offset, y1, x2 + offset, y2))
        return boxes


def _downscaled(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    height, width = rgb.shape[:2]
    scale = min(1.0, side / max(height, width))
    if scale == 1.0:
        return rgb, scale
    return cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA), scale


def _detect(classifier: cv2.CascadeClassifier, gray: np.ndarray) -> list[tuple[tuple[int, int, int, int], int]]:
    """(x, y, w, h) of each find with the number of raw detections grouped into it (its evidence)."""
    found, neighbours = classifier.detectMultiScale2(gray, scaleFactor=FACE_SCALE_FACTOR, minNeighbors=FACE_MIN_NEIGHBOURS,
                                                     minSize=(FACE_MIN_SIZE, FACE_MIN_SIZE))
    return [(tuple(int(v) for v in box), int(n)) for box, n in zip(np.asarray(found).reshape(-1, 4), np.asarray(neighbours).ravel())]


def _head(box, shape) -> Box:
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    left, top, right, bottom = HEAD_GROW
    return (max(0.0, x1 - left * w), max(0.0, y1 - top * h), min(float(shape[1]), x2 + right * w), min(float(shape[0]), y2 + bottom * h))


class PersonFinder:
    """Upright people (standing, walking) with OpenCV's HOG people detector, on a copy of PEOPLE_SIDE pixels."""

    kind = "person"

    def __init__(self):
        detector = cv2.HOGDescriptor_getDefaultPeopleDetector()
        if detector is None or len(detector) == 0:
            raise DetectorFileError("this OpenCV build has no default HOG people detector (opencv-python 4.x ships it)")
        self._detector = np.asarray(detector)
        self._local = threading.local()  # a HOGDescriptor per thread, as for the cascades: no shared native state

    def _hog(self) -> cv2.HOGDescriptor:
        hog = getattr(self._local, "hog", None)
        if hog is None:
            hog = self._local.hog = cv2.HOGDescriptor()
            hog.setSVMDetector(self._detector)
        return hog

    def find(self, rgb: np.ndarray) -> list[Box]:
        small, scale = _downscaled(rgb, PEOPLE_SIDE)
        if small.shape[0] < 128 or small.shape[1] < 64:
            return []
        boxes, weights = self._hog().detectMultiScale(small, winStride=PEOPLE_STRIDE, scale=PEOPLE_SCALE)
        weights = np.asarray(weights).ravel()
        return [tuple(float(v) / scale for v in (x, y, x + w, y + h))
                for (x, y, w, h), weight in zip(np.asarray(boxes).reshape(-1, 4), weights) if weight >= PEOPLE_MIN_WEIGHT]
