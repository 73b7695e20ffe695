"""Helpers shared by the importer and command-line tests: tiny YOLO datasets and folder snapshots."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from PIL import Image

W, H = 64, 48
NAMES = ["Plastic Bag", "can", "glass"]  # source names; 'Plastic Bag' normalises to plastic_bag


def jpeg(path: Path, shade: int, size=(W, H)) -> Path:
    """A small JPEG whose content differs with `shade`, so no two test images share a hash by accident."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (shade % 256, (shade * 7) % 256, (shade * 13) % 256)).save(path, quality=90)
    return path


def yolo(root: Path, labels: dict[str, dict[str, str | None]], layout: str = "split_first", names=NAMES) -> Path:
    """A YOLO dataset: labels[split][stem] is the label file's text, or None for an image without a label file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(yaml.safe_dump({"names": names, "nc": len(names)}))
    shade = 0
    for split, files in labels.items():
        images, label_dir = (root / split / "images", root / split / "labels") if layout == "split_first" else (root / "images" / split, root / "labels" / split)
        label_dir.mkdir(parents=True, exist_ok=True)
        for stem, text in files.items():
            shade += 37
            jpeg(images / f"{stem}.jpg", shade)
            if text is not None:
                (label_dir / f"{stem}.txt").write_text(text)
    return root


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under folder with its content hash: 'exactly as it was' made checkable."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# Two boxes: a Plastic Bag in the middle, a glass in the top-left quarter.
GOOD = "0 0.5 0.5 0.5 0.5\n2 0.25 0.25 0.25 0.25\n"
