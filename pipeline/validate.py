"""Dataset validation: every problem found, by file and kind, before any training.

A problem never stops the scan: the report lists all of them at once, so a
data scientist fixes a broken export in one pass rather than one error at a
time. Problems that concern one annotation also condemn its image when bad
items are dropped: training on an image with a missing box would teach the
detector that the object is background.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from pipeline.coco import CAPTURE_FIELDS, IMAGES_DIR
from pipeline.imageio import upright_size

PROBLEM_KINDS = {
    "missing_file": "the image file named in the annotations does not exist",
    "unreadable_image": "the file is not an image PIL can decode",
    "truncated_image": "the image file ends before its pixel data does",
    "size_mismatch": "width/height in the annotations differ from the image file",
    "duplicate_image_id": "two images share an id",
    "duplicate_annotation_id": "two annotations share an id",
    "orphan_annotation": "an annotation refers to an image id that does not exist",
    "unknown_category": "a category id or name is not in configs/classes.yaml",
    "degenerate_box": "a box is not finite, or narrower/lower than prepare.min_box_size",
    "box_outside_image": "a box extends beyond the image borders",
    "missing_metadata": "an image lacks its capture metadata (the waste fraction is required)",
    "invalid_metadata": "capture metadata is malformed (unknown fraction, empty bin/truck id, bad time or GPS)",
    # found by the importers (pipeline/importers), in the source dataset
    "missing_image": "a label file has no image of the same name",
    "empty_image": "the image file has 0 bytes",
    "malformed_label": "a label line is not `class cx cy w h` or `class x1 y1 x2 y2 x3 y3 ...`",
    "class_out_of_range": "a class index is not one of the names in data.yaml",
    "duplicate_image": "the same image content occurs twice in the source (the copy with the most boxes is kept)",
    "unannotated_task": "a Label Studio task has no annotation, or only cancelled (skipped) ones",
    "rotated_box": "a Label Studio rectangle is rotated; COCO boxes are axis-aligned",
    "unsupported_region": "a Label Studio region is not a box (brush, keypoints, ...)",
    "malformed_region": "a Label Studio region lacks its label or coordinates, or has several labels",
}

BORDER_TOLERANCE = 1.0  # pixels; labelling tools round box edges outwards


class DatasetFormatError(ValueError):
    """The annotation file itself is not a usable COCO document."""


@dataclass(frozen=True)
class Problem:
    kind: str
    file: str
    detail: str
    image_id: int | None = None
    annotation_id: int | None = None
    line: int | None = None  # 1-based line in a label file (YOLO importer)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def check_structure(coco: Any) -> None:
    if not isinstance(coco, dict):
        raise DatasetFormatError("the annotation file must hold a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise DatasetFormatError(f"the annotation file has no {key!r} list")
    for key, fields in (("images", ("id", "file_name")), ("annotations", ("id", "image_id", "category_id", "bbox")), ("categories", ("id", "name"))):
        for i, item in enumerate(coco[key]):
            absent = [f for f in fields if not isinstance(item, dict) or f not in item]
            if absent:
                raise DatasetFormatError(f"{key}[{i}] lacks {absent}")
    check_ids(coco)


COCO_ID_FIELDS = {"images": ("id",), "annotations": ("id", "image_id", "category_id"), "categories": ("id",)}


def check_ids(coco: dict[str, Any]) -> None:
    """DatasetFormatError naming the first id that is not a number or string (a hand-edited file, a broken export).

    Ids are dict keys in every check that follows; a list or object would stop it with a TypeError, and null,
    true or false would match by accident.
    """
    for key, fields in COCO_ID_FIELDS.items():
        for index, entry in enumerate(coco[key]):
            for name in fields:
                value = entry[name]
                if isinstance(value, bool) or not isinstance(value, int | float | str):
                    shown = json.dumps(value)
                    shown = shown if len(shown) <= 40 else f"{shown[:37]}..."
                    raise DatasetFormatError(f"{key}[{index}].{name} must be a number or string, not {shown}")


def decode_size(source: Any) -> tuple[int, int] | tuple[str, str]:
    """The upright (width, height) of an image file or stream, or (problem kind, detail) if it does not decode."""
    try:
        with Image.open(source) as im:
            im.load()  # decodes all pixel data: catches truncation that verify() misses
            return upright_size(im)
    except UnidentifiedImageError:
        return ("unreadable_image", "not a recognised image format")
    except OSError as err:
        kind = "truncated_image" if "truncated" in str(err).lower() else "unreadable_image"
        return (kind, str(err))
    except Exception as err:  # noqa: BLE001 - a decoder bug on one file must not stop the scan
        return ("unreadable_image", f"{type(err).__name__}: {err}")


def _check_image_file(path: Path, info: dict[str, Any]) -> list[tuple[str, str]]:
    if not path.is_file():
        return [("missing_file", f"{path} not found")]
    size = decode_size(path)
    if isinstance(size[0], str):
        return [size]
    if (info.get("width"), info.get("height")) != size:
        return [("size_mismatch", f"annotations say {info.get('width')}x{info.get('height')}, file is {size[0]}x{size[1]}")]
    return []


def _check_capture(capture: Any, fractions: set[str]) -> list[tuple[str, str]]:
    if not isinstance(capture, dict):
        return [("missing_metadata", "no 'capture' object")]
    absent = [f for f in CAPTURE_FIELDS if not capture.get(f)]
    if absent:
        return [("missing_metadata", f"capture lacks {absent}")]
    problems = []
    if capture["fraction"] not in fractions:
        problems.append(("invalid_metadata", f"unknown fraction {capture['fraction']!r}; known: {sorted(fractions)}"))
    # Optional (third-party datasets have no bin, truck or time), but checked when given.
    for key in ("bin_id", "truck_id"):
        if key in capture and (not isinstance(capture[key], str | int) or not str(capture[key]).strip()):
            problems.append(("invalid_metadata", f"{key} {capture[key]!r} is not a non-empty id"))
    if "captured_at" in capture:
        try:
            datetime.fromisoformat(str(capture["captured_at"]))
        except ValueError:
            problems.append(("invalid_metadata", f"captured_at {capture['captured_at']!r} is not an ISO 8601 time"))
    gps = capture.get("gps")
    if gps is not None:
        try:
            lat, lon = float(gps["lat"]), float(gps["lon"])
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            problems.append(("invalid_metadata", f"gps {gps!r} is not a valid {{lat, lon}}"))
    return problems


def check_box(bbox: Any, width: Any, height: Any, min_size: float) -> tuple[str, str] | None:
    """(problem kind, detail) for a COCO [x, y, w, h] box that is degenerate or leaves the image, else None."""
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        return ("degenerate_box", f"bbox {bbox!r} is not four numbers [x, y, w, h]")
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w < max(min_size, 1e-6) or h < max(min_size, 1e-6):
        return ("degenerate_box", f"bbox {bbox} has a non-finite value or a side of 0 or below {min_size} px")
    if isinstance(width, int | float) and isinstance(height, int | float):
        t = BORDER_TOLERANCE
        if x < -t or y < -t or x + w > width + t or y + h > height + t:
            return ("box_outside_image", f"bbox {bbox} exceeds the {width}x{height} image")
    return None


def validate(coco: dict[str, Any], data_dir: Path, class_names: list[str], fractions: set[str], min_box_size: float) -> list[Problem]:
    """All problems in a COCO dataset whose images lie under data_dir/images."""
    check_structure(coco)
    problems: list[Problem] = []
    known_names = set(class_names)
    category_names = {c["id"]: c["name"] for c in coco["categories"]}
    for cat in coco["categories"]:
        if cat["name"] not in known_names:
            problems.append(Problem("unknown_category", "annotations.json", f"category {cat['name']!r} (id {cat['id']}) is not in the class list"))

    image_counts = Counter(im["id"] for im in coco["images"])
    images = {im["id"]: im for im in coco["images"]}
    for info in coco["images"]:
        file = str(info["file_name"])
        if image_counts[info["id"]] > 1:
            problems.append(Problem("duplicate_image_id", file, f"image id {info['id']} is used {image_counts[info['id']]} times", info["id"]))
        for kind, detail in _check_image_file(data_dir / IMAGES_DIR / file, info):
            problems.append(Problem(kind, file, detail, info["id"]))
        for kind, detail in _check_capture(info.get("capture"), fractions):
            problems.append(Problem(kind, file, detail, info["id"]))

    ann_counts = Counter(a["id"] for a in coco["annotations"])
    for ann in coco["annotations"]:
        image = images.get(ann["image_id"])
        file = str(image["file_name"]) if image else "annotations.json"
        if image is None:
            problems.append(Problem("orphan_annotation", file, f"image id {ann['image_id']} does not exist", None, ann["id"]))
            continue
        if ann_counts[ann["id"]] > 1:
            problems.append(Problem("duplicate_annotation_id", file, f"annotation id {ann['id']} is used {ann_counts[ann['id']]} times", ann["image_id"], ann["id"]))
        name = category_names.get(ann["category_id"])
        if name not in known_names:
            problems.append(Problem("unknown_category", file, f"category id {ann['category_id']} ({name or 'undeclared'}) is not in the class list", ann["image_id"], ann["id"]))
        box_problem = check_box(ann["bbox"], image.get("width"), image.get("height"), min_box_size)
        if box_problem:
            problems.append(Problem(box_problem[0], file, box_problem[1], ann["image_id"], ann["id"]))
    return problems


def format_report(problems: list[Problem], limit_per_kind: int = 10) -> str:
    by_kind: dict[str, list[Problem]] = {}
    for p in problems:
        by_kind.setdefault(p.kind, []).append(p)
    lines = [f"{len(problems)} dataset problem(s):"]
    for kind, items in sorted(by_kind.items()):
        lines.append(f"  {kind} ({len(items)}): {PROBLEM_KINDS[kind]}")
        for p in items[:limit_per_kind]:
            where = p.file if p.line is None else f"{p.file}:{p.line}"
            lines.append(f"    {where}: {p.detail}{_ids(p)}")
        if len(items) > limit_per_kind:
            lines.append(f"    ... and {len(items) - limit_per_kind} more (see the JSON report)")
    return "\n".join(lines)


def _ids(problem: Problem) -> str:
    """' (image id 3, annotation id 9)': where to find a COCO entry in its JSON file, which a file name alone does not say.

    Under a line number (a YOLO label line, a Label Studio task's position) the image id is left out: the line
    locates the item, and a Label Studio problem's image id is its task, which its detail names already.
    """
    ids = [f"image id {problem.image_id}"] if problem.image_id is not None and problem.line is None else []
    if problem.annotation_id is not None:
        ids.append(f"annotation id {problem.annotation_id}")
    # "image id 3 is used 2 times" names it already; ids may be strings, so matched literally, not as a pattern
    ids = [named for named in ids if not re.search(rf"(?<![\w.]){re.escape(named)}(?![\w.])", problem.detail)]
    return f" ({', '.join(ids)})" if ids else ""
