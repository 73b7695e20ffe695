"""TrashNet++ as `make bench-realdata` sees it: one split, a YOLO view for Ultralytics, COCO files for binsight.

The source's `valid` split is the test split: no contender trains or selects
a model on it. A validation split for model selection is carved out of
`train` by a fixed seed, so every contender trains on the same images,
selects on the same images and is scored on the same images. `make_splits`
is the one place that decides this, so that it can later give way to the
importer and the prepare stage.

Both views are built from the same parsed boxes (a polygon row becomes its
bounding box, as Ultralytics would make it; boxes under 1 px are dropped and
counted), and both link to the source images instead of copying them: the
shared data must never be copied into the repository or the build folder.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from pipeline.coco import categories_for
from pipeline.imageio import upright_size

DEFAULT_SOURCE = Path("../shared/data/trashnetpp")
RECIPE_CLASSES = Path("configs/recipes/trashnetpp/classes.yaml")
# TrashNet++'s data.yaml names (Cable, E-waste, Glass, Medical Waste, Metal,
# Plastics, can) as binsight class ids, in the same order (YOLO class 0 is label 1).
CLASS_NAMES = ("cable", "e_waste", "glass", "medical_waste", "metal", "plastics", "can")
SOURCE_SPLITS = ("train", "valid")
MIN_BOX_SIDE = 1.0  # pixels; narrower boxes are degenerate (torchvision's detectors refuse them)


class SourceMissingError(SystemExit):
    pass


@dataclass(frozen=True)
class Box:
    class_index: int  # 0-based, the YOLO class
    xyxy: tuple[float, float, float, float]  # pixels of the upright image


@dataclass
class Sample:
    image: Path  # the source image (absolute)
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)


def class_names() -> list[str]:
    """The recipe's class list when the project has one for TrashNet++, else the bench's own."""
    if RECIPE_CLASSES.is_file():
        from pipeline.config import load_taxonomy

        names = load_taxonomy(RECIPE_CLASSES).class_names
        if len(names) != len(CLASS_NAMES):
            raise SystemExit(f"{RECIPE_CLASSES} lists {len(names)} classes; TrashNet++ has {len(CLASS_NAMES)}")
        return names
    return list(CLASS_NAMES)


def parse_yolo_row(line: str, width: int, height: int) -> Box:
    """`class cx cy w h` (normalised) or `class x1 y1 x2 y2 ...` (a polygon) as a pixel box."""
    values = line.split()
    cls, coords = int(values[0]), np.asarray(values[1:], dtype=np.float64)
    if len(coords) == 4:
        cx, cy, w, h = coords
        x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    elif len(coords) >= 6 and len(coords) % 2 == 0:
        xs, ys = coords[0::2], coords[1::2]
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
    else:
        raise ValueError(f"not a YOLO box or polygon row: {line!r}")
    x0, x1 = (float(np.clip(v * width, 0, width)) for v in (x0, x1))
    y0, y1 = (float(np.clip(v * height, 0, height)) for v in (y0, y1))
    return Box(cls, (x0, y0, x1, y1))


def read_source(root: Path, num_classes: int) -> tuple[dict[str, list[Sample]], int]:
    """The source splits as samples, and how many degenerate boxes were dropped."""
    missing = [str(root / s / d) for s in SOURCE_SPLITS for d in ("images", "labels") if not (root / s / d).is_dir()]
    if missing:
        raise SourceMissingError(
            f"TrashNet++ not found: {', '.join(missing)} missing. The benchmark reads the shared data set "
            f"(../shared/data/trashnetpp next to the checkout); pass --source to point at another copy."
        )
    dropped = 0
    out: dict[str, list[Sample]] = {}
    for split in SOURCE_SPLITS:
        samples = []
        for image in sorted((root / split / "images").glob("*.jpg")):
            with Image.open(image) as im:
                width, height = upright_size(im)
            sample = Sample(image.resolve(), width, height)
            label = root / split / "labels" / f"{image.stem}.txt"
            for line in label.read_text().splitlines() if label.exists() else []:
                if not line.strip():
                    continue
                box = parse_yolo_row(line, width, height)
                if not 0 <= box.class_index < num_classes:
                    raise SystemExit(f"{label}: class {box.class_index} outside 0..{num_classes - 1}")
                x0, y0, x1, y1 = box.xyxy
                if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
                    dropped += 1
                    continue
                sample.boxes.append(box)
            samples.append(sample)
        if not samples:
            raise SourceMissingError(f"no images in {root / split / 'images'}")
        out[split] = samples
    return out, dropped


def make_splits(source: dict[str, list[Sample]], val_share: float, seed: int, limit: int | None = None) -> dict[str, list[Sample]]:
    """train / val carved from the source's train by `seed`; test = the source's valid.

    `limit` keeps the first K images of each split (smoke runs only).
    """
    order = np.random.default_rng(seed).permutation(len(source["train"]))
    n_val = round(val_share * len(order))
    shuffled = [source["train"][i] for i in order]
    splits = {"train": shuffled[n_val:], "val": shuffled[:n_val], "test": list(source["valid"])}
    if limit is not None:
        splits = {name: samples[:limit] for name, samples in splits.items()}
    return splits


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def write_yolo_view(splits: dict[str, list[Sample]], names: list[str], out: Path) -> Path:
    """images/<split>/ (links) and labels/<split>/ (normalised boxes) plus data.yaml; returns data.yaml."""
    shutil.rmtree(out, ignore_errors=True)  # stale links or Ultralytics' label caches of another split
    for split, samples in splits.items():
        for s in samples:
            _link(s.image, out / "images" / split / s.image.name)
            rows = []
            for b in s.boxes:
                x0, y0, x1, y1 = b.xyxy
                cx, cy, w, h = (x0 + x1) / 2 / s.width, (y0 + y1) / 2 / s.height, (x1 - x0) / s.width, (y1 - y0) / s.height
                rows.append(f"{b.class_index} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
            label = out / "labels" / split / f"{s.image.stem}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("".join(rows))
    data_yaml = out / "data.yaml"
    spec = {"path": str(out.resolve()), **{split: f"images/{split}" for split in splits}, "names": dict(enumerate(names))}
    data_yaml.write_text(yaml.safe_dump(spec, sort_keys=False))
    return data_yaml


def coco_document(samples: list[Sample], names: list[str]) -> dict:
    """COCO with category ids 1..K and image/annotation ids from 1 (pycocotools treats id 0 as no match)."""
    images, annotations = [], []
    for image_id, s in enumerate(samples, start=1):
        images.append({"id": image_id, "file_name": s.image.name, "width": s.width, "height": s.height})
        for b in s.boxes:
            x0, y0, x1, y1 = b.xyxy
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": b.class_index + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": annotations, "categories": categories_for(names)}


def write_coco_view(splits: dict[str, list[Sample]], names: list[str], out: Path) -> tuple[Path, Path]:
    """out/images/ (links) and out/splits/{train,val,test}.json; returns (splits dir, data dir)."""
    shutil.rmtree(out, ignore_errors=True)
    for samples in splits.values():
        for s in samples:
            _link(s.image, out / "images" / s.image.name)
    (out / "splits").mkdir(parents=True)
    for split, samples in splits.items():
        (out / "splits" / f"{split}.json").write_text(json.dumps(coco_document(samples, names)) + "\n")
    return out / "splits", out
