"""Helpers of the statistics tests: inspections written straight into the database, each field chosen by the test."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

from serve.db import Inspection

_numbers = itertools.count()
TZ = "Europe/Berlin"


def at(text: str) -> datetime:
    """An instant from RFC 3339 text with its offset, e.g. '2026-11-16T08:00:00+01:00'."""
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def box(label: str, x0: float, y0: float, x1: float, y1: float, score: float = 0.9, contaminant: bool = True, origin=None) -> dict:
    found = {"label": label, "score": score, "box": [x0, y0, x1, y1], "contaminant": contaminant}
    if origin is not None:
        found["origin"] = origin
    return found


def inspection(when: str, verdict: str = "clean", review: str | None = None, *, district: str | None = "Nord", route: str | None = "R1",
               truck: str = "T1", fraction: str = "biowaste", bin_id: str | None = "own", bin_link: str | None = "linked",
               detections: list[dict] | None = None, reviewed: list[dict] | None = None, tour: str | None = None,
               width: int = 100, height: int = 100, visible_share: float | None = None, gps: tuple[float, float] | None = (51.68, 7.82),
               image_path: str | None = None) -> Inspection:  # fmt: skip
    """One inspection; `bin_id` "own" gives it a bin of its own, None none (no RFID read)."""
    n = next(_numbers)
    captured = at(when)
    return Inspection(
        truck_id=truck, capture_id=f"cap-{n}", bin_id=f"BIN-{n}" if bin_id == "own" else bin_id, fraction=fraction,
        captured_at=captured, received_at=captured, latitude=gps[0] if gps else None, longitude=gps[1] if gps else None,
        verdict=verdict, contamination_score=0.9 if verdict == "contaminated" else 0.1,
        quality_issue="too_dark" if verdict == "inconclusive" else None, detections=detections or [], model_version="m1",
        image_path=image_path, image_sha256="a" * 64, image_width=width, image_height=height, review_state=review,
        reviewed_detections=reviewed if reviewed is not None else ([] if review else None), reviewed_by="rita" if review else None,
        reviewed_at=captured if review else None, tour_id=tour, bin_link=bin_link, district=district, route=route,
        visible_share=visible_share,
    )  # fmt: skip


def add_all(sessions, rows: list[Inspection]) -> list[str]:
    with sessions.begin() as s:
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]
