"""Named albumentations presets for training and evaluation.

`truck_camera` adds, on top of geometric augmentation, the degradations a truck
camera suffers (motion blur, night, hard shadows, dust fog, mud and water on
the lens, JPEG), so the detector does not learn that contaminants are only
found in clean daylight pictures. Boxes are `pascal_voc` (x0, y0, x1, y1 pixels)
and go through every spatial transform with the image.

Randomness: `SeededAugmentation` draws each training sample's augmentation
from generators seeded with (seed, epoch, index) alone, so neither the
DataLoader worker that loads it nor a resumed training can change what the
sample looks like. Two traps of
albumentations 2.0.8 that it avoids: `Compose(seed=s)` gives every transform
its own generator seeded with the same `s`, so transforms with the same
probability fire together (HorizontalFlip and VerticalFlip always both or
neither), and the Compose's generators are copied into every DataLoader
worker, so different samples get identical augmentations (fixed upstream
only in the AlbumentationsX fork, albumentations-team/albumentations#2561).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import albumentations as A
import numpy as np
import torch

from pipeline.config import AugmentConfig
from pipeline.synth.degrade import dust

BBOX_PARAMS = A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=0.3, min_area=16, clip=True)


class DustHaze(A.ImageOnlyTransform):
    """Dust fog in the hopper, as the dataset generator draws it.

    Replaces albumentations' RandomFog, which costs ~270 ms per 320 px image
    (it draws hundreds of blurred circles) and made data loading, not the
    model, the bottleneck of CPU training; this costs ~1 ms.
    """

    def get_params(self) -> dict:
        return {"seed": int(self.random_generator.integers(0, 2**31))}

    def apply(self, img: np.ndarray, seed: int = 0, **params) -> np.ndarray:
        return dust(img.astype(np.float32), np.random.default_rng(seed)).clip(0, 255).astype(np.uint8)


def _camera_degradations(p: float) -> A.BasicTransform:
    return A.OneOf(
        [
            A.MotionBlur(blur_limit=(3, 11), p=1.0),
            A.RandomGamma(gamma_limit=(180, 320), p=1.0),  # night: gamma > 100 darkens
            A.RandomShadow(shadow_roi=(0, 0, 1, 1), num_shadows_limit=(1, 2), shadow_intensity_range=(0.4, 0.7), p=1.0),
            DustHaze(p=1.0),  # dust in the hopper
            A.Spatter(mode="mud", p=1.0),  # dirt on the lens
            A.Spatter(mode="rain", p=1.0),  # water drops on the lens
            A.RandomBrightnessContrast(brightness_limit=(0.2, 0.45), contrast_limit=(-0.3, 0.0), p=1.0),
        ],
        p=p,
    )


def truck_camera(degradation_probability: float) -> list[A.BasicTransform]:
    return [
        # The camera looks down into the bin: every orientation is plausible.
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomRotate90(p=0.5),
        A.Affine(scale=(0.8, 1.2), translate_percent=(-0.05, 0.05), rotate=(-20, 20), p=0.5),
        A.RandomBrightnessContrast(p=0.4),
        A.HueSaturationValue(hue_shift_limit=5, sat_shift_limit=15, val_shift_limit=10, p=0.3),
        _camera_degradations(degradation_probability),
        A.GaussNoise(std_range=(0.01, 0.05), p=0.2),
        A.ImageCompression(quality_range=(40, 95), p=0.3),
    ]


def geometric_only(degradation_probability: float) -> list[A.BasicTransform]:
    return [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5)]


def no_augmentation(degradation_probability: float) -> list[A.BasicTransform]:
    return []


PRESETS: dict[str, Callable[[float], list[A.BasicTransform]]] = {
    "truck_camera": truck_camera,
    "geometric_only": geometric_only,
    "none": no_augmentation,
}


def reseed(transform: A.Compose, *key: int) -> None:
    """Draw the next augmentations from generators seeded with `key` (e.g. seed, epoch, sample index).

    All transforms share one numpy and one Python generator, as they do
    unseeded, so their draws are independent of each other.
    """
    numpy_seed, python_seed = np.random.SeedSequence(key).spawn(2)
    transform.set_random_state(np.random.default_rng(numpy_seed), random.Random(int(python_seed.generate_state(1)[0])))


MOSAIC_KEY = "mosaic_metadata"  # where A.Mosaic looks for the partner photos
MOSAIC_PARTNERS = 3  # a 2 x 2 grid: the sample and three others
PARTNER_STREAM = 0x6D6F  # tells the partners' generator apart from the augmentation's, for the same key


def mosaic(image_size: int, probability: float) -> A.BasicTransform:
    """Four photos on a 2 x 2 grid of `image_size` cells, and an `image_size` crop of it around a random centre.

    YOLOv4's mosaic, as Ultralytics trains with it: each sample shows the
    objects of four photos, cut by other edges, next to other backgrounds, so
    a small dataset teaches more per step. The fill is the grey that
    Ultralytics pads with. A box cut by a cell's edge keeps its class however
    little of it shows (albumentations 2.0.8 clips the partners' boxes before
    the pipeline's `min_visibility` could compare them), down to the
    pipeline's `min_area` of 16 px; Ultralytics keeps cut boxes too, down to
    2 px.
    """
    size = (image_size, image_size)
    return A.Mosaic(grid_yx=(2, 2), target_size=size, cell_shape=size, metadata_key=MOSAIC_KEY, fill=114, p=probability)


@dataclass(frozen=True)
class MosaicSchedule:
    """Which epochs train on mosaics (1..`last_epoch`), and the transform that makes them (mosaic first)."""

    transform: A.Compose
    last_epoch: int

    def partners(self, seed: int, epoch: int, index: int, dataset_size: int) -> list[int]:
        """The three other samples of this sample's mosaic, a function of (seed, epoch, index) alone."""
        rng = np.random.default_rng(np.random.SeedSequence((seed, epoch, index, PARTNER_STREAM)))
        others = rng.choice(dataset_size - 1, size=min(MOSAIC_PARTNERS, dataset_size - 1), replace=False)
        return [int(i) + int(i >= index) for i in others]  # any sample but this one


class SeededAugmentation(torch.utils.data.Dataset):
    """A dataset's samples under `(index, epoch)` keys (as `dataset.EpochSampler` yields them),
    each augmented by the dataset's transform drawing from (seed, epoch, index).

    With a `MosaicSchedule`, samples of its epochs go through its transform
    instead, with three partner photos chosen from the same key.
    """

    def __init__(self, dataset, seed: int, mosaic: MosaicSchedule | None = None):
        if dataset.transform is None:
            raise ValueError("SeededAugmentation needs a dataset with a transform")
        self.dataset = dataset
        self.seed = seed
        self.mosaic = mosaic

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, epoch = key
        # Each DataLoader worker holds its own copy of the transform; reseeding it
        # here makes the copy, and the worker, irrelevant.
        if self.mosaic is not None and epoch <= self.mosaic.last_epoch and len(self.dataset) > 1:
            reseed(self.mosaic.transform, self.seed, epoch, index)
            partners = [self.dataset.load(i) for i in self.mosaic.partners(self.seed, epoch, index, len(self.dataset))]
            return self.dataset.sample(index, self.mosaic.transform, **{MOSAIC_KEY: partners})
        reseed(self.dataset.transform, self.seed, epoch, index)
        return self.dataset[index]


def build(preset: str, degradation_probability: float = 0.0, seed: int | None = None,
          mosaic_probability: float = 0.0, image_size: int | None = None) -> A.Compose:
    """The preset's Compose, after a mosaic when `mosaic_probability` > 0; with a seed its draws are
    reproducible (but see `reseed` for training)."""
    try:
        transforms = PRESETS[preset](degradation_probability)
    except KeyError:
        raise ValueError(f"unknown augmentation preset {preset!r}; known: {sorted(PRESETS)}") from None
    if mosaic_probability > 0:  # absent, not p=0: a transform draws for its p even at 0, shifting every later draw
        if image_size is None:
            raise ValueError("a mosaic needs the image size of its cells (the model's input size)")
        transforms = [mosaic(image_size, mosaic_probability), *transforms]
    # Not Compose(seed=...): it would seed every transform's generator alike (module docstring).
    transform = A.Compose(transforms, bbox_params=BBOX_PARAMS)
    if seed is not None:
        reseed(transform, seed)
    return transform


def mosaic_schedule(cfg: AugmentConfig, epochs: int, image_size: int) -> MosaicSchedule | None:
    """The training's mosaic epochs (all but the last `cfg.mosaic_off_last_epochs`), or None without mosaics."""
    last_epoch = epochs - cfg.mosaic_off_last_epochs
    if cfg.mosaic_probability <= 0 or last_epoch < 1:
        return None
    transform = build(cfg.preset, cfg.degradation_probability, mosaic_probability=cfg.mosaic_probability, image_size=image_size)
    return MosaicSchedule(transform, last_epoch)
