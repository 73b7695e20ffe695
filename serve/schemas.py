"""Request metadata and response bodies of the API; they drive validation and the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["clean", "contaminated", "inconclusive"]
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"


class CaptureMetadata(BaseModel):
    """What a truck knows about a capture, sent as form fields next to the image."""

    model_config = ConfigDict(extra="forbid")

    bin_id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN, description="The bin's RFID tag.")
    truck_id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN, description="The truck's id.")
    fraction: str = Field(min_length=1, max_length=32, description="Waste fraction of the bin, e.g. biowaste.")
    captured_at: datetime = Field(description="Capture time, ISO 8601 with a time zone.")
    capture_id: str = Field(
        min_length=1, max_length=128, pattern=ID_PATTERN,
        description="The truck's own id for this capture; resending it returns the same inspection.",
    )
    latitude: float | None = Field(None, ge=-90, le=90, description="WGS84 latitude of the lift.")
    longitude: float | None = Field(None, ge=-180, le=180, description="WGS84 longitude of the lift.")


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
    bin_id: str
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
