"""Import a Label Studio JSON export into the canonical dataset.

    import_labelstudio(export_json, images_dir, data_dir, taxonomy, mapping=None, fraction="biowaste", strict=False) -> ImportResult

`export_json` is Label Studio's "JSON" export: a list of tasks, each with
`id`, `data` (the image URL under `data.image`, or under the one string value
of `data`) and `annotations` (each with `id`, `result`, `was_cancelled`,
`created_at`/`updated_at`). Per task:

- cancelled annotations (the labeller pressed Skip) are ignored; of the
  others the latest (`updated_at`, else `created_at`, then `id`) is the
  task's labels. A task with none left is an `unannotated_task` problem and
  skipped; a task whose accepted annotation has no region is a background
  image (no object), like an empty YOLO label file;
- a `rectanglelabels` region is a box: x, y, width, height in percent of the
  upright image become COCO pixels [x, y, w, h] of the image file found under
  `images_dir`. Its `original_width`/`original_height` must be that file's
  upright size (`size_mismatch` otherwise). A rotated rectangle is a
  `rotated_box` problem (COCO boxes are axis-aligned); a `polygonlabels`
  region becomes its enclosing box, as the YOLO importer does; brushes,
  keypoints and other regions that are not boxes are `unsupported_region`;
  classifications, text areas and relations are not regions and are ignored.

The image URL names a file under `images_dir`, found by the first of:

    /data/upload/<project>/<8 hex>-<name>   <project>/<8 hex>-<name>, <8 hex>-<name>, then <name>
                                            (a copy of Label Studio's media/upload folder, or the original files)
    /data/local-files/?d=<path>             <path> (images_dir is the local storage's document root), then its base name
    s3://bucket/key, http(s)://host/path    key or path, then its base name
    a plain path or file name               that path, then its base name

A problem is reported with the export file and the task's position in it
(`line`: 1 for the first task) and the task id (`image_id`); the annotation
id where one region is at fault. Merging, duplicates and all-or-nothing are
pipeline/importers/merge.py's, as for the YOLO and COCO importers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from pipeline.config import Taxonomy
from pipeline.importers.coco import _Finder
from pipeline.importers.common import (
    ClassMapping, Scan, SourceItem, UnknownClass, box_problem, check_fraction, check_image_folder, clip_box, read_image, read_json,
)
from pipeline.importers.merge import import_scan
from pipeline.importers.result import ImportResult
from pipeline.validate import Problem

FORMAT = "labelstudio"

BOX_TYPES = {"rectanglelabels", "polygonlabels"}
# Region types that mark objects but are not boxes; any other type (choices,
# textarea, rating, taxonomy, relation, ...) describes the task, not a region.
OTHER_REGION_TYPES = {"rectangle", "polygon", "brushlabels", "brush", "keypointlabels", "keypoint", "ellipselabels", "ellipse",
                      "magicwand", "bitmasklabels", "bitmask", "vectorlabels", "vector"}
UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio names an uploaded file <8 hex digits>-<original name>
ROTATION_TOLERANCE = 1e-3  # degrees


def import_labelstudio(
    export_json: Path | str,
    images_dir: Path | str,
    data_dir: Path | str,
    taxonomy: Taxonomy,
    mapping: Mapping[str, str | None] | None = None,
    fraction: str = "biowaste",
    strict: bool = False,
) -> ImportResult:
    """Import a Label Studio JSON export; `mapping`: Label Studio label -> binsight class name, or None to drop its boxes."""
    export_json, images_dir = Path(export_json), Path(images_dir)
    check_fraction(taxonomy, fraction)
    tasks = read_export(export_json)
    check_image_folder(images_dir)
    scan = scan_labelstudio(tasks, export_json, images_dir, ClassMapping(taxonomy, mapping))
    return import_scan(scan, Path(data_dir), taxonomy, fraction, strict)


def read_export(path: Path) -> list[dict[str, Any]]:
    """The tasks of a Label Studio JSON export; ValueError naming the file when it is not one."""
    doc = read_json(path, "Label Studio export")
    if isinstance(doc, dict) and "images" in doc and "annotations" in doc:
        raise ValueError(f"{path} is a COCO file, not Label Studio's JSON export: import it with `binsight import coco`")
    if not isinstance(doc, list):
        raise ValueError(f"{path} is not Label Studio's JSON export (a list of tasks); export the project as JSON")
    for i, task in enumerate(doc):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise ValueError(f"{path}: tasks[{i}] is not a Label Studio task (an object with 'data'); export the project as JSON, not JSON-MIN or CSV")
    return doc


def scan_labelstudio(tasks: list[dict[str, Any]], export_json: Path, images_dir: Path, mapping: ClassMapping) -> Scan:
    scan = Scan(FORMAT, export_json)
    scan.images_found = len(tasks)
    find = _Finder(images_dir)
    for position, task in enumerate(tasks, start=1):
        problems, item = _scan_task(task, position, export_json.name, images_dir, find, mapping)
        if problems:
            scan.problems += problems
            scan.skipped += 1
        elif item is not None:
            scan.items.append(item)
    return scan


def image_url(data: dict[str, Any]) -> str | None:
    """The task's image URL: data.image, else the one string value of data."""
    if isinstance(data.get("image"), str):
        return data["image"]
    strings = [v for v in data.values() if isinstance(v, str)]
    return strings[0] if len(strings) == 1 else None


