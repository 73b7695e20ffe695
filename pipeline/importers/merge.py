"""Writing scanned items into the canonical dataset, all or nothing.

Rules, whatever the source format:
- an image whose content (sha256) is already in data/ is not added again;
  within one source, identical images are a `duplicate_image` problem and the
  copy with the most boxes is kept (an unlabelled copy would teach the
  detector that the objects are background);
- a different image under a name data/images already holds refuses the whole
  import: nothing is ever overwritten;
- the new images are copied (bytes unchanged) into a staging folder next to
  data/, moved in and synced; annotations.json is replaced atomically
  last. Any failure before that removes what was moved, so data/ is exactly
  as it was. A crash between the two leaves only unreferenced image files,
  which a re-run adopts when their content matches.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.coco import ANNOTATIONS_FILE, IMAGES_DIR, categories_for, load_coco, write_json_atomic
from pipeline.config import Taxonomy
from pipeline.filehash import file_sha256
from pipeline.importers.common import Scan, SourceItem, check_fraction
from pipeline.importers.result import ImportRejected, ImportResult
from pipeline.validate import Problem, check_structure


class NameCollision(ValueError):
    """data/images already holds a different image under a name the import needs."""


def import_scan(scan: Scan, data_dir: Path, taxonomy: Taxonomy, fraction: str, strict: bool) -> ImportResult:
    """Merge a scan into data_dir; ImportRejected (strict and problems) or NameCollision leave data_dir untouched."""
    check_fraction(taxonomy, fraction)
    kept, duplicates = _unique(scan.items)
    problems = scan.problems + duplicates
    result = ImportResult(
        format=scan.format, source=str(scan.source), data_dir=str(data_dir), images_found=scan.images_found,
        skipped=scan.skipped + len(duplicates), problems=problems,
    )
    if strict and problems:
        raise ImportRejected(result)

    doc = _existing(data_dir, taxonomy)
    known = _hashes(doc, data_dir)
    new = [item for item in kept if item.sha256 not in known]
    result.already_present = len(kept) - len(new)
    adopted = _check_names(new, doc, data_dir)
    if new:  # nothing new: data/ is left byte for byte as it was
        _append(doc, new, scan.format, fraction)
        _write(data_dir, [item for item in new if item.name not in adopted], doc)

    per_class = Counter(name for item in new for name, _ in item.boxes)
    dropped = sum((item.dropped for item in new), Counter())
    result.images_added = len(new)
    result.background_images = sum(1 for item in new if not item.boxes)
    result.boxes_added = sum(per_class.values())
    result.boxes_per_class = {name: per_class[name] for name in taxonomy.class_names if per_class[name]}
    result.boxes_dropped = dict(sorted(dropped.items()))
    return result


def _unique(items: list[SourceItem]) -> tuple[list[SourceItem], list[Problem]]:
    by_hash: dict[str, list[SourceItem]] = {}
    for item in items:
        by_hash.setdefault(item.sha256, []).append(item)
    kept, problems = [], []
    for item in items:
        copies = by_hash[item.sha256]
        best = max(copies, key=lambda c: len(c.boxes))  # max() keeps the first of equals: source order decides ties
        if item is best:
            kept.append(item)
        else:
            problems.append(Problem("duplicate_image", item.rel, f"same content as {best.rel}; kept that copy ({len(best.boxes)} boxes, this one {len(item.boxes)})"))
    return kept, problems


def _existing(data_dir: Path, taxonomy: Taxonomy) -> dict[str, Any]:
    """data/annotations.json with its categories rewritten to the class list's ids 1..K (matched by name)."""
    categories = categories_for(taxonomy.class_names, [c.group for c in taxonomy.classes])
    path = data_dir / ANNOTATIONS_FILE
    if not path.is_file():
        return {"images": [], "annotations": [], "categories": categories}
    try:
        doc = load_coco(path)
        check_structure(doc)
    except ValueError as err:  # json.JSONDecodeError and DatasetFormatError are ValueErrors
        raise ValueError(f"{path}: {err}; fix it or import into another --data folder") from None
    names = {c["id"]: c["name"] for c in doc["categories"]}
    foreign = sorted(set(names.values()) - set(taxonomy.class_names))
    if foreign:
        raise ValueError(
            f"{path} has categories {foreign} that the class list lacks; import with the class list of that "
            "dataset (--classes) or into another --data folder"
        )
    canonical = {c["name"]: c["id"] for c in categories}
    annotations = [{**a, "category_id": canonical[names[a["category_id"]]]} if a["category_id"] in names else a for a in doc["annotations"]]
    return {**doc, "annotations": annotations, "categories": categories}


