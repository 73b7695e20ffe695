"""The exported model on onnxruntime: loaded once, warmed up, shared by all requests.

Reads everything it needs (class names, thresholds, fraction policy, version)
from the model's card, so the service cannot pair a model with the wrong class
list. Imports no torch.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from pipeline.policy import FractionPolicy

MODEL_FILE = "model.onnx"
CARD_FILE = "model_card.json"


class ModelMissingError(RuntimeError):
    pass


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the uploaded image


class Detector:
    def __init__(self, model_dir: Path, threads: int = 0):
        model_path, card_path = model_dir / MODEL_FILE, model_dir / CARD_FILE
        if not model_path.is_file() or not card_path.is_file():
            raise ModelMissingError(
                f"no model in {model_dir}/ ({MODEL_FILE} and {CARD_FILE} are needed). "
                "Train and export one with `make run`, or set BINSIGHT_MODEL_DIR to a folder holding them."
            )
        self.card = json.loads(card_path.read_text())
        self.class_names: list[str] = self.card["class_names"]
        self.version: str = self.card["version"]
        self.policy = FractionPolicy.from_mapping(self.card["fractions"], self.card["thresholds"]["verdict"])
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self._warm = False
        # One inference at a time per session keeps each request's latency
        # predictable; the session itself spreads across intra-op threads.
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        side = int(self.card["input"]["min_size"])
        self.detect(np.zeros((side, side, 3), np.uint8))
        self._warm = True

    @property
    def ready(self) -> bool:
        return self._warm

    def detect(self, rgb: np.ndarray, scale: float = 1.0, min_score: float | None = None) -> list[Detection]:
        """Detections at or above min_score (default: the card's box threshold), boxes scaled by `scale`."""
        with self._lock:
            boxes, labels, scores = self.session.run(None, {self.input_name: np.ascontiguousarray(rgb)})
        threshold = self.card["thresholds"]["box_score"] if min_score is None else min_score
        return [
            Detection(self.class_names[int(label) - 1], float(score), tuple(float(v) * scale for v in box))
            for box, label, score in zip(boxes, labels, scores, strict=True)
            if score >= threshold
        ]
