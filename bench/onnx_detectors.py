"""Every benchmarked ONNX model behind one interface: `predict(rgb uint8 HWC) -> Detections`.

The adapters hold each model's own pre- and post-processing, so the scoring
code cannot tell the models apart:
- binsight's model.onnx takes the decoded image and does resizing,
  normalisation and NMS in the graph (pipeline/export.py);
- an Ultralytics YOLO export takes a letterboxed float NCHW tensor in 0..1.
  YOLO11 returns raw predictions [1, 4 + nc, anchors] (cx, cy, w, h, class
  scores) that need NMS here; YOLO26's end-to-end head returns at most 300
  detections [1, 300, 6] (x1, y1, x2, y2, score, class) and needs none.
Nothing here imports Ultralytics (AGPL): the decoding is re-implemented from
the documented output formats and unit-tested in tests/test_bench_realdata.py.

All sessions run on the CPU with the same options (intra-op threads 2, one
inter-op thread), for accuracy and for timing alike.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import torch
from torchvision.ops import batched_nms

LETTERBOX_FILL = 114  # Ultralytics pads with grey 114
MAX_DETECTIONS = 100  # what COCO mAP counts per image


@dataclass
class Detections:
    boxes: np.ndarray  # float32 [N, 4] xyxy pixels of the input image
    labels: np.ndarray  # int64 [N] 1..K
    scores: np.ndarray  # float32 [N]


def cpu_session(path: Path, threads: int = 2, denormals_as_zero: bool = False) -> ort.InferenceSession:
    """`denormals_as_zero`: tiny floats computed as 0, as a timing of random weights needs (bench/onnx_latency.py)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if denormals_as_zero:
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxDetector:
    """One ONNX model: `feed` makes the session's input, `predict` the detections."""

    def __init__(self, path: Path, threads: int = 2):
        self.path = path
        self.session = cpu_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def feed(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def predict(self, rgb: np.ndarray) -> Detections:
        raise NotImplementedError


class BinsightOnnx(OnnxDetector):
    """pipeline/export.py's contract: uint8 HWC in; boxes, labels, scores out."""

    def feed(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        return {self.input_name: np.ascontiguousarray(rgb, dtype=np.uint8)}

    def predict(self, rgb: np.ndarray) -> Detections:
        boxes, labels, scores = self.session.run(["boxes", "labels", "scores"], self.feed(rgb))
        keep = np.argsort(-scores, kind="stable")[:MAX_DETECTIONS]
        return Detections(boxes[keep].astype(np.float32), labels[keep].astype(np.int64), scores[keep].astype(np.float32))


@dataclass(frozen=True)
class Letterbox:
    """Where the resized image sits in the square model input."""

    gain: float  # input pixels per image pixel
    pad_x: int  # left padding, input pixels
    pad_y: int  # top padding


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad to size x size, centred, as Ultralytics' LetterBox does."""
    h, w = rgb.shape[:2]
    gain = min(size / h, size / w)
    new_w, new_h = round(w * gain), round(h * gain)
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    # Ultralytics' rounding: an odd padding puts the extra pixel at the bottom/right.
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    resized = rgb if (new_w, new_h) == (w, h) else cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    padded = cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(LETTERBOX_FILL,) * 3)
    return padded, Letterbox(gain, left, top)


def unletterbox(boxes: np.ndarray, lb: Letterbox, height: int, width: int) -> np.ndarray:
    """Input-pixel xyxy boxes back to the original image, clipped to it."""
    out = boxes.astype(np.float32).copy()
    out[:, [0, 2]] = ((out[:, [0, 2]] - lb.pad_x) / lb.gain).clip(0, width)
    out[:, [1, 3]] = ((out[:, [1, 3]] - lb.pad_y) / lb.gain).clip(0, height)
    return out


def decode_raw(output: np.ndarray, conf: float, iou: float, max_det: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YOLO11-style [1, 4 + nc, anchors] to (xyxy, scores, 0-based classes) after per-class NMS.

    Every class scoring above `conf` at an anchor is a candidate (multi-label),
    as in Ultralytics' own validation, which is what its mAP figures use.
    """
    pred = output[0].T  # [anchors, 4 + nc]
    cx, cy, w, h = pred[:, 0], pred[:, 1], pred[:, 2], pred[:, 3]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    anchor, cls = np.nonzero(pred[:, 4:] > conf)
    boxes, scores = xyxy[anchor], pred[anchor, 4 + cls]
    keep = batched_nms(torch.from_numpy(boxes).float(), torch.from_numpy(scores).float(), torch.from_numpy(cls), iou)
    keep = keep[:max_det].numpy()  # batched_nms returns indices by decreasing score
    return boxes[keep].astype(np.float32), scores[keep].astype(np.float32), cls[keep].astype(np.int64)


def decode_end2end(output: np.ndarray, conf: float, max_det: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YOLO26-style [1, N, 6] (x1, y1, x2, y2, score, class), already free of duplicates."""
    pred = output[0]
    pred = pred[pred[:, 4] > conf]
    pred = pred[np.argsort(-pred[:, 4], kind="stable")][:max_det]
    return pred[:, :4].astype(np.float32), pred[:, 4].astype(np.float32), pred[:, 5].round().astype(np.int64)


class YoloOnnx(OnnxDetector):
    """An Ultralytics ONNX export (fixed square input), decoded without Ultralytics."""

    def __init__(self, path: Path, num_classes: int, conf: float = 0.001, iou: float = 0.7, threads: int = 2):
        super().__init__(path, threads)
        self.num_classes, self.conf, self.iou = num_classes, conf, iou
        shape = self.session.get_inputs()[0].shape  # [1, 3, size, size]
        self.size = int(shape[2])
        out = self.session.get_outputs()[0].shape
        if out[-1] == 6 and out[1] != 4 + num_classes:
            self.end2end = True
        elif out[1] == 4 + num_classes:
            self.end2end = False
        else:
            raise ValueError(f"{path}: output shape {out} is neither [1, {4 + num_classes}, anchors] nor [1, N, 6]")

    def _input(self, rgb: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        padded, lb = letterbox(rgb, self.size)
        return np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0, lb

    def feed(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        return {self.input_name: self._input(rgb)[0]}

    def predict(self, rgb: np.ndarray) -> Detections:
        tensor, lb = self._input(rgb)
        output = self.session.run(None, {self.input_name: tensor})[0]
        if self.end2end:
            boxes, scores, cls = decode_end2end(output, self.conf, MAX_DETECTIONS)
        else:
            boxes, scores, cls = decode_raw(output, self.conf, self.iou, MAX_DETECTIONS)
        return Detections(unletterbox(boxes, lb, *rgb.shape[:2]), cls + 1, scores)


def latencies(detectors: dict[str, OnnxDetector], rgb: np.ndarray, warmup: int, rounds: int, runs: int) -> dict[str, dict[str, float]]:
    """p50 per model of `session.run` alone (the headline figure) and of the whole `predict`.

    The models take turns, `runs` calls each per round, so that a burst of
    other work on the machine slows them all alike instead of one of them.
    """
    feeds = {name: d.feed(rgb) for name, d in detectors.items()}
    for name, d in detectors.items():
        for _ in range(warmup):
            d.session.run(None, feeds[name])
            d.predict(rgb)
    run_s: dict[str, list[float]] = {name: [] for name in detectors}
    predict_s: dict[str, list[float]] = {name: [] for name in detectors}
    for _ in range(rounds):
        for name, d in detectors.items():
            for _ in range(runs):
                start = time.perf_counter()
                d.session.run(None, feeds[name])
                run_s[name].append(time.perf_counter() - start)
            for _ in range(runs):
                start = time.perf_counter()
                d.predict(rgb)
                predict_s[name].append(time.perf_counter() - start)
    return {
        name: {"session_run_p50_ms": statistics.median(run_s[name]) * 1000, "predict_p50_ms": statistics.median(predict_s[name]) * 1000}
        for name in detectors
    }
