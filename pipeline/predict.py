"""Running a torch detector over a dataset, and converting its output to COCO results."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.dataset import CocoDetection


@dataclass
class ImagePrediction:
    image_id: int
    boxes: np.ndarray  # [N, 4] xyxy pixels
    scores: np.ndarray  # [N]
    labels: np.ndarray  # [N] 1..K


@torch.inference_mode()
def predict(model: torch.nn.Module, dataset: CocoDetection, batch_size: int = 8) -> list[ImagePrediction]:
    model.eval()
    device = next(model.parameters()).device  # training validates on its GPU
    out: list[ImagePrediction] = []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        results = model([img.to(device) for img, _ in items])
        for (_, target), r in zip(items, results, strict=True):
            out.append(
                ImagePrediction(
                    int(target["image_id"]), r["boxes"].cpu().numpy(), r["scores"].cpu().numpy(), r["labels"].cpu().numpy()
                )
            )
    return out


def to_coco_results(predictions: list[ImagePrediction]) -> list[dict]:
    results = []
    for p in predictions:
        for (x0, y0, x1, y1), score, label in zip(p.boxes.tolist(), p.scores.tolist(), p.labels.tolist(), strict=True):
            results.append(
                {"image_id": p.image_id, "category_id": int(label), "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score}
            )
    return results
