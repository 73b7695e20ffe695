"""Model labels to class names: the one rule, used by the evaluation and the service.

Detectors number classes from 1 (`class_names[label - 1]`); 0 is the
background. Python's `class_names[0 - 1]` is the *last* class, so an
unguarded lookup silently turns "background" into a contaminant. torchvision's
FCOS scores a background column like any class and can return label 0 with a
low score, early in training especially, so label 0 does reach this code.
No torch: the service imports it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BACKGROUND = 0


class LabelError(ValueError):
    pass


def label_name(class_names: Sequence[str], label: int) -> str:
    """The class name of a foreground label 1..K; LabelError for background and unknown labels."""
    if label == BACKGROUND:
        raise LabelError("label 0 is the background, not a class")
    if not 1 <= label <= len(class_names):
        raise LabelError(f"label {label} is outside 1..{len(class_names)}: the model does not match its class list {list(class_names)}")
    return class_names[label - 1]


def foreground(labels: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """Boolean mask of the detections that name a class.

    Background detections (label 0) are dropped: they say "no object here".
    A label beyond the class list means the model and its class list do not
    belong together, which no filtering can repair: LabelError.
    """
    labels = np.asarray(labels)
    unknown = labels[(labels < BACKGROUND) | (labels > len(class_names))]
    if unknown.size:
        raise LabelError(
            f"label {int(unknown[0])} is outside 0..{len(class_names)}: the model does not match its class list {list(class_names)}"
        )
    return labels != BACKGROUND
