"""Augmentation keeps boxes on their objects, whatever the preset does to the pixels."""

import numpy as np
import pytest

from pipeline import augment
from pipeline.config import AugmentConfig


def object_scene(rng):
    img = np.zeros((160, 200, 3), np.uint8)
    x0, y0 = int(rng.integers(10, 100)), int(rng.integers(10, 80))
    x1, y1 = x0 + int(rng.integers(20, 80)), y0 + int(rng.integers(20, 60))
    img[y0:y1, x0:x1] = (255, 255, 255)
    return img, [float(x0), float(y0), float(x1), float(y1)]


def box_of_bright_pixels(img):
    ys, xs = np.nonzero(img.max(axis=2) > 127)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize("seed", range(12))
def test_geometric_transforms_move_boxes_with_the_object(seed):
    rng = np.random.default_rng(seed)
    img, box = object_scene(rng)
    # Geometry only, so the object stays the sole bright region and can be found again.
    transform = augment.build("geometric_only", seed=seed)
    out = transform(image=img, bboxes=np.array([box], np.float32), labels=[3])
    assert out["labels"] == [3]
    np.testing.assert_allclose(out["bboxes"][0], box_of_bright_pixels(out["image"]), atol=1.0)


@pytest.mark.parametrize("seed", range(8))
def test_truck_camera_preset_keeps_boxes_inside_the_object_region(seed):
    rng = np.random.default_rng(seed)
    img, box = object_scene(rng)
    mask = np.zeros(img.shape[:2], np.uint8)
    x0, y0, x1, y1 = (int(v) for v in box)
    mask[y0:y1, x0:x1] = 1
    transform = augment.build("truck_camera", degradation_probability=1.0, seed=seed)
    out = transform(image=img, mask=mask, bboxes=np.array([box], np.float32), labels=[1])
    if not out["labels"]:  # the object was moved out of frame: its box must go too
        assert out["mask"].sum() < 0.3 * mask.sum() + 1
        return
    ys, xs = np.nonzero(out["mask"])
    expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    # Rotation by a non-right angle grows the box around the rotated rectangle ('largest_box').
    bx0, by0, bx1, by1 = out["bboxes"][0]
    assert bx0 <= expected[0] + 1.5 and by0 <= expected[1] + 1.5 and bx1 >= expected[2] - 1.5 and by1 >= expected[3] - 1.5
    assert out["image"].shape in {img.shape, (img.shape[1], img.shape[0], 3)}  # RandomRotate90 swaps sides


def test_unknown_preset_fails_loudly():
    with pytest.raises(ValueError, match="unknown augmentation preset 'sunny'.*truck_camera"):
        augment.build("sunny")


def test_transforms_of_a_seeded_preset_draw_independently():
    # Compose(seed=s) would seed each transform's generator alike, so the two
    # flips (same probability) would always fire together.
    transform = augment.build("geometric_only", seed=0)
    transform.save_applied_params = True
    img = np.zeros((8, 12, 3), np.uint8)
    applied = [
        {name for name, _ in transform(image=img, bboxes=np.zeros((0, 4), np.float32), labels=[])["applied_transforms"]}
        for _ in range(100)
    ]
    assert any(names & {"HorizontalFlip", "VerticalFlip"} == {"HorizontalFlip"} for names in applied)
    assert any(names & {"HorizontalFlip", "VerticalFlip"} == {"VerticalFlip"} for names in applied)


def test_reseeding_with_the_same_key_repeats_the_augmentation():
    img, box = object_scene(np.random.default_rng(0))
    transform = augment.build("truck_camera", degradation_probability=1.0)
    outputs = []
    for key in [(1, 2, 3), (1, 2, 4), (1, 2, 3)]:
        augment.reseed(transform, *key)
        outputs.append(transform(image=img, bboxes=np.array([box], np.float32), labels=[1])["image"])
    assert np.array_equal(outputs[0], outputs[2]) and not np.array_equal(outputs[0], outputs[1])


def one_image_many_times(folder, count: int):
    """A COCO split whose `count` images are all the same file: any difference between samples is augmentation."""
    import json

    from PIL import Image

    (folder / "images").mkdir(parents=True)
    img, (x0, y0, x1, y1) = object_scene(np.random.default_rng(1))
    Image.fromarray(img).save(folder / "images" / "same.png")
    coco = {
        "images": [{"id": i, "file_name": "same.png", "width": img.shape[1], "height": img.shape[0]} for i in range(1, count + 1)],
        "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0], "area": 1.0, "iscrowd": 0}
                        for i in range(1, count + 1)],
        "categories": [{"id": 1, "name": "plastic_bag"}],
    }
    (folder / "split.json").write_text(json.dumps(coco))
    return folder / "split.json"


def augmented_epochs(split, data, num_workers: int, epochs=(1, 2)) -> dict[tuple[int, int], "torch.Tensor"]:
    import torch

    from pipeline.dataset import CocoDetection, EpochSampler, collate

    dataset = CocoDetection(split, data, augment.build("truck_camera", degradation_probability=1.0))
    sampler = EpochSampler(dataset, seed=5)
    loader = torch.utils.data.DataLoader(augment.SeededAugmentation(dataset, seed=5), batch_size=2, sampler=sampler,
                                         num_workers=num_workers, collate_fn=collate, persistent_workers=num_workers > 0)
    seen = {}
    for epoch in epochs:
        sampler.set_epoch(epoch)
        for images, targets in loader:
            for image, target in zip(images, targets, strict=True):
                seen[(epoch, int(target["image_id"]))] = image
    return seen


