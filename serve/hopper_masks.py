"""Per-truck hopper masks: which part of a camera's frame may be stored at all.

A truck's camera is fixed, so what lies outside its hopper (the street, a
neighbour's window, the loader's face) is always in the same place. The mask
file (BINSIGHT_PRIVACY_MASKS, YAML) maps a truck id, or `default` for every
truck not listed, to one polygon or a list of polygons in relative
coordinates (0-1, x to the right, y down, of the upright photo):

    default:                      # trucks not listed
      - [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
    HAM-EB-101:                   # one polygon
      [[0.15, 0.1], [0.85, 0.1], [0.95, 1.0], [0.05, 1.0]]

The `default` entry is required: without it a truck not listed (a new one,
or an id typed differently in the file) would store its whole frame, street
and neighbours included, and nobody would notice. A fleet that wants the
whole frame kept for unlisted trucks says so: `default: [[0, 0], [1, 0],
[1, 1], [0, 1]]`. configs/privacy_masks.example.yaml is a commented example.
The file is read once at start-up; every problem stops the start with
MaskFileError naming the file and the entry.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from pipeline.yamlfile import YamlFileError, read_yaml

DEFAULT_ENTRY = "default"
WHOLE_FRAME_CHECK_SIDE = 100  # pixels of the raster that tells a mask from the whole frame (1 % = 100 pixels)
Polygon = tuple[tuple[float, float], ...]


class MaskFileError(ValueError):
    """The mask file cannot be used; the message names the file and the problem."""


def load_masks(path: Path) -> HopperMasks:
    try:
        document = read_yaml(path)
    except FileNotFoundError:
        raise MaskFileError(f"privacy mask file {path}: not found") from None
    except OSError as err:
        raise MaskFileError(f"privacy mask file {path}: cannot be read: {err.strerror}") from None
    except YamlFileError as err:
        raise MaskFileError(f"privacy mask file {path}: {err.detail}") from None
    if not isinstance(document, dict) or not document:
        raise MaskFileError(f"privacy mask file {path}: expected a mapping of truck id (or {DEFAULT_ENTRY!r}) to polygons")
    polygons = {str(truck): _polygons(path, str(truck), entry) for truck, entry in document.items()}
    if DEFAULT_ENTRY not in polygons:
        raise MaskFileError(f"privacy mask file {path}: no {DEFAULT_ENTRY!r} entry; a truck not listed would store its whole frame. "
                            f"Add `{DEFAULT_ENTRY}:` with the hopper polygon for unlisted trucks (the whole frame, if that is meant: "
                            "[[0, 0], [1, 0], [1, 1], [0, 1]])")  # fmt: skip
    return HopperMasks(polygons)


def _polygons(path: Path, truck: str, entry) -> tuple[Polygon, ...]:
    where = f"privacy mask file {path}, entry {truck!r}"
    if not isinstance(entry, list) or not entry:
        raise MaskFileError(f"{where}: expected a polygon (a list of [x, y] points) or a list of polygons")
    # One polygon is a list of points; several are a list of such lists.
    shapes = [entry] if _is_point(entry[0]) else entry
    return tuple(_polygon(f"{where}, polygon {k + 1}", shape) for k, shape in enumerate(shapes))


def _is_point(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def _polygon(where: str, shape) -> Polygon:
    if not isinstance(shape, list) or not all(_is_point(p) for p in shape):
        raise MaskFileError(f"{where}: every point must be a pair of numbers [x, y], got {shape!r}")
    if len(shape) < 3:
        raise MaskFileError(f"{where}: a polygon needs at least 3 points, got {len(shape)}")
    outside = [p for p in shape if not (0.0 <= p[0] <= 1.0 and 0.0 <= p[1] <= 1.0)]
    if outside:
        raise MaskFileError(f"{where}: coordinates are relative to the frame and must lie in 0-1, got {outside[0]}")
    return tuple((float(x), float(y)) for x, y in shape)


class HopperMasks:
    """The validated polygons, rasterised on demand per (truck, frame size) and cached: a truck's frames all have one size."""

    def __init__(self, polygons: dict[str, tuple[Polygon, ...]]):
        if DEFAULT_ENTRY not in polygons:
            raise MaskFileError(f"hopper masks need a {DEFAULT_ENTRY!r} entry for trucks not listed")
        self.polygons = polygons
        self._rasters: dict[tuple[str, int, int], np.ndarray] = {}
        self._lock = threading.Lock()

    def whole_frame_entries(self) -> list[str]:
        """Entries (truck ids, or `default`) whose polygons leave less than 1 % of the frame outside: no mask in effect."""
        return [truck for truck in self.polygons if self.raster(truck, WHOLE_FRAME_CHECK_SIDE, WHOLE_FRAME_CHECK_SIDE).mean() >= 0.99]

    def polygons_for(self, truck_id: str) -> tuple[Polygon, ...]:
        return self.polygons.get(truck_id, self.polygons[DEFAULT_ENTRY])

    def raster(self, truck_id: str, width: int, height: int) -> np.ndarray:
        """uint8 [H, W], 1 inside the hopper and 0 outside."""
        polygons = self.polygons_for(truck_id)
        key = (truck_id if truck_id in self.polygons else DEFAULT_ENTRY, width, height)
        with self._lock:
            found = self._rasters.get(key)
        if found is None:
            found = np.zeros((height, width), np.uint8)
            # Relative corners map to the frame's outer edges: 1.0 is the last pixel's far side.
            scale = np.array([width, height], np.float64)
            points = [np.round(np.array(p) * scale).astype(np.int32) for p in polygons]
            cv2.fillPoly(found, points, 1)
            found.setflags(write=False)
            with self._lock:
                if len(self._rasters) > 256:  # frame sizes of a fleet are few; a bound all the same
                    self._rasters.clear()
                self._rasters[key] = found
        return found
