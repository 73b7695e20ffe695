"""DVC stage `prepare`: validate the dataset and split it into train/val/test.

    python -m pipeline.prepare --data data --out build/splits --report reports/data_report.json

Fails with a report of every problem (by file and kind) unless
`prepare.drop_invalid` is set, in which case the images concerned are left
out and still reported. Outputs COCO files per split whose category ids are
the canonical ones of configs/classes.yaml (mapped by name), so datasets
imported from tools that number categories differently train correctly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.coco import ANNOTATIONS_FILE, categories_for, subset, write_json_atomic
from pipeline.config import PrepareConfig, Taxonomy, add_config_arguments, load_params, load_taxonomy
from pipeline.split import group_split
from pipeline.validate import DatasetFormatError, Problem, format_report, validate

SPLITS = ("train", "val", "test")


def canonicalise(coco: dict, taxonomy: Taxonomy) -> dict:
    """Rewrite category ids to 1..K in class-list order, matching by name."""
    canonical = {name: i for i, name in enumerate(taxonomy.class_names, start=1)}
    remap = {c["id"]: canonical[c["name"]] for c in coco["categories"]}
    return {
        **coco,
        "annotations": [{**a, "category_id": remap[a["category_id"]]} for a in coco["annotations"]],
        "categories": categories_for(taxonomy.class_names, [c.group for c in taxonomy.classes]),
    }


def prepare(data_dir: Path, out_dir: Path, report_path: Path, cfg: PrepareConfig, taxonomy: Taxonomy) -> dict:
    try:
        with open(data_dir / ANNOTATIONS_FILE, encoding="utf-8") as f:
            coco = json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"dataset has no {data_dir / ANNOTATIONS_FILE}; run `make data` or import a dataset") from None
    except json.JSONDecodeError as err:
        raise SystemExit(f"{data_dir / ANNOTATIONS_FILE} is not valid JSON: {err}") from None
    try:
        problems = validate(coco, data_dir, taxonomy.class_names, set(taxonomy.fractions), cfg.min_box_size)
    except DatasetFormatError as err:
        raise SystemExit(f"{data_dir / ANNOTATIONS_FILE}: {err}") from None

    report: dict = {"problems": [p.as_dict() for p in problems], "dropped_images": []}
    if problems and not cfg.drop_invalid:
        write_json_atomic(report_path, report)
        raise SystemExit(format_report(problems) + f"\nfull report: {report_path}; set prepare.drop_invalid: true to leave these images out")
    if problems:
        print(format_report(problems), file=sys.stderr)
    bad_images = _condemned_images(problems)
    coco = {
        **coco,
        "images": [im for im in coco["images"] if im["id"] not in bad_images],
        "annotations": [a for a in coco["annotations"] if a["image_id"] not in bad_images],
        "categories": [c for c in coco["categories"] if c["name"] in taxonomy.class_names],
    }
    report["dropped_images"] = sorted(bad_images)
    if not coco["images"]:
        raise SystemExit("no valid image left in the dataset")
    coco = canonicalise(coco, taxonomy)

    names = {c["id"]: c["name"] for c in coco["categories"]}
    labels: dict[int, list[str]] = {im["id"]: [] for im in coco["images"]}
    for a in coco["annotations"]:
        labels[a["image_id"]].append(names[a["category_id"]])
    groups = {im["id"]: im["capture"]["bin_id"] for im in coco["images"]}
    shares = {"train": 1 - cfg.val_share - cfg.test_share, "val": cfg.val_share, "test": cfg.test_share}
    splits = group_split(groups, labels, shares, cfg.seed)

    report["splits"] = {}
    for split in SPLITS:
        part = subset(coco, splits[split])
        write_json_atomic(out_dir / f"{split}.json", part)
        per_class = {n: sum(1 for a in part["annotations"] if names[a["category_id"]] == n) for n in taxonomy.class_names}
        report["splits"][split] = {
            "images": len(part["images"]),
            "bins": len({im["capture"]["bin_id"] for im in part["images"]}),
            "clean_images": sum(1 for im in part["images"] if not labels[im["id"]]),
            "boxes_per_class": per_class,
        }
    write_json_atomic(report_path, report)
    return report


def _condemned_images(problems: list[Problem]) -> set[int]:
    return {p.image_id for p in problems if p.image_id is not None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="dataset folder (annotations.json + images/)")
    parser.add_argument("--out", type=Path, required=True, help="folder for train/val/test COCO files")
    parser.add_argument("--report", type=Path, required=True, help="JSON report of problems and split sizes")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    report = prepare(args.data, args.out, args.report, load_params(args.params).prepare, load_taxonomy(args.classes))
    for split, stats in report["splits"].items():
        print(f"{split:5s}: {stats['images']:4d} images from {stats['bins']:3d} bins, {stats['clean_images']} clean, boxes {stats['boxes_per_class']}")


if __name__ == "__main__":
    main()
