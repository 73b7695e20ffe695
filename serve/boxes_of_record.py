"""The boxes that stand for an inspection: the reviewer's once one decided, else the model's.

A decision stores the boxes as the reviewer left them (serve/review.py
`decide`), untouched ones included, so `reviewed_detections` is None exactly
while no reviewer has decided. Notices, letters and load grades all read an
inspection's contaminants through here, so that they agree on what was found.
"""

from __future__ import annotations

from collections.abc import Collection


def boxes_of_record(inspection) -> list[dict]:
    """`inspection`: an Inspection, or a row holding its `detections` and `reviewed_detections` columns."""
    if inspection.reviewed_detections is not None:
        return inspection.reviewed_detections
    return inspection.detections or []


def contaminant_boxes_of_record(inspection, contaminants: Collection[str]) -> list[dict]:
    """The contaminants among those boxes: a reviewer's box by its class (`contaminants`: the fraction's); a model's
    detection only where its verdict counted it (flag `contaminant`: at or above the threshold)."""
    if inspection.reviewed_detections is not None:
        return [b for b in inspection.reviewed_detections if b["label"] in contaminants]
    return [d for d in inspection.detections or [] if d.get("contaminant")]
