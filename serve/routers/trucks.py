"""What collection trucks call, all behind an API key.

    POST /v1/inspections                 photo + capture metadata -> stored inspection with verdict
    POST /v1/detect                      photo -> detections, nothing stored
    GET  /v1/inspections                 filtered, paginated list
    GET  /v1/inspections/{id}            one inspection
    GET  /v1/inspections/{id}/image      the photo as stored (plates blurred, outside the hopper blanked)
    GET  /v1/inspections/{id}/evidence   the photo with boxes drawn
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy import func, select

from pipeline.inspection import DetectFn, downscale, inspect
from serve.access_log import NOT_CACHED, record_access
from serve.auth import KeyOwner
from serve.bin_link import link_to_registry
from serve.db import Inspection
from serve.dependencies import AppMetrics, Caller, Privacy, ReadyDetector, Sessions, Settings, Spec, Store, require_api_key
from serve.detector import Detection, Detector
from serve.errors import ApiError, error_responses
from serve.evidence import draw_evidence
from serve.forms import CaptureUpload, DetectUpload, read_upload, require_form_body, require_location_pair
from serve.imaging import ImageRejected, decode_image
from serve.observability import Metrics
from serve.privacy import PrivacyFilter, SafeImage
from serve.responses import created, replayed, to_out
from serve.schemas import BinLink, DetectionOut, DetectResponse, InspectionOut, InspectionPage, ReviewFilter, UtcDateTime, Verdict
from serve.storage import InspectionStore

router = APIRouter(dependencies=[Depends(require_api_key)])

LOCATION = {"Location": {"description": "The inspection's URL", "required": True, "schema": {"type": "string"}}}
UPLOAD_RESPONSES = {
    201: {"description": "Stored: the inspection with its verdict", "headers": LOCATION},
    200: {"model": InspectionOut, "description": "A retry: the inspection stored before for this capture id",
          "headers": {**LOCATION, "Idempotent-Replay": {"description": "Always `true`", "required": True, "schema": {"type": "string", "enum": ["true"]}}}},
    **error_responses(400, 401, 403, 409, 413, 415, 422, 503),
}
# The quality gate's sharpness measure (pipeline/inspection.py) needs a pixel on
# each side of another; below that it fails instead of judging the photo.
MIN_IMAGE_SIDE = 3
IMAGE_RESPONSES = {200: {"description": "The image", "content": {"image/jpeg": {}, "image/png": {}}}, **error_responses(401, 404, 410)}


@router.post("/v1/inspections", response_model=InspectionOut, status_code=201, tags=["inspections"], responses=UPLOAD_RESPONSES,
             summary="Submit a bin photo; get the verdict. Idempotent on (truck_id, capture_id).")
async def create_inspection(
    caller: Caller,
    detector: ReadyDetector,
    _: Annotated[None, Depends(require_form_body)],  # after the detector: no model (503) is said first, as before
    meta: Annotated[CaptureUpload, Form(media_type="multipart/form-data")],
    spec: Spec,
    store: Store,
    settings: Settings,
    metrics: AppMetrics,
    privacy: Privacy,
) -> Response:
    require_location_pair(meta)
    if not caller.may_act_as(meta.truck_id):  # before the retry lookup: a replay would show another truck's inspection
        raise ApiError(403, "wrong_truck", f"this API key belongs to truck {caller.truck_id!r}; it cannot post as {meta.truck_id!r}", "truck_id")
    data = await read_upload(meta.image)
    require_known_fraction(detector, meta.fraction)
    now = datetime.now(timezone.utc)
    if meta.captured_at > now + timedelta(seconds=settings.max_clock_skew_s):
        raise ApiError(422, "capture_time_in_future", f"captured_at {meta.captured_at.isoformat()} lies in the future (server time {now.isoformat()})", "captured_at")

    def inspect_and_store():
        # One trip to the thread pool for all blocking work: each hop costs
        # more than the cheap steps themselves.
        existing = store.find_recent(meta.truck_id, meta.capture_id)
        if existing is not None:  # a retry: answered before any decoding or inference
            return existing, False
        # Any other retry is caught by the unique constraint when its row is
        # inserted; no database lookup is spent on every upload for it.
        rgb, fmt = decode_or_reject(data, settings.max_image_pixels)
        extension = "jpg" if fmt == "JPEG" else "png"
        inspection_id = str(uuid.uuid4())
        # Protected (serve/privacy.py), encoded and written while the model runs on the original.
        pending = store.begin_image(inspection_id, extension, stored_form(privacy, rgb, data, meta.truck_id, extension))
        try:
            # The one verdict path (pipeline/inspection.py): the evaluation measures this very code.
            result = inspect(rgb, meta.fraction, timed(detector, metrics), detector.policy, spec.gate, spec.max_side)
            row = Inspection(
                id=inspection_id, truck_id=meta.truck_id, capture_id=meta.capture_id, bin_id=meta.bin_id, tour_id=meta.tour_id,
                fraction=meta.fraction, captured_at=meta.captured_at, received_at=now, latitude=meta.latitude,
                longitude=meta.longitude, verdict=result.verdict, contamination_score=result.score, quality_issue=result.quality_issue,
                detections=[d.model_dump() for d in reported(result.detections, result.contaminant_indices, settings.min_detection_score)],
                model_version=detector.version, image_width=rgb.shape[1], image_height=rgb.shape[0],
            )
            link_to_registry(store.sessions, row, settings.bin_link_max_distance_m)
        except BaseException:
            pending.discard()
            raise
        try:
            protected = pending.wait()
        except BaseException:
            pending.discard()
            raise
        row.privacy_regions, row.visible_share = protected.regions, protected.visible_share
        return store.add(row, data, extension, pending)

    stored, is_new = await run_in_threadpool(inspect_and_store)
    if not is_new:
        return replayed(stored, data)
    metrics.verdicts.labels(stored.verdict, stored.fraction).inc()
    return created(stored)


@router.post("/v1/detect", response_model=DetectResponse, tags=["models"], responses=error_responses(400, 401, 413, 415, 422, 503),
             summary="Detections only; nothing is stored.")
async def detect(detector: ReadyDetector, upload: Annotated[DetectUpload, Form(media_type="multipart/form-data")], spec: Spec, settings: Settings, metrics: AppMetrics) -> DetectResponse:
    fraction = upload.fraction
    if fraction is not None:
        require_known_fraction(detector, fraction)
    data = await read_upload(upload.image)

    def decode_and_detect():
        rgb, _ = decode_or_reject(data, settings.max_image_pixels)
        small, scale = downscale(rgb, spec.max_side)
        return rgb, timed(detector, metrics)(small, scale)

    rgb, detections = await run_in_threadpool(decode_and_detect)
    flagged: tuple[int, ...] = ()
    if fraction is not None:
        flagged = detector.policy.judge(fraction, [d.label for d in detections], [d.score for d in detections]).contaminant_indices
    return DetectResponse(
        detections=reported(detections, flagged, settings.min_detection_score), model_version=detector.version,
        width=rgb.shape[1], height=rgb.shape[0],
    )


@router.get("/v1/inspections", response_model=InspectionPage, tags=["inspections"], responses=error_responses(401, 403, 422),
            description="A truck's key lists that truck's inspections only; a fleet key lists all.")
def list_inspections(
    sessions: Sessions,
    caller: Caller,
    bin_id: str | None = None,
    truck_id: str | None = None,
    fraction: Annotated[str | None, Query(description="Any text: past inspections keep fractions a later model may not know")] = None,
    verdict: Verdict | None = None,
    district: str | None = None,
    route: str | None = None,
    bin_link: Annotated[BinLink | None, Query(description="linked, or uncertain: the photo may not belong to the registered bin")] = None,
    review_state: Annotated[ReviewFilter | None, Query(description="A reviewer's decision, or `unreviewed`")] = None,
    captured_from: Annotated[UtcDateTime | None, Query(description="Inclusive lower bound of captured_at (RFC 3339)")] = None,
    captured_to: Annotated[UtcDateTime | None, Query(description="Exclusive upper bound of captured_at (RFC 3339)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> InspectionPage:
    if caller.truck_id is not None:
        if truck_id is not None and truck_id != caller.truck_id:
            raise ApiError(403, "wrong_truck", f"this API key belongs to truck {caller.truck_id!r}; it cannot list {truck_id!r}", "truck_id")
        truck_id = caller.truck_id
    conditions = []
    if review_state is not None:
        conditions.append(Inspection.review_state.is_(None) if review_state == "unreviewed" else Inspection.review_state == review_state)
    for column, value in ((Inspection.bin_id, bin_id), (Inspection.truck_id, truck_id), (Inspection.fraction, fraction), (Inspection.verdict, verdict),
                          (Inspection.district, district), (Inspection.route, route), (Inspection.bin_link, bin_link)):
        if value is not None:
            conditions.append(column == value)
    if captured_from is not None:
        conditions.append(Inspection.captured_at >= captured_from)
    if captured_to is not None:
        conditions.append(Inspection.captured_at < captured_to)
    with sessions() as s:
        total = s.scalar(select(func.count()).select_from(Inspection).where(*conditions))
        rows = s.scalars(
            select(Inspection).where(*conditions).order_by(Inspection.captured_at.desc(), Inspection.id).limit(limit).offset(offset)
        ).all()
    return InspectionPage(items=[to_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/v1/inspections/{inspection_id}", response_model=InspectionOut, tags=["inspections"], responses=error_responses(401, 404))
def get_inspection(inspection_id: str, store: Store, caller: Caller) -> InspectionOut:
    return to_out(find_or_404(store, inspection_id, caller))


@router.get("/v1/inspections/{inspection_id}/image", tags=["inspections"], response_class=Response, responses=IMAGE_RESPONSES)
def get_image(inspection_id: str, store: Store, caller: Caller) -> Response:
    row, path = stored_image(store, inspection_id, caller)
    record_access(store.sessions, actor_kind="api_key", actor=caller.name, inspection_id=row.id, bin_id=row.bin_id, what="image")
    return FileResponse(path, media_type="image/png" if path.suffix == ".png" else "image/jpeg", headers=NOT_CACHED)  # streamed, not read into memory


@router.get("/v1/inspections/{inspection_id}/evidence", tags=["inspections"], response_class=Response, responses=IMAGE_RESPONSES,
            summary="The photo with detections drawn: contaminants in red, other objects in yellow.")
def get_evidence(inspection_id: str, store: Store, caller: Caller) -> Response:
    row, path = stored_image(store, inspection_id, caller)
    record_access(store.sessions, actor_kind="api_key", actor=caller.name, inspection_id=row.id, bin_id=row.bin_id, what="evidence")
    return Response(draw_evidence(path.read_bytes(), row.detections), media_type="image/jpeg", headers=NOT_CACHED)


def stored_form(privacy: PrivacyFilter, rgb, upload: bytes, truck_id: str, extension: str):
    """What the writer thread stores: the protected photo, or the upload as received when privacy is off (no blur, no mask)."""
    if not privacy.changes_images:
        return lambda: SafeImage(upload, regions=None)
    return lambda: privacy.render(rgb, truck_id, extension)


def require_known_fraction(detector: Detector, fraction: str) -> None:
    if fraction not in detector.policy.fractions:
        raise ApiError(422, "unknown_fraction", f"unknown waste fraction {fraction!r}; known: {detector.policy.fractions}", "fraction")


def decode_or_reject(data: bytes, max_pixels: int):
    try:
        rgb, fmt = decode_image(data, max_pixels)
    except ImageRejected as err:
        status = {"image_too_large": 413, "unsupported_image_format": 415}.get(err.code, 422)
        raise ApiError(status, err.code, str(err), "image") from None
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise ApiError(422, "invalid_image_size", f"the image is {width}x{height} pixels; at least {MIN_IMAGE_SIDE} a side are needed", "image")
    return rgb, fmt


def timed(detector: Detector, metrics: Metrics) -> DetectFn:
    def detect(small, scale: float) -> list[Detection]:
        started = time.perf_counter()
        detections = detector.detect(small, scale)
        metrics.inference.observe(time.perf_counter() - started)
        return detections

    return detect


def reported(detections: list[Detection], contaminant_indices: tuple[int, ...], min_score: float) -> list[DetectionOut]:
    """The detections a client sees: those scoring at least min_score, and every contaminant."""
    flagged = set(contaminant_indices)
    return [
        DetectionOut(label=d.label, score=d.score, box=d.box, contaminant=i in flagged)
        for i, d in enumerate(detections)
        if d.score >= min_score or i in flagged
    ]


def find_or_404(store: InspectionStore, inspection_id: str, caller: KeyOwner) -> Inspection:
    """The inspection, if the caller may see it; another truck's is "not found" (its existence is not the caller's business)."""
    row = store.get(inspection_id)
    if row is None or not caller.may_act_as(row.truck_id):
        raise ApiError(404, "not_found", f"no inspection {inspection_id}")
    return row


def stored_image(store: InspectionStore, inspection_id: str, caller: KeyOwner):
    row = find_or_404(store, inspection_id, caller)
    path = store.image_file(row)
    if path is None:
        raise ApiError(410, "image_deleted", f"the image of inspection {inspection_id} was deleted by the retention policy")
    return row, path