def _file_hash(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except FileNotFoundError:
        return None


def _hashes(doc: dict[str, Any], data_dir: Path) -> set[str]:
    """Content hashes of the images in data/: recorded by an earlier import, else read from disk."""
    hashes = set()
    for info in doc["images"]:
        recorded = (info.get("source") or {}).get("sha256")
        digest = recorded or _file_hash(data_dir / IMAGES_DIR / str(info["file_name"]))
        if digest:
            hashes.add(digest)
    return hashes


def _check_names(new: list[SourceItem], doc: dict[str, Any], data_dir: Path) -> set[str]:
    """Names of unreferenced files already in data/images with the right content; NameCollision for any other clash."""
    listed = {str(info["file_name"]) for info in doc["images"]}
    adopted, clashes = set(), []
    seen: dict[str, SourceItem] = {}
    for item in new:
        if item.name in seen:
            clashes.append(f"{item.rel} and {seen[item.name].rel} would both become {item.name}")
            continue
        seen[item.name] = item
        on_disk = data_dir / IMAGES_DIR / item.name
        if item.name in listed:
            clashes.append(f"{on_disk} already holds a different image than {item.rel}")
        elif on_disk.exists():
            if _file_hash(on_disk) != item.sha256:
                clashes.append(f"{on_disk} exists (not in {ANNOTATIONS_FILE}) and differs from {item.rel}")
            else:
                adopted.add(item.name)
    if clashes:
        more = f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else ""
        raise NameCollision(f"name collision, nothing was imported: {'; '.join(clashes[:5])}{more}")
    return adopted


def _append(doc: dict[str, Any], new: list[SourceItem], fmt: str, fraction: str) -> None:
    category_ids = {c["name"]: c["id"] for c in doc["categories"]}
    image_id = max((int(im["id"]) for im in doc["images"]), default=0) + 1
    ann_id = max((int(a["id"]) for a in doc["annotations"]), default=0) + 1  # from 1: pycocotools (see pipeline/coco.py)
    for item in new:
        source = {"format": fmt, "split": item.split, "path": item.rel, "sha256": item.sha256}
        doc["images"].append({
            "id": image_id, "file_name": item.name, "width": item.width, "height": item.height,
            "capture": {**item.capture, "fraction": item.fraction or fraction},
            "source": {k: v for k, v in source.items() if v is not None},
        })
        for name, bbox in item.boxes:
            doc["annotations"].append({
                "id": ann_id, "image_id": image_id, "category_id": category_ids[name],
                "bbox": bbox, "area": round(bbox[2] * bbox[3], 3), "iscrowd": 0,
            })
            ann_id += 1
        image_id += 1


def _stage(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as f:
        f.write(data)


def _write(data_dir: Path, new: list[SourceItem], doc: dict[str, Any]) -> None:
    images_dir = data_dir / IMAGES_DIR
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    # Next to data/, not inside it: a crash must not leave a stray folder for `dvc add data` to pick up,
    # and on the same file system the moves below are renames.
    staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}-import-", dir=data_dir.parent))
    moved: list[Path] = []
    made: list[Path] = []
    try:
        for item in new:
            data = item.path.read_bytes()
            if hashlib.sha256(data).hexdigest() != item.sha256:
                raise ValueError(f"{item.path} changed during the import; nothing was imported")
            _stage(staging / item.name, data)
        for item in new:
            dest = images_dir / item.name
            for parent in reversed(dest.relative_to(data_dir).parents):  # '.', 'images', 'images/train'
                folder = data_dir / parent
                if not folder.exists():
                    folder.mkdir()
                    made.append(folder)
            if dest.exists():  # appeared since the name check: never overwrite
                raise NameCollision(f"{dest} appeared during the import; nothing was imported")
            os.replace(staging / item.name, dest)
            moved.append(dest)
        # The images and their folder entries must be on disk before annotations.json names them. One
        # sync for all: an fsync per file costs a journal commit each (8 s of 17 for TrashNet++'s 2,340).
        os.sync()
        write_json_atomic(data_dir / ANNOTATIONS_FILE, doc)
    except BaseException:
        for dest in reversed(moved):
            dest.unlink(missing_ok=True)
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError:
                pass
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
