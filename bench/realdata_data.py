"""TrashNet++ as `make bench-realdata` sees it: the recipe's dataset and splits, plus a YOLO view for Ultralytics.

The data takes the road a data scientist's takes with `make run
RECIPE=trashnetpp`, through the same code:

1. `binsight import yolo` (pipeline/importers) with the recipe's class list
   and class map, into <out>/data: polygons become boxes, problems are
   reported (<out>/import_report.json), duplicates are imported once;
2. the prepare stage (pipeline/prepare.py) with the recipe's parameters, into
   <out>/splits: the source's `valid` split is the test split, val is carved
   out of `train` by `prepare.seed`, invalid images are left out and reported
   (<out>/data_report.json).

So every contender trains, selects and is scored on exactly the images the
recipe would use. Ultralytics gets a view of those same splits: links to the
imported images and label files written from the same COCO boxes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import yaml

from pipeline.coco import IMAGES_DIR, load_coco, subset, write_json_atomic
from pipeline.config import Params, Taxonomy, load_params, load_taxonomy
from pipeline.importers import import_yolo, load_mapping
from pipeline.prepare import SPLITS, prepare

DEFAULT_SOURCE = Path("../shared/data/trashnetpp")
RECIPE = Path("configs/recipes/trashnetpp")


class SourceMissingError(SystemExit):
    pass


def recipe_params() -> Params:
    return load_params(RECIPE / "params.yaml")


def recipe_taxonomy() -> Taxonomy:
    return load_taxonomy(RECIPE / "classes.yaml")


def class_names() -> list[str]:
    return recipe_taxonomy().class_names


def data_dir(out: Path) -> Path:
    return out / "data"


def splits_dir(out: Path) -> Path:
    return out / "splits"


def yolo_dir(out: Path) -> Path:
    return out / "yolo"


def split_digest(out: Path) -> str:
    """SHA-256 of each split's photos by source path, the identity of a photo on any machine: a model trained
    on one machine records it, and scoring on another refuses a model whose digest differs from its own splits."""
    members = {split: [im["source"]["path"] for im in load_coco(splits_dir(out) / f"{split}.json")["images"]] for split in SPLITS}
    return hashlib.sha256(json.dumps(members, sort_keys=True).encode()).hexdigest()


def build_dataset(source: Path, out: Path, limit: int | None = None) -> dict:
    """Import and prepare as the recipe does; `limit` keeps the first K images of each split (smoke runs only).

    Returns the figures the benchmark report quotes.
    """
    if not (source / "data.yaml").is_file():
        raise SourceMissingError(
            f"TrashNet++ not found: {source / 'data.yaml'} missing. The benchmark reads the shared data set "
            f"(../shared/data/trashnetpp next to the checkout); pass --source to point at another copy."
        )
    taxonomy = recipe_taxonomy()
    for stale in (data_dir(out), splits_dir(out)):
        shutil.rmtree(stale, ignore_errors=True)  # a rerun must not merge into the last run's import
    imported = import_yolo(source, data_dir(out), taxonomy, load_mapping(RECIPE / "import.yaml"))
    write_json_atomic(out / "import_report.json", imported.as_dict())
    prepared = prepare(data_dir(out), splits_dir(out), out / "data_report.json", recipe_params().prepare, taxonomy)
    splits = {split: load_coco(splits_dir(out) / f"{split}.json") for split in SPLITS}
    if limit is not None:
        splits = {split: subset(coco, {im["id"] for im in coco["images"][:limit]}) for split, coco in splits.items()}
        for split, coco in splits.items():
            write_json_atomic(splits_dir(out) / f"{split}.json", coco)
    write_yolo_view(splits, data_dir(out), taxonomy.class_names, yolo_dir(out))
    return {
        "source": str(source),
        "import": {k: imported.as_dict()[k] for k in ("images_found", "images_added", "already_present", "boxes_added", "skipped")},
        "dropped_by_prepare": len(prepared["dropped_images"]),
        "split_rule": prepared["split_rule"],
        "limit": limit,
        "images": {split: len(coco["images"]) for split, coco in splits.items()},
        "images_without_boxes": {split: len(coco["images"]) - len({a["image_id"] for a in coco["annotations"]}) for split, coco in splits.items()},
        "boxes": {split: len(coco["annotations"]) for split, coco in splits.items()},
        "classes": taxonomy.class_names,
    }


def yolo_rows(image: dict, annotations: list[dict]) -> str:
    """The image's COCO boxes as YOLO rows (`class cx cy w h`, normalised; class = category id - 1)."""
    w, h = image["width"], image["height"]
    rows = []
    for a in annotations:
        x, y, bw, bh = a["bbox"]
        rows.append(f"{a['category_id'] - 1} {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}\n")
    return "".join(rows)


def write_yolo_view(splits: dict[str, dict], data: Path, names: list[str], out: Path) -> Path:
    """images/<split>/ (links to the imported images) and labels/<split>/ plus data.yaml; returns data.yaml.

    Category ids are the canonical 1..K of the class list (prepare wrote them
    so), hence YOLO class = id - 1 and `names` in the same order.
    """
    shutil.rmtree(out, ignore_errors=True)  # stale links or Ultralytics' label caches of another split
    for split, coco in splits.items():
        by_image: dict[int, list[dict]] = {}
        for a in coco["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
        for image in coco["images"]:
            # Unique and flat: the imported name may repeat across source splits (data/images/<split>/<name>).
            stem = f"{image['id']:06d}"
            source = (data / IMAGES_DIR / image["file_name"]).resolve()
            link = out / "images" / split / f"{stem}{source.suffix}"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
            label = out / "labels" / split / f"{stem}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(yolo_rows(image, by_image.get(image["id"], [])))
    data_yaml = out / "data.yaml"
    spec = {"path": str(out.resolve()), **{split: f"images/{split}" for split in splits}, "names": dict(enumerate(names))}
    data_yaml.write_text(yaml.safe_dump(spec, sort_keys=False))
    return data_yaml
