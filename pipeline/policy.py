"""From detections to a per-bin verdict under a waste fraction's policy.

Shared by evaluation and the inference service, so the verdict that is
measured is the verdict that is served. Pure Python: no torch, no numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


class UnknownFractionError(ValueError):
    def __init__(self, fraction: str, known: Iterable[str]):
        super().__init__(f"unknown waste fraction {fraction!r}; known: {sorted(known)}")
        self.fraction = fraction


@dataclass(frozen=True)
class Verdict:
    contaminated: bool
    score: float
    """The highest score among contaminant detections (0.0 when there is none)."""
    contaminant_indices: tuple[int, ...]
    """Indices of the detections that are contaminants at or above the threshold."""


@dataclass(frozen=True)
class FractionPolicy:
    contaminants_by_fraction: Mapping[str, frozenset[str]]
    threshold: float

    @classmethod
    def from_mapping(cls, fractions: Mapping[str, Sequence[str]], threshold: float) -> "FractionPolicy":
        return cls({f: frozenset(names) for f, names in fractions.items()}, threshold)

    @property
    def fractions(self) -> list[str]:
        return sorted(self.contaminants_by_fraction)

    def contaminants(self, fraction: str) -> frozenset[str]:
        try:
            return self.contaminants_by_fraction[fraction]
        except KeyError:
            raise UnknownFractionError(fraction, self.contaminants_by_fraction) from None

    def judge(self, fraction: str, class_names: Sequence[str], scores: Sequence[float]) -> Verdict:
        """Verdict for one image given its detections' class names and scores."""
        contaminants = self.contaminants(fraction)
        flagged = tuple(
            i
            for i, (name, score) in enumerate(zip(class_names, scores, strict=True))
            if name in contaminants and score >= self.threshold
        )
        # The score is the best contaminant evidence below the threshold too, so
        # that a PR curve over verdicts can be drawn from it.
        best = max(
            (float(s) for n, s in zip(class_names, scores, strict=True) if n in contaminants), default=0.0
        )
        return Verdict(contaminated=bool(flagged), score=best, contaminant_indices=flagged)
