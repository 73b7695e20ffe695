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
    splits = assign_splits(coco["images"], labels, cfg)
    report["split_rule"] = splits.pop("rule")

    empty = [split for split in SPLITS if not splits[split]]
    if empty:
        # Training selects on val and evaluation scores test: an empty one would fail an epoch later, less clearly.
        raise SystemExit(f"the {' and '.join(empty)} split(s) would be empty ({len(coco['images'])} images in all); add images or change prepare's shares")
    report["splits"] = {}
    for split in SPLITS:
        part = subset(coco, splits[split])
        write_json_atomic(out_dir / f"{split}.json", part)
        per_class = {n: sum(1 for a in part["annotations"] if names[a["category_id"]] == n) for n in taxonomy.class_names}
        report["splits"][split] = {
            "images": len(part["images"]),
            "bins": len(set(bin_groups(part["images"]).values())),
            "clean_images": sum(1 for im in part["images"] if not labels[im["id"]]),
            "boxes_per_class": per_class,
        }
    write_json_atomic(report_path, report)
    return report


SOURCE_SPLIT_ROLES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
"""How the split names of imported datasets (YOLO folders, COCO files) map onto binsight's splits."""


def bin_groups(images: list[dict]) -> dict[int, str]:
    """The group of each image: its bin, so that all captures of a bin share a split.

    Imported third-party photos carry no bin RFID; each is its own group.
    """
    def group(im: dict) -> str:
        bin_id = im["capture"].get("bin_id")
        return f"image:{im['id']}" if bin_id is None or bin_id == "" else str(bin_id)

    return {im["id"]: group(im) for im in images}


def assign_splits(images: list[dict], labels: dict[int, list[str]], cfg: PrepareConfig) -> dict:
    """Image ids per split, and the rule that was applied (for the report).

    A dataset whose images all carry an imported `source.split` keeps it when
    `prepare.respect_source_splits` is on: the source's test split (or, lacking
    one, its validation split) becomes the held-out test split, which nobody
    trains or selects on, and the validation split for model selection is the
    source's own one when it has both, else carved out of its train split by
    `prepare.seed`. Otherwise bins are split by the configured shares.
    """
    groups = bin_groups(images)
    roles = {im["id"]: SOURCE_SPLIT_ROLES.get(str((im.get("source") or {}).get("split", "")).lower()) for im in images}
    unknown = sorted({str((im.get("source") or {}).get("split")) for im in images if roles[im["id"]] is None and (im.get("source") or {}).get("split")})
    if cfg.respect_source_splits and unknown:
        print(f"warning: source splits {unknown} are not train/val/valid/validation/test; splitting all images by shares", file=sys.stderr)
    elif cfg.respect_source_splits and None in roles.values() and any(roles.values()):
        print("warning: only some images carry a source split; splitting all images by shares", file=sys.stderr)
    if not cfg.respect_source_splits or not images or None in roles.values():
        shares = {"train": 1 - cfg.val_share - cfg.test_share, "val": cfg.val_share, "test": cfg.test_share}
        return {**group_split(groups, labels, shares, cfg.seed), "rule": "bins split by shares (prepare.val_share, prepare.test_share)"}
    by_role = {role: {i for i, r in roles.items() if r == role} for role in ("train", "val", "test")}
    if not by_role["train"]:
        raise SystemExit("the imported dataset has no train split; set prepare.respect_source_splits: false to split it by shares")
    if not by_role["test"]:
        # Train and valid only (the usual Roboflow/Ultralytics export): valid is the unseen test split.
        by_role["test"], by_role["val"] = by_role["val"], set()
    if by_role["val"]:
        return {**by_role, "rule": "source splits kept: train, val and test as imported"}
    if not by_role["test"]:
        raise SystemExit("the imported dataset has only a train split; set prepare.respect_source_splits: false to split it by shares")
    train_ids = by_role["train"]
    carved = group_split(
        {i: groups[i] for i in train_ids}, {i: labels[i] for i in train_ids},
        {"train": 1 - cfg.val_share, "val": cfg.val_share}, cfg.seed,
    )
    return {
        "train": carved["train"], "val": carved["val"], "test": by_role["test"],
        "rule": f"source splits kept: test = the source's held-out split; val = {cfg.val_share:.0%} of the source's train bins (seed {cfg.seed})",
    }


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