def candidates(url: str) -> list[str]:
    """Paths under the image folder where the file a task URL names may lie, most specific first."""
    parsed = urlparse(url)
    if parsed.path.startswith("/data/") and "d" in parse_qs(parsed.query):  # /data/local-files/?d=<path>
        d = parse_qs(parsed.query)["d"][-1]  # as Label Studio reads it: decoded once, the last value wins
        return [d] if d else []
    path = unquote(parsed.path if parsed.scheme or url.startswith("/") else url)
    if parsed.scheme in ("s3", "gs", "azure-blob"):
        path = f"{parsed.netloc}{path}"  # the bucket too: a mirror of the bucket may hold it
    parts = PurePosixPath(path).parts
    if path.startswith("/data/upload/") and len(parts) >= 5:
        project, stored = parts[3], parts[-1]
        found = [f"{project}/{stored}", stored]
        original = UPLOAD_PREFIX.sub("", stored)
        return found + ([original] if original != stored else [])
    found = [str(PurePosixPath(*[p for p in parts if p not in ("/", "..")]))] if parts else []
    if parsed.scheme in ("s3", "gs", "azure-blob") and len(parts) > 1:
        found.append(str(PurePosixPath(*parts[1:])))  # the key without the bucket
    return found


def _find(find: _Finder, url: str) -> Path | str:
    reasons = []
    for candidate in candidates(url):
        found = find(candidate)
        if not isinstance(found, str):
            return found
        reasons.append(f"{PurePosixPath(candidate).name}: {found}")
    return "; ".join(reasons) or "the URL names no file"


