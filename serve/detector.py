"""The exported model on onnxruntime: loaded once, warmed up, shared by all requests.

Reads everything it needs (class names, thresholds, fraction policy, inference
size and quality gate, version) from the model's card (`pipeline.model_card.ModelCard`,
the definition export writes), so the service cannot pair a model with the
wrong class list, nor serve a verdict other than the one the evaluation
measured. A missing or invalid card stops it with a message naming the file
and the field. Imports no torch.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort

from pipeline.inspection import Detection, to_detections
from pipeline.model_card import CARD_FILE, ModelCard, ModelCardError, read_card
from pipeline.policy import FractionPolicy

__all__ = ["CARD_FILE", "MODEL_FILE", "Detection", "Detector", "ModelMissingError"]

MODEL_FILE = "model.onnx"


class ModelMissingError(RuntimeError):
    """No usable model: the files are missing, or the card is not a valid model card (the message names file and field)."""


def unmeasured_threshold_warning(card: ModelCard) -> str | None:
    """What the operator must know when the card's verdict threshold was chosen for a target precision that the
    evaluation could not reach or could not measure (too few clean bins): its verdicts accuse households on a
    threshold nobody checked. None when the target was reached, or the threshold is fixed by choice."""
    verdict = card.evaluation.verdict if card.evaluation is not None else {}
    if verdict.get("threshold_mode") != "target_precision" or verdict.get("target_reached") is True:
        return None
    return (
        f"model {card.version}: verdict threshold {card.thresholds.verdict:.3f} does not carry the target precision "
        f"{verdict.get('target_precision')}: {verdict.get('threshold_basis', 'no basis recorded')}. "
        "Reviewers confirming each flagged bin are then the only safeguard against a false accusation."
    )


class Detector:
    def __init__(self, model_dir: Path, threads: int = 0, workers: int = 0):
        model_path, card_path = model_dir / MODEL_FILE, model_dir / CARD_FILE
        if not model_path.is_file() or not card_path.is_file():
            raise ModelMissingError(
                f"no model in {model_dir}/ ({MODEL_FILE} and {CARD_FILE} are needed). "
                "Train and export one with `make run`, or set BINSIGHT_MODEL_DIR to a folder holding them."
            )
        self.model_path = model_path
        try:
            self.card: ModelCard = read_card(card_path)
        except ModelCardError as err:
            raise ModelMissingError(str(err)) from None
        self.class_names: list[str] = self.card.class_names
        self.version: str = self.card.version
        self.policy = FractionPolicy.from_mapping(self.card.fractions, self.card.thresholds.verdict)
        self.threshold_warning = unmeasured_threshold_warning(self.card)
        self.spec = self.card.inspection.to_spec()
        # Two ways to spend the cores. Alone, a request gets one session that
        # spreads each inference over all cores (lowest latency). Under load,
        # requests get single-threaded sessions side by side: no thread
        # hand-offs within an inference, so more images per second per core.
        self._latency_session = self._session(model_path, threads)
        self._latency_lock = threading.Lock()
        self._workers: queue.SimpleQueue[ort.InferenceSession] = queue.SimpleQueue()
        for _ in range(workers or os.cpu_count() or 1):
            self._workers.put(self._session(model_path, 1))
        self._in_flight = 0
        self._count_lock = threading.Lock()
        self.input_name = self._latency_session.get_inputs()[0].name
        self._warm = False

    @staticmethod
    def _session(model_path: Path, threads: int) -> ort.InferenceSession:
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])

    @property
    def session(self) -> ort.InferenceSession:
        """The all-cores session: what a single inference on this machine costs (benchmarks use it)."""
        return self._latency_session

    def _run(self, rgb: np.ndarray):
        feed = {self.input_name: np.ascontiguousarray(rgb)}
        with self._count_lock:
            alone = self._in_flight == 0
            self._in_flight += 1
        try:
            if alone and self._latency_lock.acquire(blocking=False):
                try:
                    return self._latency_session.run(None, feed)
                finally:
                    self._latency_lock.release()
            worker = self._workers.get()
            try:
                return worker.run(None, feed)
            finally:
                self._workers.put(worker)
        finally:
            with self._count_lock:
                self._in_flight -= 1

    def warm_up(self) -> None:
        side = self.card.input.min_size
        blank = np.zeros((side, side, 3), np.uint8)
        self._latency_session.run(None, {self.input_name: blank})
        workers = [self._workers.get() for _ in range(self._workers.qsize())]
        for worker in workers:
            worker.run(None, {self.input_name: blank})
            self._workers.put(worker)
        self._warm = True

    def close(self) -> None:
        """Release the onnxruntime sessions and their thread pools at shutdown (else only garbage collection frees them)."""
        self._warm = False
        self._latency_session = None
        while not self._workers.empty():
            self._workers.get_nowait()

    @property
    def ready(self) -> bool:
        return self._warm

    def detect(self, rgb: np.ndarray, scale: float = 1.0, min_score: float | None = None) -> list[Detection]:
        """Detections at or above min_score (default: the card's box threshold), boxes scaled by `scale`."""
        boxes, labels, scores = self._run(rgb)
        threshold = self.card.thresholds.box_score if min_score is None else min_score
        return to_detections(boxes, labels, scores, self.class_names, scale, threshold)
