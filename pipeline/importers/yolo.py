"""Import an Ultralytics YOLO dataset into the canonical dataset.

    import_yolo(source_dir, data_dir, taxonomy, mapping=None, fraction="biowaste", strict=False) -> ImportResult

`source_dir` holds data.yaml (`names` as a list or as {index: name}; `nc`, if
given, must agree) and either layout Ultralytics reads:

    <split>/images/...  + <split>/labels/...     (Roboflow exports)
    images/<split>/...  + labels/<split>/...     (Ultralytics' own datasets)

Splits are found from the folders, not from data.yaml's paths, which exports
often write relative to some other folder. Each image's label file is the
image path with `images` -> `labels` and the suffix -> `.txt`. A line is a box
`class cx cy w h` or a polygon `class x1 y1 x2 y2 x3 y3 ...` (its enclosing box,
as Ultralytics trains detectors on segmentation labels), normalised to the
upright image. An image without a label file, or with an empty one, has no
object: Ultralytics' background images; it is imported and counted.

An image lands in data/images as `<split>/<path under the split's images
folder>` (e.g. `train/train_0000.jpg`), so equal names in two splits never
collide; the split is also kept as `source.split` for the prepare stage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from pipeline.config import Taxonomy
from pipeline.importers.common import (
    IMAGE_SUFFIXES, ClassMapping, ImageFile, Scan, SourceItem, UnknownClass, box_problem, check_fraction, check_map_keys, clip_box,
    read_image,
)
from pipeline.importers.merge import import_scan
from pipeline.importers.result import ImportResult
from pipeline.validate import Problem
from pipeline.yamlfile import read_yaml

DATA_YAML = "data.yaml"
LABEL_FORMAT = "expected `class cx cy w h` or a polygon `class x1 y1 x2 y2 x3 y3 ...`"


def import_yolo(
    source_dir: Path | str,
    data_dir: Path | str,
    taxonomy: Taxonomy,
    mapping: Mapping[str, str | None] | None = None,
    fraction: str = "biowaste",
    strict: bool = False,
) -> ImportResult:
    """Import a YOLO dataset; `mapping`: source class name -> binsight class name, or None to drop its boxes."""
    source_dir = Path(source_dir)
    check_fraction(taxonomy, fraction)  # before a scan of thousands of images, not after
    if not source_dir.exists():
        raise FileNotFoundError(f"YOLO dataset {source_dir} not found")
    if source_dir.is_file() and source_dir.suffix in (".yaml", ".yml"):  # the data.yaml itself was given
        names_file, source_dir = source_dir, source_dir.parent
    elif source_dir.is_file():
        raise ValueError(f"YOLO dataset {source_dir} is a file; give the dataset's folder or its data.yaml")
    else:
        names_file = source_dir / DATA_YAML
    names = read_names(names_file)
    check_map_keys(mapping, list(names.values()), names_file)
    scan = scan_yolo(source_dir, names, ClassMapping(taxonomy, mapping))
    return import_scan(scan, Path(data_dir), taxonomy, fraction, strict)


def read_names(path: Path) -> dict[int, str]:
    """Class index -> name from a data.yaml."""
    try:
        data = read_yaml(path)  # YamlFileError (a ValueError) names the file and the spot
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: a YOLO dataset names its classes there") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise ValueError(f"{path} has no `names` (a list of class names, or index: name)")
    try:
        names = {int(k): str(v) for k, v in names.items()}
    except (TypeError, ValueError):
        raise ValueError(f"{path}: `names` keys must be class indices 0, 1, ...") from None
    if "nc" in data and data["nc"] != len(names):
        raise ValueError(f"{path}: nc is {data['nc']} but `names` lists {len(names)} classes")
    return names


def find_splits(root: Path) -> list[tuple[str | None, Path, Path]]:
    """(split, images folder, labels folder) for either Ultralytics layout."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    if (root / "images").is_dir():
        subfolders = sorted(d for d in (root / "images").iterdir() if d.is_dir())
        found = [(d.name, d, root / "labels" / d.name) for d in subfolders] or [(None, root / "images", root / "labels")]
    else:
        found = [(d.name, d / "images", d / "labels") for d in sorted(root.iterdir()) if (d / "images").is_dir()]
    if not found:
        raise ValueError(f"{root}: no YOLO layout found; expected <split>/images + <split>/labels, or images/<split> + labels/<split>")
    for _, images, labels in found:
        if not labels.is_dir():
            raise ValueError(f"{labels} not found: the labels of {images} belong there")
    return found


