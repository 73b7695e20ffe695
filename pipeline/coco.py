"""The canonical dataset layout: COCO JSON plus an image folder, with capture metadata.

    data/annotations.json   COCO: images, annotations, categories
    data/images/<file_name>

binsight extends each COCO image with a `capture` object (bin RFID, truck,
waste fraction, capture time, GPS), an optional `degradations` list and, for
imported images, a `source` object (format, split, path, sha256; see
pipeline/importers); other COCO tools ignore them. Category ids run 1..K in
configs/classes.yaml order and annotation ids start at 1 (pycocotools treats id 0 as "no match",
cocodataset/cocoapi#332), so this is the one place ids are defined.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.atomic import write_bytes_atomic

ANNOTATIONS_FILE = "annotations.json"
IMAGES_DIR = "images"

CAPTURE_FIELDS = ("fraction",)
"""Capture metadata every image must carry. Truck captures also have `bin_id`,
`truck_id`, `captured_at` (ISO 8601) and `gps` ({lat, lon}); third-party
datasets have none of them, so they are optional and checked when present."""


def categories_for(class_names: list[str], groups: list[str] | None = None) -> list[dict[str, Any]]:
    groups = groups or ["" for _ in class_names]
    return [
        {"id": i, "name": name, "supercategory": group}
        for i, (name, group) in enumerate(zip(class_names, groups, strict=True), start=1)
    ]


def write_json_atomic(path: Path, payload: Any) -> None:
    write_bytes_atomic(path, (json.dumps(payload, indent=1) + "\n").encode("utf-8"))


def load_coco(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def subset(coco: dict[str, Any], image_ids: set[int]) -> dict[str, Any]:
    """The COCO document restricted to the given images and their annotations."""
    return {
        **{k: v for k, v in coco.items() if k not in ("images", "annotations")},
        "images": [im for im in coco["images"] if im["id"] in image_ids],
        "annotations": [a for a in coco["annotations"] if a["image_id"] in image_ids],
    }
