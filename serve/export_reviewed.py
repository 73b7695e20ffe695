"""Reviewed inspections back into the canonical dataset: the loop from the review pages to `dvc repro`.

    binsight export-reviewed --out data

What the reviewers decided becomes training data. The boxes as the reviewer
left them (corrected classes, deleted, drawn and moved boxes) are the truth,
with one exception and two omissions:
- a `contaminated` verdict `rejected`: the model's contaminant boxes the
  reviewer left on screen are dropped (the reviewer said the finding was
  wrong, so what the model took for a contaminant is background there, which
  is what the next model must learn); boxes the reviewer drew stay;
- a `clean` verdict `rejected` (quality control caught a miss): the boxes as
  left, the drawn contaminant included;
- an `inconclusive` verdict `confirmed` (the gate was right: nothing can be
  judged) and anything `unusable`: left out, as are photos retention already
  deleted (counted).
An image with a box the class list does not know is left out whole (its
other objects would otherwise be taught as background) and reported.

Each image carries its capture metadata (fraction, bin, truck, time, GPS), so
the prepare stage keeps all photos of one bin in one split. Writing goes
through the importers' merge (pipeline/importers/merge.py): no image twice
(content hash), nothing overwritten, all or nothing.

Each photo about to be copied is entered in the image access log first
(actor kind `cli`, the operating-system user, `export`; serve/access_log.py):
a copy in a dataset folder is personal data handed on, and a household's
`gdpr export` must name it. If the log cannot be written, nothing is copied.
A photo the merge then finds already in the dataset stays logged: it was
read for the export.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from pipeline.config import Taxonomy
from pipeline.importers.common import Scan, SourceItem, box_problem, clip_box, read_image
from pipeline.importers.merge import import_scan
from pipeline.importers.result import ImportResult
from pipeline.validate import Problem
from serve import access_log
from serve.db import Inspection, as_utc

FORMAT = "binsight-review"
EXPORTED_STATES = ("confirmed", "rejected")


@dataclass(frozen=True)
class ExportOutcome:
    result: ImportResult
    unusable: int  # unusable, or inconclusive and confirmed so: nothing to learn
    image_gone: int  # reviewed, but retention had deleted the photo


def exported(inspection: Inspection) -> bool:
    """Whether a reviewed inspection teaches anything (module docstring)."""
    if inspection.review_state not in EXPORTED_STATES:
        return False
    return not (inspection.verdict == "inconclusive" and inspection.review_state == "confirmed")


def truth_boxes(inspection: Inspection, taxonomy: Taxonomy) -> list[dict]:
    """The boxes a reviewed inspection teaches (module docstring)."""
    boxes = inspection.reviewed_detections or []
    if inspection.verdict == "contaminated" and inspection.review_state == "rejected":
        contaminants = taxonomy.fractions.get(inspection.fraction, [])
        boxes = [b for b in boxes if b.get("origin") is None or b["label"] not in contaminants]
    return boxes


def capture_of(inspection: Inspection) -> dict:
    capture = {"bin_id": inspection.bin_id, "truck_id": inspection.truck_id, "captured_at": _iso(inspection.captured_at)}
    if inspection.latitude is not None and inspection.longitude is not None:
        capture["gps"] = {"lat": inspection.latitude, "lon": inspection.longitude}
    return capture


def inspection_id(item: SourceItem) -> str:
    """The inspection an item of the scan was read from (its `rel` is inspections/<id>)."""
    return item.rel.removeprefix("inspections/")


def _iso(value) -> str:
    return as_utc(value).isoformat()


def scan_reviewed(sessions: sessionmaker, image_dir: Path, taxonomy: Taxonomy) -> tuple[Scan, int, int]:
    """The reviewed inspections as an import scan; also how many were unusable and how many had lost their photo."""
    scan = Scan(format=FORMAT, source=Path("review"))
    unusable = gone = 0
    with sessions() as s:
        rows: Sequence[Inspection] = s.scalars(
            select(Inspection).where(Inspection.review_state.is_not(None)).order_by(Inspection.reviewed_at, Inspection.id)
        ).all()
    for row in rows:
        if not exported(row):
            unusable += 1
            continue
        path = image_dir / row.image_path if row.image_path else None
        if path is None or not path.is_file():
            gone += 1
            continue
        scan.images_found += 1
        rel = f"inspections/{row.id}"
        found = read_image(path, rel)
        if isinstance(found, Problem):
            scan.problems.append(found)
            scan.skipped += 1
            continue
        item = SourceItem(path=path, rel=rel, name=f"reviewed/{row.id}{path.suffix.lower()}", split=None, sha256=found.sha256,
                          width=found.width, height=found.height, capture=capture_of(row), fraction=row.fraction)  # fmt: skip
        problems = []
        for i, b in enumerate(truth_boxes(row, taxonomy)):
            x0, y0, x1, y1 = b["box"]
            bbox = [x0, y0, x1 - x0, y1 - y0]
            problem = box_problem(bbox, found.width, found.height)
            if b["label"] not in taxonomy.class_names:
                problem = ("unknown_category", f"box {i + 1}: class {b['label']!r} is not in the class list")
            if problem:
                problems.append(Problem(problem[0], rel, problem[1]))
                continue
            item.boxes.append((b["label"], clip_box(bbox, found.width, found.height)))
        if problems:  # the whole image out: its other objects would be taught as background
            scan.problems.extend(problems)
            scan.skipped += 1
            continue
        scan.items.append(item)
    return scan, unusable, gone


def export_reviewed(sessions: sessionmaker, image_dir: Path, data_dir: Path, taxonomy: Taxonomy, strict: bool = False,
                    exported_by: str | None = None) -> ExportOutcome:  # fmt: skip
    """Merge the reviewed photos into data_dir, logged as read by `exported_by` (default: the operating-system user) first."""
    scan, unusable, gone = scan_reviewed(sessions, image_dir, taxonomy)
    if not (strict and scan.problems):  # --strict with problems copies nothing (import_scan refuses it)
        access_log.record_accesses(sessions, actor_kind="cli", actor=exported_by or access_log.os_user(),
                                   opened=[(inspection_id(item), item.capture["bin_id"]) for item in scan.items], what="export")  # fmt: skip
    # The fraction passed here only stands in for items without one; every reviewed item has its own.
    fallback = next(iter(taxonomy.fractions))
    return ExportOutcome(import_scan(scan, data_dir, taxonomy, fallback, strict), unusable, gone)


def next_steps(data_dir: Path) -> str:
    return (
        f"next: `dvc add {data_dir}` to record the new dataset version, then `dvc repro` (or `make run`) to retrain;\n"
        f"      commit {data_dir}.dvc with the new dvc.lock so the model names the data it learnt from"
    )
