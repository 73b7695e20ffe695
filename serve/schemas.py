"""Request metadata and response bodies of the API; they drive validation and the OpenAPI document."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

Verdict = Literal["clean", "contaminated", "inconclusive"]
ReviewState = Literal["confirmed", "rejected", "unusable"]  # serve/db.py REVIEW_STATES
ReviewFilter = Literal["unreviewed", "confirmed", "rejected", "unusable"]
BinLink = Literal["linked", "uncertain"]  # serve/db.py BIN_LINKS
BinLinkReason = Literal["missing_rfid", "unknown_rfid", "far_from_bin"]  # serve/db.py BIN_LINK_REASONS
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"

# RFC 3339's date-time (what OpenAPI's `format: date-time` means): pydantic alone
# would also take "0.5" as a Unix time, or a time without seconds.
RFC3339_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


def _rfc3339_text(value):
    if isinstance(value, str) and not RFC3339_DATE_TIME.fullmatch(value):
        raise ValueError("expected an RFC 3339 date-time with a time zone, e.g. 2026-05-04T06:12:00+02:00")
    return value


def _in_utc(value: datetime) -> datetime:
    # Stored and compared in UTC: SQLite keeps no offset, so 06:00+02:00 would
    # come back as 06:00 UTC, and its filters compare text.
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("the time lies outside the years 1 to 9999 in UTC") from None


UtcDateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_in_utc)]
"""A date-time sent by a client: RFC 3339 text with a time zone, converted to UTC."""


class CaptureMetadata(BaseModel):
    """What a truck knows about a capture, sent as form fields next to the image."""

    # dependentRequired: the OpenAPI document says what validated_metadata() checks.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"dependentRequired": {"latitude": ["longitude"], "longitude": ["latitude"]}})

    bin_id: str | None = Field(
        None, min_length=1, max_length=64, pattern=ID_PATTERN,
        description="The bin's RFID tag; left out when the truck could not read it (the photo is still stored, its bin link uncertain).",
    )
    truck_id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN, description="The truck's id.")
    fraction: str = Field(min_length=1, max_length=32, description="Waste fraction of the bin, one of the loaded model's (e.g. biowaste).")
    captured_at: UtcDateTime = Field(
        description="Capture time, RFC 3339 with a time zone (e.g. 2026-05-04T06:12:00+02:00); stored in UTC. "
        "At most BINSIGHT_MAX_CLOCK_SKEW_S seconds ahead of the server's clock."
    )
    capture_id: str = Field(
        min_length=1, max_length=128, pattern=ID_PATTERN,
        description="The truck's own id for this capture; resending it returns the same inspection.",
    )
    latitude: float | None = Field(None, ge=-90, le=90, description="WGS84 latitude of the lift; with longitude or not at all.")
    longitude: float | None = Field(None, ge=-180, le=180, description="WGS84 longitude of the lift; with latitude or not at all.")
    tour_id: str | None = Field(
        None, min_length=1, max_length=64, pattern=ID_PATTERN,
        description="The truck's tour (one load to the plant), as the truck numbers it; left out: the load is the truck's day.",
    )


class DetectionOut(BaseModel):
    label: str = Field(description="Class name from the model card.")
    score: float = Field(ge=0, le=1)
    box: tuple[float, float, float, float] = Field(description="x0, y0, x1, y1 in pixels of the uploaded image.")
    contaminant: bool = Field(description="Whether this class is a contaminant in the bin's fraction.")


class DetectResponse(BaseModel):
    detections: list[DetectionOut]
    model_version: str
    width: int
    height: int


class InspectionOut(BaseModel):
    id: str
    truck_id: str
    capture_id: str
    bin_id: str | None = Field(description="The bin's RFID tag; null when the truck could not read it.")
    tour_id: str | None = Field(description="The truck's tour, when it sent one.")
    fraction: str
    captured_at: datetime
    received_at: datetime
    latitude: float | None
    longitude: float | None
    verdict: Verdict
    contamination_score: float = Field(description="Highest contaminant score (0 when none was seen).")
    quality_issue: str | None = Field(description="Why the image is unusable when the verdict is inconclusive.")
    detections: list[DetectionOut]
    model_version: str
    image_available: bool = Field(description="False once retention has deleted the image of a clean bin.")
    review_state: ReviewState | None = Field(
        description="A reviewer's decision on the verdict: confirmed, rejected, or the photo unusable; null until reviewed."
    )
    bin_link: BinLink | None = Field(
        description="Whether the photo belongs to the registered bin: linked, or uncertain (never escalated); null if stored before the registry."
    )
    bin_link_reason: BinLinkReason | None = Field(
        description="Why the link is uncertain: no RFID sent, an RFID the registry does not know, or a capture far from the bin."
    )
    bin_distance_m: float | None = Field(description="Metres between the capture's position and the bin's registered location, when both are known.")
    district: str | None = Field(description="The bin's district in the registry at capture time.")
    route: str | None = Field(description="The bin's collection route in the registry at capture time.")


class InspectionPage(BaseModel):
    items: list[InspectionOut]
    total: int
    limit: int
    offset: int


class ErrorBody(BaseModel):
    code: str = Field(description="Machine-readable problem, e.g. truncated_image, unknown_fraction.")
    message: str = Field(description="What is wrong, for a person.")
    field: str | None = Field(None, description="The request field concerned, if one.")


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok", "starting"]
    model_version: str | None = None
