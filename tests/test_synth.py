import json

from pipeline.coco import ANNOTATIONS_FILE, CAPTURE_FIELDS, IMAGES_DIR
from pipeline.synth.generate import generate


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted((folder / IMAGES_DIR).iterdir())}


def test_same_seed_gives_identical_bytes(tmp_path, tiny_params, taxonomy, tiny_dataset):
    again = tmp_path / "again"
    generate(tiny_params[0].synth, taxonomy, again)
    assert _files(again) == _files(tiny_dataset)
    assert (again / ANNOTATIONS_FILE).read_bytes() == (tiny_dataset / ANNOTATIONS_FILE).read_bytes()


def test_another_seed_gives_other_images(tmp_path, tiny_params, taxonomy, tiny_dataset):
    cfg = tiny_params[0].synth.model_copy(update={"seed": tiny_params[0].synth.seed + 1})
    generate(cfg, taxonomy, tmp_path / "other")
    assert _files(tmp_path / "other") != _files(tiny_dataset)


def test_boxes_lie_inside_images_and_images_carry_capture_metadata(tiny_dataset, tiny_params):
    coco = json.loads((tiny_dataset / ANNOTATIONS_FILE).read_text())
    size = tiny_params[0].synth.image_size
    assert coco["annotations"], "a contaminated capture must hold boxes"
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        assert a["id"] >= 1 and w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= size and y + h <= size
    for im in coco["images"]:
        assert all(im["capture"][f] for f in CAPTURE_FIELDS)
        assert -90 <= im["capture"]["gps"]["lat"] <= 90
    bins = [im["capture"]["bin_id"] for im in coco["images"]]
    assert len(set(bins)) < len(bins), "bins are photographed repeatedly"
    with_boxes = {a["image_id"] for a in coco["annotations"]}
    assert len(with_boxes) < len(coco["images"]), "some bins are clean"


def test_box_encloses_the_drawn_object(tmp_path, tiny_params, taxonomy):
    """A clean, undegraded scene with one object: pixels differ from the background only inside its box."""
    from pipeline.synth.generate import render_capture

    cfg = tiny_params[0].synth.model_copy(update={"degradation_probability": 0.0, "objects_per_image": (1, 1), "occlusion_max": 0.0})
    import numpy as np

    img, boxes, degradations = render_capture(cfg, taxonomy.class_names, seed=5, contaminated=True)
    background, none, _ = render_capture(cfg, taxonomy.class_names, seed=5, contaminated=False)
    assert degradations == [] and none == [] and len(boxes) == 1
    diff = np.abs(img.astype(int) - background.astype(int)).max(axis=2) > 40
    ys, xs = np.nonzero(diff)
    x, y, w, h = boxes[0][1]
    assert xs.min() >= x - 1 and ys.min() >= y - 1 and xs.max() <= x + w and ys.max() <= y + h
