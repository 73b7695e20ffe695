"""One photo to one verdict: the path the service serves and the evaluation measures.

    inspect(rgb, fraction, detect, policy, gate, max_side) -> InspectionResult

1. the quality gate judges the upright photo (`quality_issue`);
2. the photo is downscaled to `max_side` (`downscale`), what the detector sees;
3. `detect(small, scale)` returns detections in the photo's own pixels;
4. the waste fraction's policy and the verdict threshold make it `clean` or
   `contaminated`, unless the gate set it aside: then `inconclusive`.

The service passes its ONNX Runtime detector as `detect`, the evaluation a
torch one: everything else is this code, with the numbers the model card
carries (`InspectionSpec`). Pure numpy, OpenCV and Pillow, no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image
from pydantic import ValidationError

from pipeline.config import QualityConfig, VerdictConfig
from pipeline.labels import foreground
from pipeline.policy import FractionPolicy

VerdictName = Literal["clean", "contaminated", "inconclusive"]
QUALITY_ISSUES = ("too_dark", "overexposed", "covered", "foggy", "blurred")

# The gate looks at a copy reduced by an integer factor to 160-319 px: the
# statistics need no exact size, and integer box reduction is OpenCV's fastest.
ANALYSIS_SIDE = 160
VEIL_PATCH = 15  # px of the analysis copy: larger than the dark details of a bin (cables, gaps, shadows)
DETAIL_WINDOW = 9  # px of the analysis copy: a few object edges wide

CARD_KEY = "inspection"


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the upright photo


DetectFn = Callable[[np.ndarray, float], list[Detection]]
"""(downscaled RGB uint8 [H, W, 3], factor back to the photo's pixels) -> detections in the photo's pixels."""


@dataclass(frozen=True)
class InspectionResult:
    verdict: VerdictName
    score: float
    """The highest contaminant score under the fraction's policy (0.0 when there is none)."""
    quality_issue: str | None
    detections: list[Detection]
    contaminant_indices: tuple[int, ...]
    """Indices into `detections` of the contaminants at or above the threshold."""


class CardError(ValueError):
    pass


@dataclass(frozen=True)
class InspectionSpec:
    """The numbers of the path besides the detector: the model card carries them from evaluation to service."""

    max_side: int
    gate: QualityConfig

    @classmethod
    def from_params(cls, verdict: VerdictConfig) -> "InspectionSpec":
        return cls(verdict.inference_max_side, verdict.quality)

    def to_card(self) -> dict[str, Any]:
        return {"max_side": self.max_side, "quality": self.gate.model_dump()}

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> "InspectionSpec":
        section = card.get(CARD_KEY)
        if not isinstance(section, dict):
            raise CardError(
                f"the model card has no '{CARD_KEY}' section (inference size and quality gate); "
                "it was exported by an older binsight: export the model again (`make run`)"
            )
        try:
            max_side = int(section["max_side"])
            gate = QualityConfig.model_validate(section["quality"])
        except (KeyError, TypeError, ValueError, ValidationError) as err:
            raise CardError(f"the model card's '{CARD_KEY}' section is invalid: {err}") from None
        return cls(max_side, gate)


def downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image with its longer side at most max_side, and the factor to map boxes back."""
    h, w = rgb.shape[:2]
    scale = max(h, w) / max_side
    if scale <= 1:
        return rgb, 1.0
    size = (max(1, round(w / scale)), max(1, round(h / scale)))
    small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
    return small, w / size[0]


def quality_issue(rgb: np.ndarray, gate: QualityConfig) -> str | None:
    """None when usable, else one of QUALITY_ISSUES.

    Night (too dark), sun into the bin (blown out), lens covered (no contrast
    at all), fog or steam (a bright veil over most of the view that flattens
    detail), motion or mud (no sharp edges). Cheap global statistics: this
    runs on every upload (under 1 ms at 640 px, 2-4 ms at 1920 px on one busy core).
    """
    # OpenCV rather than Pillow + numpy: its fused kernels take a third of the time.
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    factor = max(1, max(h, w) // ANALYSIS_SIDE)
    size = (w // factor, h // factor)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if factor > 1:
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    mean, std = (float(v[0, 0]) for v in cv2.meanStdDev(grey))
    if mean < gate.min_brightness:
        return "too_dark"
    if np.count_nonzero(grey >= 250) / grey.size > gate.max_saturated:
        return "overexposed"
    if std < gate.min_contrast:
        return "covered"
    # Variance of the Laplacian (4-neighbour kernel, inner pixels): edges make it large, blur flattens it.
    lum = grey.astype(np.float32)
    laplacian = cv2.Laplacian(lum, cv2.CV_32F, ksize=1)[1:-1, 1:-1]
    sharpness = float(cv2.meanStdDev(laplacian)[1][0, 0]) ** 2
    # Before the brightness limit: a veiled photo is bright *because* of the
    # veil, and "foggy" tells the crew to wait, not to mind the sun.
    if _foggy(rgb, size, lum, sharpness, gate):
        return "foggy"
    if mean > gate.max_brightness:
        return "overexposed"
    if sharpness < gate.min_sharpness:
        return "blurred"
    return None


def _foggy(rgb: np.ndarray, size: tuple[int, int], lum: np.ndarray, sharpness: float, gate: QualityConfig) -> bool:
    # Dark-channel prior (He, Sun and Tang, CVPR 2009): in a clear photo most
    # patches hold some pixel that is dark in at least one channel; fog and
    # steam add light everywhere, lifting that minimum. The median asks for
    # the veil over more than half of the view. Photos on white floors lift
    # it too, but keep hard dark-on-bright edges; a veil flattens them, hence
    # the second condition.
    # Sampled, not averaged, to the analysis size: a minimum needs no averaging,
    # and a colour area reduction would cost more than the rest of the gate.
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_NEAREST) if size != (rgb.shape[1], rgb.shape[0]) else rgb
    r, g, b = cv2.split(small)
    veil = cv2.erode(cv2.min(cv2.min(r, g), b), cv2.getStructuringElement(cv2.MORPH_RECT, (VEIL_PATCH, VEIL_PATCH)))
    if float(np.median(veil)) < gate.fog_min_veil:
        return False
    if sharpness <= gate.fog_max_sharpness:
        return True
    mean = cv2.blur(lum, (DETAIL_WINDOW, DETAIL_WINDOW))
    local_var = cv2.blur(lum * lum, (DETAIL_WINDOW, DETAIL_WINDOW)) - mean * mean
    detail = float(np.sqrt(max(float(np.percentile(local_var, 90)), 0.0)))  # sqrt is monotonic: percentile of the variance
    return detail <= gate.fog_max_detail


def to_detections(
    boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray, class_names: Sequence[str], scale: float = 1.0, min_score: float = 0.0
) -> list[Detection]:
    """A detector's raw output as named detections at or above min_score, boxes multiplied by `scale`.

    Background detections are dropped (pipeline/labels.py says why).
    """
    keep = (scores >= min_score) & foreground(labels, class_names)
    # Filtered and scaled in numpy, converted to Python numbers in one go: per-box
    # Python arithmetic on numpy scalars cost a tenth of a millisecond per image.
    return [
        Detection(class_names[label - 1], score, tuple(box))  # labels are 1..K here: foreground() checked them
        for box, label, score in zip(
            (boxes[keep].astype(np.float64) * scale).tolist(), labels[keep].tolist(), scores[keep].tolist(), strict=True
        )
    ]


def judge(fraction: str, detections: list[Detection], issue: str | None, policy: FractionPolicy) -> InspectionResult:
    """The verdict on one photo from its detections and the gate's finding."""
    judged = policy.judge(fraction, [d.label for d in detections], [d.score for d in detections])
    verdict: VerdictName = "inconclusive" if issue else ("contaminated" if judged.contaminated else "clean")
    return InspectionResult(verdict, judged.score, issue, detections, judged.contaminant_indices)


def inspect(
    rgb: np.ndarray, fraction: str, detect: DetectFn, policy: FractionPolicy, gate: QualityConfig, max_side: int
) -> InspectionResult:
    """The whole path for one upright RGB photo (module docstring)."""
    issue = quality_issue(rgb, gate)
    # Detections are kept for a set-aside photo too: a reviewer looking at an
    # inconclusive bin still sees what the model saw.
    small, scale = downscale(rgb, max_side)
    return judge(fraction, detect(small, scale), issue, policy)
