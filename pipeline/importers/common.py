"""What the importers share: class mapping, reading a source image, and one scanned source item.

An importer turns a source dataset into a `Scan`: the images it accepts
(`SourceItem`, boxes already in binsight class names and COCO pixels) and the
problems it found. pipeline/importers/merge.py then writes the accepted items
into data/ all at once.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import Taxonomy
from pipeline.validate import Problem, check_box, decode_size
from pipeline.yamlfile import YamlFileError, read_yaml

# Ultralytics' image formats that Pillow decodes; other files in an image folder are ignored.
IMAGE_SUFFIXES = frozenset({".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"})


def normalise(name: str) -> str:
    """'Medical Waste' -> 'medical_waste', 'E-waste' -> 'e_waste': how source names meet binsight names."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


class UnknownClass(KeyError):
    """A source class that maps to no binsight class."""


class ClassMapping:
    """Source class name -> binsight class name, or None to drop that class's boxes.

    Names listed in the mapping win; any other source name maps to the binsight
    class of the same normalised name. Both sides of the lookup are normalised,
    so a mapping may spell 'Medical Waste' or 'medical_waste'.
    """

    def __init__(self, taxonomy: Taxonomy, mapping: Mapping[str, str | None] | None = None, origin: str = "class map"):
        self.class_names = taxonomy.class_names
        by_normal = {normalise(n): n for n in self.class_names}
        self._targets: dict[str, str | None] = dict(by_normal)
        for source, target in (mapping or {}).items():
            if target is not None and target not in self.class_names:
                raise ValueError(
                    f"{origin}: {source!r} maps to {target!r}, which is not a class of the class list "
                    f"(classes: {', '.join(self.class_names)}; null drops the boxes)"
                )
            self._targets[normalise(source)] = target

    def target(self, source_name: str) -> str | None:
        """The binsight class, or None when the mapping drops it; UnknownClass when nothing matches."""
        key = normalise(source_name)
        if key not in self._targets:
            raise UnknownClass(source_name)
        return self._targets[key]


def read_json(path: Path, what: str) -> Any:
    """A source's JSON document; FileNotFoundError or ValueError naming the file (`what`: "COCO file", ...)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} not found") from None
    except IsADirectoryError:  # errno's "Is a directory" would not say which argument
        raise ValueError(f"{what} {path} is a folder, expected a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None


def check_map_keys(mapping: Mapping[str, str | None] | None, source_names: list[str], source: Path) -> None:
    """ValueError listing the map's keys that match no class of the source, before anything is read or written.

    Such a key is a typo (`Glas: null` for `Glass`) or a map meant for another dataset: ignoring it would import
    the boxes it was written to rename or drop. Compared normalised, as ClassMapping looks names up.
    """
    known = {normalise(name) for name in source_names}
    unknown = [key for key in (mapping or {}) if normalise(key) not in known]
    if unknown:
        names = list(dict.fromkeys(source_names))  # COCO files may declare a name twice
        shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
        raise ValueError(
            f"class map key(s) {', '.join(map(repr, unknown))} match no class of {source} (its classes: {shown}); "
            "correct the spelling or remove them: nothing was imported"
        )


def check_image_folder(images_dir: Path) -> None:
    if images_dir.is_file():
        raise ValueError(f"image folder {images_dir} is a file; give the folder the images lie in")
    if not images_dir.is_dir():
        raise FileNotFoundError(f"image folder {images_dir} not found")


def check_fraction(taxonomy: Taxonomy, fraction: str) -> None:
    if fraction not in taxonomy.fractions:
        raise ValueError(f"unknown waste fraction {fraction!r}; the class list knows {sorted(taxonomy.fractions)}")


def load_mapping(path: Path) -> dict[str, str | None]:
    """A class-mapping YAML file: `source name: binsight name` or `source name: null` (drop)."""
    try:
        data = read_yaml(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"class map {path} not found") from None
    except IsADirectoryError:
        raise ValueError(f"class map {path} is a folder, expected a YAML file") from None
    except YamlFileError as err:
        raise ValueError(f"class map {err}") from None
    if not isinstance(data, dict) or not all(v is None or isinstance(v, str) for v in data.values()):
        raise ValueError(f"class map {path} must map each source class name to a binsight class name or to null (drop)")
    return {str(k): v for k, v in data.items()}


@dataclass
class SourceItem:
    """One source image accepted for import."""

    path: Path  # the file, to copy unchanged
    rel: str  # its path relative to the source folder (posix), recorded as source.path
    name: str  # its file_name under data/images
    split: str | None  # the source's split folder, recorded as source.split
    sha256: str
    width: int  # upright (EXIF orientation applied)
    height: int
    boxes: list[tuple[str, list[float]]] = field(default_factory=list)  # (binsight class, COCO [x, y, w, h] pixels)
    dropped: Counter = field(default_factory=Counter)  # source class -> boxes dropped by the mapping
    capture: dict = field(default_factory=dict)  # capture metadata the source knows (bin_id, truck_id, ...), beside the fraction
    fraction: str | None = None  # the item's own waste fraction; None: the import's


@dataclass
class Scan:
    """What an importer found in its source, before anything is written."""

    format: str
    source: Path
    images_found: int = 0
    items: list[SourceItem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: int = 0  # source images and label files left out because of a problem


@dataclass(frozen=True)
class ImageFile:
    sha256: str
    width: int
    height: int


def read_image(path: Path, rel: str) -> ImageFile | Problem:
    """Hash and decode one source image; a Problem (empty, unreadable, truncated) if it is unusable."""
    data = path.read_bytes()
    if not data:
        return Problem("empty_image", rel, "the file is empty (0 bytes)")
    size = decode_size(io.BytesIO(data))
    if isinstance(size[0], str):
        return Problem(size[0], rel, size[1])
    return ImageFile(hashlib.sha256(data).hexdigest(), size[0], size[1])


def box_problem(bbox: list[float], width: int, height: int) -> tuple[str, str] | None:
    """validate.py's box check, with no minimum size: prepare.min_box_size is a training choice, applied by prepare."""
    return check_box(bbox, width, height, 0.0)


def clip_box(bbox: list[float], width: int, height: int) -> list[float]:
    """Pull a box that passed the check (within validate's border tolerance) inside the image."""
    x0, y0 = max(0.0, bbox[0]), max(0.0, bbox[1])
    x1, y1 = min(float(width), bbox[0] + bbox[2]), min(float(height), bbox[1] + bbox[3])
    return [round(x0, 3), round(y0, 3), round(x1 - x0, 3), round(y1 - y0, 3)]