def test_workers_see_different_augmentations_and_the_worker_count_changes_nothing(tmp_path):
    import torch

    split = one_image_many_times(tmp_path, 6)
    with_workers = augmented_epochs(split, tmp_path, num_workers=2)
    assert len(with_workers) == 12
    # With Compose's generator copied into each worker, the two workers' first samples were identical.
    images = list(with_workers.values())
    assert all(not torch.equal(a, b) for i, a in enumerate(images) for b in images[i + 1 :])
    # A sample's augmentation depends on (seed, epoch, index) only: not on workers, nor on the run.
    for other in (augmented_epochs(split, tmp_path, num_workers=0), augmented_epochs(split, tmp_path, num_workers=2)):
        assert other.keys() == with_workers.keys()
        assert all(torch.equal(other[k], with_workers[k]) for k in with_workers)
    # ...nor on the epochs that came before (what resuming a training skips).
    resumed = augmented_epochs(split, tmp_path, num_workers=2, epochs=(2,))
    assert all(torch.equal(resumed[k], with_workers[k]) for k in resumed)


COLOURS = {1: (220, 30, 30), 2: (30, 220, 30), 3: (30, 30, 220), 4: (220, 220, 30)}


def four_coloured_photos(folder, size: int = 64):
    """Four photos, each one colour all over and one box of its own class around the whole of it:
    in a mosaic, every box must cover only its photo's colour."""
    import json

    from PIL import Image

    (folder / "images").mkdir(parents=True)
    images, annotations = [], []
    for k, colour in COLOURS.items():
        Image.fromarray(np.full((size, size, 3), colour, np.uint8)).save(folder / "images" / f"{k}.png")
        images.append({"id": k, "file_name": f"{k}.png", "width": size, "height": size})
        annotations.append({"id": k, "image_id": k, "category_id": k, "bbox": [0, 0, size, size], "area": 1.0, "iscrowd": 0})
    coco = {"images": images, "annotations": annotations, "categories": [{"id": k, "name": f"c{k}"} for k in COLOURS]}
    (folder / "split.json").write_text(json.dumps(coco))
    return folder / "split.json"


def mosaic_dataset(tmp_path, last_epoch: int = 3):
    from pipeline.dataset import CocoDetection

    split = four_coloured_photos(tmp_path)
    dataset = CocoDetection(split, tmp_path, augment.build("none"))
    cfg = AugmentConfig(preset="none", degradation_probability=0.0, mosaic_probability=1.0, mosaic_off_last_epochs=2)
    schedule = augment.mosaic_schedule(cfg, epochs=last_epoch + 2, image_size=64)
    return dataset, augment.SeededAugmentation(dataset, seed=3, mosaic=schedule)


def test_a_mosaic_shows_its_partners_photos_with_their_boxes_on_them(tmp_path):
    _, samples = mosaic_dataset(tmp_path)
    several_classes = 0
    for index in range(4):
        image, target = samples[(index, 1)]
        pixels = (image.permute(1, 2, 0).numpy() * 255).round()
        assert image.shape == (3, 64, 64)
        labels = target["labels"].tolist()
        assert labels and set(labels) <= set(COLOURS)
        several_classes += len(set(labels)) > 1
        for (x0, y0, x1, y1), label in zip(target["boxes"].round().int().tolist(), labels, strict=True):
            inside = pixels[y0:y1, x0:x1].reshape(-1, 3)
            assert inside.size and np.abs(inside - COLOURS[label]).max() <= 2, f"box of class {label} off its photo"
    assert several_classes >= 3  # the crop's centre lies in the grid's middle: most mosaics show several photos


def test_mosaics_repeat_for_a_key_differ_between_keys_and_stop_for_the_last_epochs(tmp_path):
    import torch

    dataset, samples = mosaic_dataset(tmp_path, last_epoch=3)
    first, again, other_epoch = samples[(0, 2)], samples[(0, 2)], samples[(0, 3)]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1]["boxes"], again[1]["boxes"])
    assert not torch.equal(first[0], other_epoch[0])
    # Epochs 4 and 5 are the last two: whole photos again, as the plain transform gives them.
    plain, target = samples[(0, 4)]
    assert torch.equal(plain, dataset[0][0]) and target["labels"].tolist() == [1]
    partners = samples.mosaic.partners(3, 2, 0, 4)
    assert sorted(partners) == [1, 2, 3] and partners == samples.mosaic.partners(3, 2, 0, 4)


def test_no_mosaic_leaves_the_pipeline_as_it_was():
    plain = augment.build("truck_camera", 0.5)
    with_zero = augment.build("truck_camera", 0.5, mosaic_probability=0.0)
    assert [type(t) for t in with_zero.transforms] == [type(t) for t in plain.transforms]
    never = AugmentConfig(preset="truck_camera", degradation_probability=0.5, mosaic_probability=0.0, mosaic_off_last_epochs=0)
    assert augment.mosaic_schedule(never, epochs=10, image_size=320) is None
    too_late = never.model_copy(update={"mosaic_probability": 1.0, "mosaic_off_last_epochs": 10})
    assert augment.mosaic_schedule(too_late, epochs=10, image_size=320) is None  # no mosaic epoch left
    with_mosaic = augment.build("truck_camera", 0.5, mosaic_probability=1.0, image_size=320)
    assert type(with_mosaic.transforms[0]).__name__ == "Mosaic"
    with pytest.raises(ValueError, match="image size"):
        augment.build("truck_camera", 0.5, mosaic_probability=1.0)
