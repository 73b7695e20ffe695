"""The canonical dataset layout: COCO JSON plus an image folder, with capture metadata.

    data/annotations.json   COCO: images, annotations, categories
    data/images/<file_name>

binsight extends each COCO image with a `capture` object (bin RFID, truck,
waste fraction, capture time, GPS) and an optional `degradations` list; other
COCO tools ignore both. Category ids run 1..K in configs/classes.yaml order and
annotation ids start at 1 (pycocotools treats id 0 as "no match",
cocodataset/cocoapi#332), so this is the one place ids are defined.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.atomic import write_bytes_atomic

ANNOTATIONS_FILE = "annotations.json"
IMAGES_DIR = "images"

CAPTURE_FIELDS = ("bin_id", "truck_id", "fraction", "captured_at")
"""Capture metadata every image must carry; `gps` ({lat, lon}) is optional."""


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
