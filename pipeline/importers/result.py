"""What an import did, as numbers for the summary and a JSON report; and how a refused import fails."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pipeline.validate import Problem, format_report


@dataclass
class ImportResult:
    format: str  # "yolo" or "coco"
    source: str
    data_dir: str
    images_found: int
    images_added: int = 0
    already_present: int = 0  # same content as an image already in data/: not added again
    boxes_added: int = 0
    boxes_per_class: dict[str, int] = field(default_factory=dict)
    boxes_dropped: dict[str, int] = field(default_factory=dict)  # source class -> boxes the class map dropped
    background_images: int = 0  # images added without a box (no label file, an empty one, or every box dropped)
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "problems"}
        out["problems_by_kind"] = dict(sorted(Counter(p.kind for p in self.problems).items()))
        out["problems"] = [p.as_dict() for p in self.problems]
        return out

    def summary(self) -> str:
        lines = [
            f"{self.format} import of {self.source} into {self.data_dir}: {self.images_found} images found",
            f"  images added:             {self.images_added}",
            f"  already in the dataset:   {self.already_present} (same content, not added again)",
            f"  boxes added:              {self.boxes_added} {self.boxes_per_class or ''}".rstrip(),
            f"  background images:        {self.background_images} (added without a box: no object)",
            f"  items skipped (problems): {self.skipped}",
        ]
        if self.boxes_dropped:
            lines.append(f"  boxes dropped by the map: {self.boxes_dropped}")
        if self.problems:
            lines.append(format_report(self.problems))
        return "\n".join(lines)


class ImportRejected(ValueError):
    """--strict and the source has problems: nothing was written."""

    def __init__(self, result: ImportResult):
        self.result = result
        super().__init__(f"{len(result.problems)} problem(s) in {result.source}; --strict: nothing was imported")
