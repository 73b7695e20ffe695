"""The torch side of the canonical layout: a COCO split as (image, target) pairs.

The contract is torchvision's detection one: the image is a float tensor
[3, H, W] in 0..1, the target has `boxes` as float xyxy pixels [N, 4] and
`labels` as int64 1..K (0 is background); images without contaminants give
empty [0, 4] boxes, which the detectors treat as pure negatives.

For training, `EpochSampler` decides which samples each process sees in
which order, as a function of (seed, epoch) alone; `augment.SeededAugmentation`
then draws each sample's augmentation from (seed, epoch, index).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler

from pipeline.coco import IMAGES_DIR, load_coco
from pipeline.imageio import read_rgb  # noqa: F401 - re-exported: the stages import it from here


def xywh_to_xyxy(bbox: list[float]) -> list[float]:
    x, y, w, h = bbox
    return [x, y, x + w, y + h]


class CocoDetection(torch.utils.data.Dataset):
    def __init__(self, split_file: Path, data_dir: Path, transform: A.Compose | None = None):
        self.coco = load_coco(split_file)
        self.data_dir = data_dir
        self.transform = transform
        self.images: list[dict[str, Any]] = self.coco["images"]
        self.annotations: dict[int, list[dict[str, Any]]] = {im["id"]: [] for im in self.images}
        for ann in self.coco["annotations"]:
            self.annotations[ann["image_id"]].append(ann)

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> dict[str, Any]:
        """The photo and its boxes as stored (xyxy pixels) and labels, before any augmentation."""
        info = self.images[index]
        anns = self.annotations[info["id"]]
        return {
            "image": read_rgb(self.data_dir / IMAGES_DIR / info["file_name"]),
            "bboxes": np.array([xywh_to_xyxy(a["bbox"]) for a in anns], np.float32).reshape(-1, 4),
            "labels": [a["category_id"] for a in anns],
        }

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.sample(index, self.transform)

    def sample(self, index: int, transform: A.Compose | None, **extra: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Sample `index` through `transform`; `extra` goes to the transform too (e.g. A.Mosaic's partner photos)."""
        item = self.load(index)
        image, boxes, labels = item["image"], item["bboxes"], item["labels"]
        if transform is not None:
            out = transform(image=image, bboxes=boxes, labels=labels, **extra)
            image, boxes, labels = out["image"], out["bboxes"], out["labels"]
        target = {
            "boxes": torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4)),
            "labels": torch.as_tensor(np.asarray(labels, np.int64)),
            "image_id": torch.tensor(self.images[index]["id"]),
        }
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)
        return tensor, target


def collate(batch: list) -> tuple[list, list]:
    return tuple(zip(*batch))  # detectors take lists: images may differ in size


class EpochSampler(torch.utils.data.Sampler):
    """Each epoch's shuffle of the dataset, this process's share of it, as `(index, epoch)` keys.

    The order is torch's DistributedSampler's, a function of (seed, epoch)
    only; with several processes each takes every `world_size`-th index from
    `rank` (padding with repeats so that all take as many steps), so the
    processes see different samples. The epoch travels with the index so that
    the sample's augmentation can depend on it. Call `set_epoch` before each epoch.
    """

    def __init__(self, dataset: torch.utils.data.Dataset, seed: int, rank: int = 0, world_size: int = 1):
        self.order = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order.set_epoch(epoch)

    def __iter__(self):
        epoch = self.epoch  # bound now, not when the loader reads ahead
        return ((index, epoch) for index in self.order)

    def __len__(self) -> int:
        return len(self.order)
