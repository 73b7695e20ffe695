"""Import a COCO detection file (Label Studio, CVAT, Roboflow exports) into the canonical dataset.

    import_coco(json_path, images_dir, data_dir, taxonomy, mapping=None, fraction="biowaste",
                split=None, strict=False) -> ImportResult

Any id numbering is accepted (Label Studio numbers images, annotations and
categories from 0); the canonical dataset gets fresh ids, categories by name
through the class mapping. An image's `file_name` is looked up under
`images_dir`, then by its base name alone anywhere below `images_dir` if
only one file has it (exports often write `images/<name>` or an upload path). It lands in data/images under its path
relative to `images_dir`, prefixed by `split` when one is given (which is
also recorded as `source.split`). Boxes are `[x, y, w, h]` pixels of the
upright image; an image whose declared width/height differ from the file's
is skipped (`size_mismatch`): its boxes were drawn on another picture.
Images without annotations are background images.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.config import Taxonomy
from pipeline.importers.common import (
    ClassMapping, ImageFile, Scan, SourceItem, UnknownClass, box_problem, check_fraction, check_image_folder,
    check_map_keys, clip_box, read_image, read_json,
)
from pipeline.importers.merge import import_scan
from pipeline.importers.result import ImportResult
from pipeline.validate import DatasetFormatError, Problem, check_structure


def import_coco(
    json_path: Path | str,
    images_dir: Path | str,
    data_dir: Path | str,
    taxonomy: Taxonomy,
    mapping: Mapping[str, str | None] | None = None,
    fraction: str = "biowaste",
    split: str | None = None,
    strict: bool = False,
) -> ImportResult:
    """Import a COCO file; `mapping`: source category name -> binsight class name, or None to drop its boxes."""
    json_path, images_dir = Path(json_path), Path(images_dir)
    check_fraction(taxonomy, fraction)
    doc = read_coco(json_path)
    check_map_keys(mapping, [str(c["name"]) for c in doc["categories"]], json_path)
    check_image_folder(images_dir)
    scan = scan_coco(doc, json_path, images_dir, ClassMapping(taxonomy, mapping), split)
    return import_scan(scan, Path(data_dir), taxonomy, fraction, strict)


def read_coco(path: Path) -> dict[str, Any]:
    doc = read_json(path, "COCO file")
    try:
        check_structure(doc)
    except DatasetFormatError as err:
        raise ValueError(f"{path}: {err}") from None
    return doc


def scan_coco(doc: dict[str, Any], json_path: Path, images_dir: Path, mapping: ClassMapping, split: str | None) -> Scan:
    scan = Scan("coco", json_path)
    categories = {c["id"]: str(c["name"]) for c in doc["categories"]}
    id_counts = Counter(im["id"] for im in doc["images"])
    annotations: dict[Any, list[dict[str, Any]]] = {}
    for i, ann in enumerate(doc["annotations"]):
        if ann["image_id"] not in id_counts:
            scan.problems.append(Problem("orphan_annotation", json_path.name, f"annotations[{i}] (id {ann['id']}) refers to image id {ann['image_id']}, which does not exist", annotation_id=ann["id"]))
        annotations.setdefault(ann["image_id"], []).append(ann)
    scan.images_found = len(doc["images"])
    find = _Finder(images_dir)
    for info in doc["images"]:
        problems, item = _scan_image(info, id_counts[info["id"]], annotations.get(info["id"], []), images_dir, find, categories, mapping, split)
        if problems:
            scan.problems += problems
            scan.skipped += 1
        elif item is not None:
            scan.items.append(item)
    return scan


class _Finder:
    """The file an entry names, under images_dir only: by its path, else by its base name if that is unique."""

    def __init__(self, images_dir: Path):
        self.images_dir = images_dir
        self._by_name: dict[str, list[Path]] | None = None

    def __call__(self, file_name: str) -> Path | str:
        """The path, or why there is none."""
        path = PurePosixPath(str(file_name).replace("\\", "/"))
        relative = PurePosixPath(*[p for p in path.parts if p not in ("/", "..")])  # never outside images_dir
        if relative.parts and (self.images_dir / relative).is_file():
            return self.images_dir / relative
        if self._by_name is None:  # built once, on the first name that needs it
            self._by_name = {}
            for found in sorted(self.images_dir.rglob("*")):
                self._by_name.setdefault(found.name, []).append(found)
        matches = [m for m in self._by_name.get(path.name, []) if m.is_file()]
        if len(matches) > 1:
            return f"{len(matches)} files named {path.name} under {self.images_dir}; give the path in file_name"
        return matches[0] if matches else f"not found under {self.images_dir}"


def _scan_image(info: dict[str, Any], id_count: int, anns: list[dict[str, Any]], images_dir: Path, find: _Finder,
                categories: dict[Any, str], mapping: ClassMapping, split: str | None) -> tuple[list[Problem], SourceItem | None]:
    file_name = str(info["file_name"])
    if id_count > 1:
        return [Problem("duplicate_image_id", file_name, f"image id {info['id']} is used {id_count} times: its annotations are ambiguous", info["id"])], None
    path = find(file_name)
    if isinstance(path, str):
        return [Problem("missing_file", file_name, path, info["id"])], None
    rel = path.relative_to(images_dir).as_posix()
    read = read_image(path, rel)
    if isinstance(read, Problem):
        return [Problem(read.kind, rel, read.detail, info["id"])], None
    problems = []
    declared = (info.get("width"), info.get("height"))
    if declared != (None, None) and declared != (read.width, read.height):
        problems.append(Problem("size_mismatch", rel, f"the COCO file says {declared[0]}x{declared[1]}, the upright image is {read.width}x{read.height}", info["id"]))
    item = _item(path, rel, split, read)
    for ann in anns:
        name = categories.get(ann["category_id"])
        try:
            if name is None:
                raise UnknownClass(ann["category_id"])
            target = mapping.target(name)
        except UnknownClass:
            detail = f"category id {ann['category_id']} ({name or 'undeclared'}) maps to no binsight class; map it with --map (to a class, or null to drop)"
            problems.append(Problem("unknown_category", rel, detail, info["id"], ann["id"]))
            continue
        found = box_problem(ann["bbox"], read.width, read.height)
        if found:
            problems.append(Problem(found[0], rel, found[1], info["id"], ann["id"]))
        elif target is None:
            item.dropped[name] += 1
        else:
            item.boxes.append((target, clip_box([float(v) for v in ann["bbox"]], read.width, read.height)))
    return problems, item


def _item(path: Path, rel: str, split: str | None, read: ImageFile) -> SourceItem:
    name = f"{split}/{rel}" if split else rel
    return SourceItem(path, rel, name, split, read.sha256, read.width, read.height)
