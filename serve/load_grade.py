"""A grade per truck load against the biowaste ordinance: an image-based indicator, not a lab analysis.

Since 1 May 2025 a load of biowaste delivered to a treatment plant may hold
at most 3 % foreign matter, of which at most 1 % plastics (BioAbfV; by mass).
The plant weighs and sorts a sample; binsight only sees the top of each bin
as it is tipped. From those photos it estimates, per load:

    foreign share  = sum over the load's photos of the area of its contaminant boxes
                     / sum over the load's photos of the visible waste area
    plastics share = the same with the contaminant boxes of plastic classes only

- a *load* is (truck, local day, tour): the tour the truck reports, or the
  whole day when it reports none (one tour per day is the common case). The
  day is the city's local day (Europe/Berlin by default, BINSIGHT_LOCAL_TIMEZONE),
  not UTC: a driver's shift and the plant's weighbridge ticket run on local
  time, and a 01:30 start on a summer Monday is 23:30 UTC on Sunday;
- a photo's contaminant area is the union of its contaminant boxes, clipped
  to the photo: overlapping boxes are counted once. The boxes are the
  reviewer's where a reviewer decided (confirmed or rejected; for a rejected
  `contaminated` verdict the model's contaminant boxes are dropped and only
  boxes the reviewer drew count, as in serve/export_reviewed.py), else the
  model's contaminant detections (the ones its verdict counted);
- the visible waste area is the photo's area times `visible_share` (the share
  of the frame showing the hopper, 1.0 when unknown): the hopper's area as the
  truck's mask draws it, not the waste measured in the photo. Without a mask
  it is the whole frame (truck, street and all), which makes the shares read
  low; blurred patches inside the hopper still count as waste;
- which classes are contaminants is the fraction's policy (the model card);
  which are plastic is serve/defaults/materials.yaml;
- inconclusive photos (and those a reviewer marked unusable) say nothing about
  the load: they are left out and counted, and a load of only those is
  `not graded`;
- the anonymous copies `gdpr delete` leaves (serve/gdpr.py) belong to no load:
  an erasure takes the household's photos out of its past loads' grades.

Why this is an indicator and not a measurement, and which way it errs:
- a box is a rectangle around an object: a crumpled bag, a bottle lying
  diagonally, a cable fill a fraction of their box, and the organic waste in
  the box's corners is counted as foreign matter. Box area OVERESTIMATES the
  area of the objects, often by a factor of 1.5 to 3;
- the limits are by mass, the estimate is by visible area: plastic film is
  light and spreads wide (its area share far exceeds its mass share, another
  overestimate), while glass and metal are dense (underestimated), and wet
  organic waste is heavy;
- a camera sees only the top layer: what lies buried is not seen at all (an
  underestimate no photo can correct), and a missed object counts as none.
So the figures are for comparing loads, tours and weeks and for choosing
where to look; a load graded `over limit` here is a reason to check, not a
finding of non-compliance, and one `within limits` is no proof of compliance.
Every place that shows a grade says so (INDICATOR_LABEL).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from pipeline.yamlfile import read_yaml
from serve.boxes_of_record import contaminant_boxes_of_record
from serve.db import ERASED, Inspection
from serve.statistics import StatsFilter
from serve.time_buckets import local_date

INDICATOR_LABEL = "image-based indicator, not a lab analysis"
PLASTIC = "plastic"
MATERIALS = ("plastic", "metal", "glass", "paper", "electronics", "hygiene", "other")
GRADES = ("within limits", "over limit", "not graded")
LOAD_COLUMNS = (
    Inspection.truck_id, Inspection.captured_at, Inspection.tour_id, Inspection.fraction, Inspection.verdict, Inspection.review_state,
    Inspection.detections, Inspection.reviewed_detections, Inspection.image_width, Inspection.image_height, Inspection.visible_share,
)  # fmt: skip


@dataclass(frozen=True)
class Limits:
    """The ordinance's limits, percent of the load (BINSIGHT_LOAD_LIMIT_FOREIGN_PCT, BINSIGHT_LOAD_LIMIT_PLASTICS_PCT)."""

    foreign_pct: float = 3.0
    plastics_pct: float = 1.0


