"""Generate the embedded default dataset: synthetic truck-camera captures of biowaste bins.

    python -m pipeline.synth.generate --out data

A demonstration and test set, not a substitute for real photos: it lets
`dvc repro` run end to end on a fresh machine with no data and no internet.
Deterministic: the same `synth` parameters give byte-identical files, which
keeps `data.dvc` stable across machines with the same pinned libraries.
"""

from __future__ import annotations

import argparse
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np

from pipeline.coco import ANNOTATIONS_FILE, IMAGES_DIR, categories_for, write_json_atomic
from pipeline.config import SynthConfig, Taxonomy, add_config_arguments, load_params, load_taxonomy
from pipeline.synth.degrade import degrade
from pipeline.synth.scene import ORGANIC_COLOURS, SPRITES, _blob_polygon, organic_background, paste, rotate_sprite

TRUCKS = ("HAM-EB-101", "HAM-EB-102", "HAM-EB-207", "HAM-EB-311")
CITY_CENTRE = (51.6739, 7.8159)  # Hamm, Westphalia
FIRST_COLLECTION = datetime(2026, 5, 4, 6, 0, tzinfo=timezone.utc)
MIN_VISIBLE_SHARE = 0.35  # an object more covered than this is restored, so every label is findable


def _bin_ids(rng: np.random.Generator, count: int) -> list[str]:
    # EPC-like 96-bit tag ids as bin RFID chips carry them.
    ids = {f"E200{rng.integers(0, 2**63):016X}{rng.integers(0, 2**15):04X}" for _ in range(count * 2)}
    return sorted(ids)[:count]


def render_capture(
    cfg: SynthConfig, class_names: list[str], seed: int, contaminated: bool
) -> tuple[np.ndarray, list[tuple[str, list[float]]], list[str]]:
    """One capture: the RGB uint8 image, its (class, [x, y, w, h]) boxes and degradations."""
    rng = np.random.default_rng(seed)
    size = cfg.image_size
    img = organic_background(rng, size)
    owner = np.zeros((size, size), np.int32)
    objects: list[str] = []
    centres: list[np.ndarray] = []
    if contaminated:
        drawable = [n for n in class_names if n in SPRITES]
        for _ in range(int(rng.integers(cfg.objects_per_image[0], cfg.objects_per_image[1] + 1))):
            name = drawable[int(rng.integers(0, len(drawable)))]
            length = max(8, int(rng.uniform(*cfg.scale) * size))
            sprite = rotate_sprite(SPRITES[name](rng, length), float(rng.uniform(0, 360)))
            side = sprite.alpha.shape[0]
            top_left = (int(rng.integers(-side // 4, size - 3 * side // 4)), int(rng.integers(-side // 4, size - 3 * side // 4)))
            objects.append(name)
            centres.append(np.array([top_left[1] + side / 2, top_left[0] + side / 2]))
            paste(img, owner, sprite, top_left, len(objects))
    full_area = {i: int((owner == i).sum()) for i in range(1, len(objects) + 1)}
    before_cover = img.copy(), owner.copy()
    _drop_organic_matter(rng, img, owner, size, cfg.occlusion_max, centres)
    boxes = []
    for i, name in enumerate(objects, start=1):
        if full_area[i] == 0:
            continue
        if (owner == i).sum() < max(MIN_VISIBLE_SHARE, 1 - cfg.occlusion_max) * full_area[i]:
            restore = before_cover[1] == i
            img[restore], owner[restore] = before_cover[0][restore], i
        ys, xs = np.nonzero(owner == i)
        if len(xs) < 16:
            continue
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        boxes.append((name, [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]))
    img, degradations = degrade(img, rng, cfg.degradation_probability)
    return img.round().clip(0, 255).astype(np.uint8), boxes, degradations


def _drop_organic_matter(
    rng: np.random.Generator, img: np.ndarray, owner: np.ndarray, size: int, amount: float, centres: list[np.ndarray]
) -> None:
    """Peel and leaves falling onto contaminants: partial occlusion, aimed at the objects."""
    if amount <= 0:
        return
    targets = [c for c in centres if rng.random() < 0.7] + [rng.uniform(0, size, 2) for _ in range(int(rng.integers(1, 4)))]
    for target in targets:
        colour = ORGANIC_COLOURS[rng.integers(0, len(ORGANIC_COLOURS))]
        offset = rng.normal(0, 0.06 * size, 2)
        poly = _blob_polygon(rng, rng.uniform(0.03, 0.07) * size, 7, 0.4) + target + offset
        mask = np.zeros_like(owner, dtype=np.uint8)
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
        img[mask == 1] = colour
        owner[mask == 1] = 0


def generate(cfg: SynthConfig, taxonomy: Taxonomy, out: Path) -> dict:
    """Write the dataset to `out` (replaced whole, never half-written) and return its COCO document."""
    rng = np.random.default_rng(cfg.seed)
    names = taxonomy.class_names
    category_id = {n: i for i, n in enumerate(names, start=1)}
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / IMAGES_DIR).mkdir(parents=True)
    images, annotations = [], []
    for bin_index, bin_id in enumerate(_bin_ids(rng, cfg.num_bins)):
        location = (CITY_CENTRE[0] + rng.uniform(-0.04, 0.04), CITY_CENTRE[1] + rng.uniform(-0.06, 0.06))
        truck = TRUCKS[bin_index % len(TRUCKS)]
        first = FIRST_COLLECTION + timedelta(days=int(rng.integers(0, 14)), minutes=int(rng.integers(0, 480)))
        for visit in range(int(rng.integers(cfg.captures_per_bin[0], cfg.captures_per_bin[1] + 1))):
            image_id = len(images) + 1
            seed = int(rng.integers(0, 2**31))
            contaminated = rng.random() >= cfg.clean_share
            pixels, boxes, degradations = render_capture(cfg, names, seed, contaminated)
            file_name = f"{image_id:05d}.jpg"
            quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
            assert ok, "OpenCV failed to encode a JPEG"
            (tmp / IMAGES_DIR / file_name).write_bytes(jpeg.tobytes())
            captured_at = first + timedelta(days=14 * visit, seconds=int(rng.integers(0, 600)))
            images.append(
                {
                    "id": image_id,
                    "file_name": file_name,
                    "width": cfg.image_size,
                    "height": cfg.image_size,
                    "capture": {
                        "bin_id": bin_id,
                        "truck_id": truck,
                        "fraction": "biowaste",
                        "captured_at": captured_at.isoformat(),
                        "gps": {"lat": round(location[0], 6), "lon": round(location[1], 6)},
                    },
                    "degradations": degradations,
                }
            )
            for name, (x, y, w, h) in boxes:
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": category_id[name],
                        "bbox": [x, y, w, h],
                        "area": w * h,
                        "iscrowd": 0,
                    }
                )
    coco = {
        "info": {"description": "binsight synthetic truck-camera captures", "version": str(cfg.seed)},
        "images": images,
        "annotations": annotations,
        "categories": categories_for(names, [c.group for c in taxonomy.classes]),
    }
    write_json_atomic(tmp / ANNOTATIONS_FILE, coco)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return coco


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data"), help="dataset folder to (re)write")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    coco = generate(load_params(args.params).synth, load_taxonomy(args.classes), args.out)
    print(f"wrote {len(coco['images'])} images, {len(coco['annotations'])} boxes to {args.out}/")


if __name__ == "__main__":
    main()
