"""The verdict threshold, chosen on the validation split for a target precision.

A false accusation (a household told its bin holds contaminants when it does
not) costs more than a miss, so the threshold is the one that reaches the
target precision with the most recall: the lowest threshold whose validation
precision is at least the target. Recall only falls as the threshold rises,
but precision need not rise with it, hence a search rather than a formula.
The test split never takes part; the evaluation reports precision and recall
on it at the chosen threshold. Pure Python and numpy.

A precision target needs clean bins to mean anything: where the share of
contaminated photos is already at the target (a dataset of waste photos with
hardly a clean bin, such as TrashNet++), flagging every bin "reaches" it, and
any threshold would pass. Such a split gives no basis, and the configured
threshold is used, said so, rather than the lowest score passed off as a
measured choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from pipeline.config import VerdictConfig
from pipeline.metrics import verdict_metrics


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    mode: str
    target_precision: float | None
    target_reached: bool | None
    """None where no target applies (fixed mode, or no basis to choose on)."""
    basis: str
    """How the threshold came about, in words (for metrics.json and the model card)."""

    def as_dict(self) -> dict:
        return asdict(self)


def lowest_threshold_for_precision(truth: Sequence[bool], scores: Sequence[float], target: float) -> tuple[float, bool] | None:
    """(threshold, target reached) over the distinct positive scores; None without any basis.

    A verdict is "contaminated" when score >= threshold. Where no threshold
    reaches the target, the one with the best precision (the lowest of
    equals, for recall) is returned with False. None when no image is truly
    contaminated or no image has a positive score: nothing to choose from.
    """
    t = np.asarray(truth, bool)
    s = np.asarray(scores, float)
    if t.shape != s.shape:
        raise ValueError(f"{t.size} truths for {s.size} scores")
    candidates = np.unique(s[s > 0])  # ascending
    if not t.any() or candidates.size == 0:
        return None
    best: tuple[float, float] | None = None  # (precision, threshold)
    for threshold in candidates.tolist():
        precision = verdict_metrics(t, s >= threshold)["precision"]
        if precision >= target:
            return threshold, True
        if best is None or precision > best[0]:
            best = (precision, threshold)
    return best[1], False


def without_clean_bins(truth: Sequence[bool], target: float) -> str | None:
    """Why the split cannot measure precision `target`, or None where it can: flagging every bin must fall short of it."""
    t = np.asarray(truth, bool)
    if t.size == 0 or not t.any():
        return None  # lowest_threshold_for_precision finds nothing to choose on and says so
    share = float(t.mean())
    if share < target:
        return None
    clean = int(t.size - t.sum())
    return (
        f"only {clean} of the {t.size} validation images with a verdict show a clean bin, so flagging every bin already "
        f"has precision {share:.3f} >= {target}: the split cannot tell a threshold that spares households from one that "
        "does not (add photos of clean bins)"
    )


def choose_threshold(cfg: VerdictConfig, truth: Sequence[bool], scores: Sequence[float]) -> ThresholdChoice:
    """The verdict threshold under `verdict.threshold_mode`, from validation truths and verdict scores."""
    if cfg.threshold_mode == "fixed":
        return ThresholdChoice(cfg.threshold, "fixed", None, None, "verdict.threshold as configured (threshold_mode: fixed)")
    if (no_basis := without_clean_bins(truth, cfg.target_precision)) is not None:
        return ThresholdChoice(cfg.threshold, "target_precision", cfg.target_precision, None, f"fallback to verdict.threshold: {no_basis}")
    found = lowest_threshold_for_precision(truth, scores, cfg.target_precision)
    if found is None:
        return ThresholdChoice(
            cfg.threshold, "target_precision", cfg.target_precision, None,
            "fallback to verdict.threshold: the validation split has no contaminated image or no contaminant detection to choose on",
        )
    threshold, reached = found
    basis = (
        f"lowest threshold with validation precision >= {cfg.target_precision}"
        if reached
        else f"no threshold reaches validation precision {cfg.target_precision}; the one with the best precision"
    )
    return ThresholdChoice(threshold, "target_precision", cfg.target_precision, reached, basis)
