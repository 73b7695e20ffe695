"""The trained detector as the service sees it: one photo in, detections out.

`load_trained` rebuilds the detector from `build/train/model.pt`;
`ImageInDetectionsOut` wraps it in the contract of `models/model.onnx`
(uint8 HWC RGB in; boxes, labels, scores out), which export turns into ONNX
and evaluation runs through the inspection path (`torch_detect_fn`), so that
what is measured is what is exported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.config import ModelConfig
from pipeline.inspection import DetectFn, Detection, to_detections
from pipeline.model import build_model


class ImageInDetectionsOut(torch.nn.Module):
    """uint8 HWC RGB in; boxes, labels, scores out: the contract of model.onnx, and what the evaluation runs."""

    def __init__(self, detector: torch.nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, image: torch.Tensor):
        x = image.permute(2, 0, 1).to(torch.float32) / 255.0
        out = self.detector([x])[0]
        return out["boxes"], out["labels"], out["scores"]


def load_trained(path: Path) -> tuple[torch.nn.Module, list[str], ModelConfig]:
    bundle = torch.load(path, map_location="cpu", weights_only=False)
    cfg = ModelConfig.model_validate(bundle["model_config"])
    # The trained weights are all in the bundle: the pretrained file need not exist here (another machine).
    # A pretrained backbone is rebuilt with the FrozenBatchNorm2d it trained with, so that evaluation and
    # export run the very modules of training (clearing backbone_weights would give trainable BatchNorm2d).
    model = build_model(cfg, len(bundle["class_names"]), load_weights=False)
    model.load_state_dict(bundle["state_dict"])
    return model.eval(), bundle["class_names"], cfg


def torch_detect_fn(module: ImageInDetectionsOut, class_names: list[str]) -> DetectFn:
    """The exported module as the inspection path's detector (the service passes ONNX Runtime instead)."""

    def detect(small: np.ndarray, scale: float) -> list[Detection]:
        with torch.inference_mode():
            # A writable copy: downscaled images are read-only views, which torch refuses.
            boxes, labels, scores = module(torch.from_numpy(np.array(small)))
        return to_detections(boxes.numpy(), labels.numpy(), scores.numpy(), class_names, scale)

    return detect