def latest_annotation(annotations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest annotation not cancelled, or None."""
    accepted = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not accepted:
        return None

    def when(annotation: dict[str, Any]) -> tuple[float, float]:
        stamp = annotation.get("updated_at") or annotation.get("created_at")
        try:
            moment = datetime.fromisoformat(str(stamp)).timestamp() if stamp else float("-inf")
        except ValueError:
            moment = float("-inf")
        ident = annotation.get("id")
        return moment, float(ident) if isinstance(ident, int | float) else float("-inf")

    return max(accepted, key=when)


def _scan_task(task: dict[str, Any], position: int, file: str, images_dir: Path, find: _Finder,
               mapping: ClassMapping) -> tuple[list[Problem], SourceItem | None]:
    task_id = task.get("id")
    label = f"task {task_id}" if task_id is not None else f"task #{position}"

    def problem(kind: str, detail: str, annotation_id: Any = None) -> Problem:
        return Problem(kind, file, f"{label}: {detail}", task_id, annotation_id, position)

    url = image_url(task["data"])
    if url is None:
        return [problem("missing_file", f"no image URL in data (keys: {sorted(task['data'])}); the labeling config's Image reads $image")], None
    annotations = task.get("annotations") or []
    chosen = latest_annotation(annotations)
    if chosen is None:
        why = f"all {len(annotations)} annotation(s) were cancelled (skipped)" if annotations else "no annotation"
        return [problem("unannotated_task", f"{why}; {url}")], None
    path = _find(find, url)
    if isinstance(path, str):
        return [problem("missing_file", f"{url} not found under {images_dir}: {path}")], None
    rel = path.relative_to(images_dir).as_posix()
    read = read_image(path, rel)
    if isinstance(read, Problem):
        return [problem(read.kind, f"{rel}: {read.detail}")], None
    item = SourceItem(path, rel, rel, None, read.sha256, read.width, read.height)
    results = chosen.get("result") or []
    results = results if isinstance(results, list) else [results]
    declared = next(((r.get("original_width"), r.get("original_height")) for r in results
                     if isinstance(r, dict) and r.get("type") in BOX_TYPES and "original_width" in r), None)
    if declared is not None and declared != (read.width, read.height):
        return [problem("size_mismatch", f"{rel}: Label Studio labelled a {declared[0]}x{declared[1]} image, the file is "
                        f"{read.width}x{read.height} upright: not the image that was labelled", chosen.get("id"))], None
    problems = []
    for index, region in enumerate(results):
        found = _region(region, index, item, mapping)
        if found is not None:
            problems.append(problem(found[0], f"{rel}: result[{index}] (region {region_id(region)}): {found[1]}", chosen.get("id")))
    return problems, item


def region_id(region: Any) -> str:
    return str(region.get("id", "?")) if isinstance(region, dict) else "?"


def _region(region: Any, index: int, item: SourceItem, mapping: ClassMapping) -> tuple[str, str] | None:
    """Add one result entry's box to item.boxes; (kind, detail) of its problem, or None."""
    if not isinstance(region, dict):
        return "malformed_region", "not an object"
    kind = str(region.get("type", "")).lower()
    if kind in OTHER_REGION_TYPES:
        return "unsupported_region", f"a {kind} region is not a box; label boxes with RectangleLabels"
    if kind not in BOX_TYPES:
        return None  # describes the task (choices, text, ...), not an object
    value = region.get("value")
    if not isinstance(value, dict):
        return "malformed_region", "no value"
    labels = value.get(kind)
    if not isinstance(labels, list) or len(labels) != 1:
        return "malformed_region", f"{kind} is {labels!r}; a box needs exactly one label"
    if abs(_number(value.get("rotation", 0)) or 0.0) > ROTATION_TOLERANCE:
        return "rotated_box", f"rotated by {value.get('rotation')} degrees; redraw it unrotated"
    bbox = _pixel_box(kind, value, item.width, item.height)
    if bbox is None:
        return "malformed_region", "its coordinates are missing or not numbers"
    source_name = str(labels[0])
    try:
        target = mapping.target(source_name)
    except UnknownClass:
        return "unknown_category", f"label {source_name!r} maps to no binsight class; map it with --map (to a class, or null to drop)"
    found = box_problem(bbox, item.width, item.height)
    if found:
        return found
    if target is None:
        item.dropped[source_name] += 1
    else:
        item.boxes.append((target, clip_box(bbox, item.width, item.height)))
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _pixel_box(kind: str, value: dict[str, Any], width: int, height: int) -> list[float] | None:
    """COCO [x, y, w, h] in pixels from percent coordinates of the upright image."""
    if kind == "polygonlabels":
        points = value.get("points")
        if not isinstance(points, list) or len(points) < 3 or not all(isinstance(p, list) and len(p) == 2 for p in points):
            return None
        xs, ys = [_number(p[0]) for p in points], [_number(p[1]) for p in points]
        if None in xs or None in ys:
            return None
        x0, y0 = min(xs) * width / 100, min(ys) * height / 100
        return [x0, y0, max(xs) * width / 100 - x0, max(ys) * height / 100 - y0]
    coords = [_number(value.get(k)) for k in ("x", "y", "width", "height")]
    if None in coords:
        return None
    x, y, w, h = coords
    return [x * width / 100, y * height / 100, w * width / 100, h * height / 100]