def scan_yolo(root: Path, names: dict[int, str], mapping: ClassMapping) -> Scan:
    scan = Scan("yolo", root)
    for split, images_dir, labels_dir in find_splits(root):
        images = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        labels = {p.relative_to(labels_dir).with_suffix("").as_posix(): p for p in labels_dir.rglob("*.txt")}
        labels.pop("classes", None)  # LabelImg's list of class names, not a label file
        scan.images_found += len(images)
        for image in images:
            under = image.relative_to(images_dir)
            label = labels.pop(under.with_suffix("").as_posix(), None)
            _scan_image(scan, root, image, label, f"{split}/{under.as_posix()}" if split else under.as_posix(), split, names, mapping)
        for label in labels.values():
            scan.problems.append(Problem("missing_image", label.relative_to(root).as_posix(), f"no image {label.stem}.* under {images_dir.relative_to(root)}"))
            scan.skipped += 1
    if not scan.images_found:
        raise ValueError(f"{root}: no images found ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return scan


def _scan_image(scan: Scan, root: Path, image: Path, label: Path | None, name: str, split: str | None,
                names: dict[int, str], mapping: ClassMapping) -> None:
    rel = image.relative_to(root).as_posix()
    read = read_image(image, rel)
    problems = [read] if isinstance(read, Problem) else []
    item = None
    if isinstance(read, ImageFile):
        item = SourceItem(image, rel, name, split, read.sha256, read.width, read.height)
    if label is not None:  # no label file: a background image
        problems += _read_labels(label, root, names, mapping, item)
    if problems:
        scan.problems += problems
        scan.skipped += 1
    elif item is not None:
        scan.items.append(item)


def _read_labels(label: Path, root: Path, names: dict[int, str], mapping: ClassMapping, item: SourceItem | None) -> list[Problem]:
    """Fill item.boxes from a label file (geometry checked only when the image decoded); the problems found."""
    rel = label.relative_to(root).as_posix()
    try:
        text = label.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return [Problem("malformed_label", rel, "not a UTF-8 text file")]
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            problems.append(Problem("malformed_label", rel, f"{line.strip()!r} is not numbers; {LABEL_FORMAT}", line=number))
            continue
        if len(values) != 5 and (len(values) < 7 or len(values) % 2 == 0):
            problems.append(Problem("malformed_label", rel, f"{len(values)} numbers; {LABEL_FORMAT}", line=number))
            continue
        index = values[0]
        if not index.is_integer() or int(index) not in names:
            problems.append(Problem("class_out_of_range", rel, f"class {line.split()[0]} is not an index of data.yaml's names (0..{max(names)})", line=number))
            continue
        source_name = names[int(index)]
        try:
            target = mapping.target(source_name)
        except UnknownClass:
            problems.append(Problem("unknown_category", rel, f"class {int(index)} ({source_name!r}) maps to no binsight class; map it with --map (to a class, or null to drop)", line=number))
            continue
        if item is None:
            continue
        bbox = _pixel_box(values[1:], item.width, item.height)
        found = box_problem(bbox, item.width, item.height)
        if not all(math.isfinite(v) for v in values):  # min()/max() of a polygon would hide a NaN
            found = ("degenerate_box", "a coordinate is not a finite number")
        if found:
            problems.append(Problem(found[0], rel, f"line {line.strip()!r}: {found[1]}", line=number))
        elif target is None:
            item.dropped[source_name] += 1
        else:
            item.boxes.append((target, clip_box(bbox, item.width, item.height)))
    return problems


def _pixel_box(coords: list[float], width: int, height: int) -> list[float]:
    """COCO [x, y, w, h] in pixels from normalised `cx cy w h` or polygon points."""
    if len(coords) == 4:
        cx, cy, w, h = coords
        return [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]
    xs, ys = coords[0::2], coords[1::2]
    return [min(xs) * width, min(ys) * height, (max(xs) - min(xs)) * width, (max(ys) - min(ys)) * height]
