"""How a stored inspection is shown to clients, and the responses that carry it."""

from __future__ import annotations

import hashlib

from fastapi import Response

from serve.db import Inspection, as_utc
from serve.errors import ApiError
from serve.schemas import DetectionOut, InspectionOut


def to_out(row: Inspection) -> InspectionOut:
    return InspectionOut(
        id=row.id, truck_id=row.truck_id, capture_id=row.capture_id, bin_id=row.bin_id, tour_id=row.tour_id, fraction=row.fraction,
        captured_at=as_utc(row.captured_at), received_at=as_utc(row.received_at), latitude=row.latitude, longitude=row.longitude,
        verdict=row.verdict, contamination_score=row.contamination_score, quality_issue=row.quality_issue,
        detections=[DetectionOut(**d) for d in row.detections], model_version=row.model_version,
        image_available=row.image_path is not None, review_state=row.review_state, bin_link=row.bin_link,
        bin_link_reason=row.bin_link_reason, bin_distance_m=row.bin_distance_m, district=row.district, route=row.route,
    )


def location(row: Inspection) -> str:
    return f"/v1/inspections/{row.id}"


def created(row: Inspection) -> Response:
    return inspection_json(to_out(row), 201, {"Location": location(row)})


def replayed(existing: Inspection, data: bytes) -> Response:
    """The answer to a retry: the inspection stored before, or 409 when the capture id came with another image."""
    if hashlib.sha256(data).hexdigest() != existing.image_sha256:
        raise ApiError(409, "capture_id_conflict", f"capture id {existing.capture_id} of truck {existing.truck_id} was already used for another image", "capture_id")
    return inspection_json(to_out(existing), 200, {"Idempotent-Replay": "true", "Location": location(existing)})


def inspection_json(body: InspectionOut, status: int, headers: dict[str, str]) -> Response:
    # Serialised here, once: a returned model would be validated and encoded a
    # second time by FastAPI, on the hot path of every upload.
    return Response(body.model_dump_json(), status_code=status, headers=headers, media_type="application/json")