def load_materials(path: Path) -> dict[str, str]:
    """Class name -> material from a YAML file like serve/defaults/materials.yaml; ValueError with one line when it is not one."""
    try:
        data = read_yaml(path)  # YamlFileError (a ValueError) names the file and the spot
    except OSError as err:
        raise ValueError(f"cannot read the class materials {path}: {err.strerror} (BINSIGHT_MATERIALS_FILE)") from None
    materials = data.get("materials") if isinstance(data, dict) else None
    if not isinstance(materials, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in materials.items()):
        raise ValueError(f"{path} must hold `materials:`, a mapping of class names to materials")
    unknown = sorted({v for v in materials.values()} - set(MATERIALS))
    if unknown:
        raise ValueError(f"{path}: unknown materials {unknown}; use {', '.join(MATERIALS)}")
    return dict(materials)


def union_area(boxes: Sequence[Sequence[float]], width: float, height: float) -> float:
    """Area covered by the boxes (x0, y0, x1, y1), each clipped to the image: overlaps count once."""
    if len(boxes) <= 1:  # most photos: none or one, without numpy's overhead (a month of a city's photos is ~10^5)
        if not boxes:
            return 0.0
        x0, y0, x1, y1 = boxes[0]
        return max(0.0, min(x1, width) - max(x0, 0.0)) * max(0.0, min(y1, height) - max(y0, 0.0))
    clipped = np.clip(np.asarray(boxes, dtype=float).reshape(-1, 4), 0.0, [width, height, width, height])
    clipped = clipped[(clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])]
    if not len(clipped):
        return 0.0
    # Coordinate compression: the box edges cut the plane into cells, each wholly inside a box or outside all.
    xs, ys = np.unique(clipped[:, [0, 2]]), np.unique(clipped[:, [1, 3]])
    covered = np.zeros((len(ys) - 1, len(xs) - 1), dtype=bool)
    for x0, y0, x1, y1 in clipped:
        i0, i1 = np.searchsorted(xs, [x0, x1])
        j0, j1 = np.searchsorted(ys, [y0, y1])
        covered[j0:j1, i0:i1] = True
    return float((np.diff(ys)[:, None] * np.diff(xs)[None, :])[covered].sum())


def contaminant_boxes(row, contaminants: frozenset[str]) -> list[tuple[str, list[float]]]:
    """(label, box) of the photo's contaminants: the reviewer's where one decided, else the model's (module docstring)."""
    boxes = contaminant_boxes_of_record(row, contaminants)  # unusable photos never get here (_usable)
    if row.verdict == "contaminated" and row.review_state == "rejected":
        boxes = [d for d in boxes if d.get("origin") is None]  # the finding was wrong; only what the reviewer drew
    return [(d["label"], d["box"]) for d in boxes]


@dataclass
class LoadGrade:
    truck_id: str
    day: date
    tour_id: str | None
    """None: the truck reported no tour, the load is its whole day."""
    fraction: str
    images: int = 0
    """Usable photos graded."""
    excluded: int = 0
    """Inconclusive or unusable photos, left out."""
    visible_area: float = 0.0
    foreign_area: float = 0.0
    plastics_area: float = 0.0
    unmapped_classes: set[str] = field(default_factory=set)
    """Contaminant classes serve/defaults/materials.yaml does not name: counted as foreign matter, not as plastic."""
    limits: Limits = field(default_factory=Limits)

    @property
    def foreign_share(self) -> float | None:
        return self.foreign_area / self.visible_area if self.visible_area > 0 else None

    @property
    def plastics_share(self) -> float | None:
        return self.plastics_area / self.visible_area if self.visible_area > 0 else None

    @property
    def over(self) -> list[str]:
        """Which limits the estimate exceeds ('foreign matter', 'plastics')."""
        if self.foreign_share is None:
            return []
        found = []
        if self.foreign_share * 100 > self.limits.foreign_pct:
            found.append("foreign matter")
        if self.plastics_share * 100 > self.limits.plastics_pct:
            found.append("plastics")
        return found

    @property
    def grade(self) -> str:
        if self.foreign_share is None:
            return "not graded"
        return "over limit" if self.over else "within limits"

    @property
    def tour_label(self) -> str:
        return self.tour_id if self.tour_id is not None else "whole day"


def _usable(row) -> bool:
    return row.verdict != "inconclusive" and row.review_state != "unusable"


def _rows(sessions: sessionmaker, conditions: list) -> Iterator:
    with sessions() as s:
        # Streamed: a month of a city's photos need not fit in memory at once, only one load's sums per load.
        yield from s.execute(select(*LOAD_COLUMNS).where(*conditions).execution_options(yield_per=2000))


def grade_loads(sessions: sessionmaker, flt: StatsFilter, tz: str, graded_fraction: str, policy: Mapping[str, frozenset[str]],
                materials: Mapping[str, str], limits: Limits = Limits()) -> list[LoadGrade]:  # fmt: skip
    """The loads of `graded_fraction` in the filter's days, newest day first; the filter's own fraction must match or be None."""
    if flt.fraction not in (None, graded_fraction):
        return []  # the ordinance grades biowaste loads; another fraction has no load grade
    if graded_fraction not in policy:
        raise ValueError(f"the fraction policy knows no {graded_fraction!r} (BINSIGHT_LOAD_GRADE_FRACTION); it has {sorted(policy)}")
    contaminants = policy[graded_fraction]
    loads: dict[tuple, LoadGrade] = {}
    # An erased bin's anonymous copies (serve/gdpr.py) keep no truck, tour, day or boxes: they belong to no load.
    not_erased = func.coalesce(Inspection.bin_link, "") != ERASED
    for row in _rows(sessions, [*StatsFilter(flt.first_day, flt.last_day, graded_fraction).conditions(tz), not_erased]):
        day = local_date(row.captured_at, tz)
        key = (row.truck_id, day, row.tour_id)
        load = loads.get(key)
        if load is None:
            load = loads[key] = LoadGrade(row.truck_id, day, row.tour_id, graded_fraction, limits=limits)
        if not _usable(row):
            load.excluded += 1
            continue
        width, height = float(row.image_width), float(row.image_height)
        found = contaminant_boxes(row, contaminants)
        load.images += 1
        load.visible_area += width * height * (1.0 if row.visible_share is None else row.visible_share)
        load.foreign_area += union_area([box for _, box in found], width, height)
        load.plastics_area += union_area([box for label, box in found if materials.get(label) == PLASTIC], width, height)
        load.unmapped_classes |= {label for label, _ in found if label not in materials}
    return sorted(loads.values(), key=lambda g: (-g.day.toordinal(), g.truck_id, g.tour_id or ""))


def policy_from_files(classes: Path | None, model_dir: Path) -> dict[str, frozenset[str]]:
    """The fraction policy: from a class list (--classes), else the model card in model_dir; ValueError saying which is missing."""
    if classes is not None:
        from pipeline.config import Taxonomy

        try:
            data = read_yaml(classes)  # YamlFileError (a ValueError) names the file and the spot
        except OSError as err:
            raise ValueError(f"cannot read the class list {classes}: {err.strerror}") from None
        fractions = Taxonomy.model_validate(data).fractions
    else:
        from pipeline.model_card import CARD_FILE, ModelCardError, read_card

        try:
            fractions = read_card(model_dir / CARD_FILE).fractions
        except ModelCardError as err:
            raise ValueError(f"{err}; or give the class list with --classes configs/classes.yaml") from None
    return {name: frozenset(classes_) for name, classes_ in fractions.items()}
