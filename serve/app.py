"""The inference service trucks call: `create_app(settings)` builds it, nothing heavy happens at import.

    POST /v1/inspections          photo + capture metadata -> stored inspection with verdict
    POST /v1/detect               photo -> detections, nothing stored
    GET  /v1/inspections          filtered, paginated list
    GET  /v1/inspections/{id}     one inspection
    GET  /v1/inspections/{id}/image      the photo as uploaded
    GET  /v1/inspections/{id}/evidence   the photo with boxes drawn
    GET  /health/live, /health/ready, /metrics
"""

from __future__ import annotations

import hashlib
import time
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import func, select

from pipeline.inspection import DetectFn, InspectionSpec, downscale, inspect
from serve import auth
from serve.db import Inspection, make_engine, make_sessionmaker
from serve.detector import Detection, Detector, ModelMissingError
from serve.errors import ERROR_RESPONSES, ApiError, install_handlers
from serve.evidence import draw_evidence
from serve.forms import capture_form_openapi, read_capture_form, read_upload
from serve.imaging import ImageRejected, decode_image
from serve.limits import BodySizeLimit
from serve.observability import Metrics, RequestTimer
from serve.migrate import upgrade
from serve.quality import effective_spec
from serve.schemas import DetectionOut, DetectResponse, Health, InspectionOut, InspectionPage, Verdict
from serve.settings import ServeSettings
from serve.storage import InspectionStore

API_KEY_HEADER = "X-API-Key"
api_key_scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="A truck's API key (`python -m serve.cli create-key`).")


def create_app(settings: ServeSettings | None = None, detector: Detector | None = None) -> FastAPI:
    settings = settings or ServeSettings()
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = make_engine(settings.database_url)
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        app.state.sessions = sessions
        app.state.keys = auth.KeyVerifier(sessions, settings.auth_cache_s)
        app.state.store = InspectionStore(sessions, settings.image_dir)
        app.state.store.sweep_orphans()
        app.state.detector = detector
        app.state.model_error = None
        if app.state.detector is None:
            try:
                app.state.detector = Detector(settings.model_dir, settings.inference_threads, settings.inference_workers)
            except ModelMissingError as err:
                app.state.model_error = str(err)
        app.state.spec = None
        if app.state.detector is not None:
            # The card's inference size and quality gate (what the evaluation measured), unless overridden.
            app.state.spec = effective_spec(app.state.detector.spec, settings)
            await run_in_threadpool(app.state.detector.warm_up)
        yield
        engine.dispose()

    app = FastAPI(
        title="binsight",
        version="1",
        summary="Contaminant detection for waste-bin photos from collection trucks",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes, on_reject=lambda: metrics.errors.labels("body_too_large").inc())
    install_handlers(app, lambda code: metrics.errors.labels(code).inc())

    app.add_middleware(RequestTimer, histogram=metrics.latency)

    async def require_key(request: Request, key: Annotated[str | None, Depends(api_key_scheme)]) -> str:
        verifier: auth.KeyVerifier = request.app.state.keys
        owner = verifier.cached(key) or await run_in_threadpool(verifier.verify, key)
        if owner is None:
            raise ApiError(401, "unauthorized", f"a valid API key is required in the {API_KEY_HEADER} header")
        return owner

    async def require_detector(request: Request) -> Detector:  # async: a sync dependency costs a thread hop
        found: Detector | None = request.app.state.detector
        if found is None or not found.ready:
            raise ApiError(503, "model_unavailable", request.app.state.model_error or "the model is still loading")
        return found

    v1 = dict(dependencies=[Depends(require_key)], responses=ERROR_RESPONSES)

    def decode_or_reject(data: bytes):
        try:
            return decode_image(data, settings.max_image_pixels)
        except ImageRejected as err:
            status = {"image_too_large": 413, "unsupported_image_format": 415}.get(err.code, 422)
            raise ApiError(status, err.code, str(err), "image") from None

    def timed(found: Detector) -> DetectFn:
        def detect(small, scale: float) -> list[Detection]:
            started = time.perf_counter()
            detections = found.detect(small, scale)
            metrics.inference.observe(time.perf_counter() - started)
            return detections

        return detect

    def detection_out(detections: list[Detection], contaminant_indices: tuple[int, ...]) -> list[DetectionOut]:
        flagged = set(contaminant_indices)
        return [
            DetectionOut(label=d.label, score=d.score, box=d.box, contaminant=i in flagged)
            for i, d in enumerate(detections)
            if d.score >= settings.min_detection_score or i in flagged
        ]

    replay_response = {200: {"model": InspectionOut, "description": "A retry: the inspection stored before for this capture id (header Idempotent-Replay: true)"}}

    @app.post("/v1/inspections", response_model=InspectionOut, status_code=201, tags=["inspections"],
              dependencies=v1["dependencies"], responses={**ERROR_RESPONSES, **replay_response}, openapi_extra={"requestBody": capture_form_openapi()},
              summary="Submit a bin photo; get the verdict. Idempotent on (truck_id, capture_id).")
    async def create_inspection(request: Request, found: Detector = Depends(require_detector)) -> Response:
        meta, data = await read_capture_form(request)
        if meta.fraction not in found.policy.fractions:
            raise ApiError(422, "unknown_fraction", f"unknown waste fraction {meta.fraction!r}; known: {found.policy.fractions}", "fraction")
        now = datetime.now(timezone.utc)
        if meta.captured_at > now + timedelta(seconds=settings.max_clock_skew_s):
            raise ApiError(422, "capture_time_in_future", f"captured_at {meta.captured_at.isoformat()} lies in the future (server time {now.isoformat()})", "captured_at")
        store: InspectionStore = request.app.state.store

        def inspect_and_store():
            # One trip to the thread pool for all blocking work: each hop costs
            # more than the cheap steps themselves.
            existing = store.find_recent(meta.truck_id, meta.capture_id)
            if existing is not None:  # a retry: answered before any decoding or inference
                return existing, False
            # Any other retry is caught by the unique constraint when its row is
            # inserted; no database lookup is spent on every upload for it.
            rgb, fmt = decode_or_reject(data)
            extension = "jpg" if fmt == "JPEG" else "png"
            inspection_id = str(uuid.uuid4())
            pending = store.begin_image(inspection_id, data, extension)  # written while the model runs
            try:
                # The one verdict path (pipeline/inspection.py): the evaluation measures this very code.
                spec: InspectionSpec = request.app.state.spec
                result = inspect(rgb, meta.fraction, timed(found), found.policy, spec.gate, spec.max_side)
                row = Inspection(
                    id=inspection_id, truck_id=meta.truck_id, capture_id=meta.capture_id, bin_id=meta.bin_id,
                    fraction=meta.fraction, captured_at=meta.captured_at, received_at=now, latitude=meta.latitude,
                    longitude=meta.longitude, verdict=result.verdict, contamination_score=result.score, quality_issue=result.quality_issue,
                    detections=[d.model_dump() for d in detection_out(result.detections, result.contaminant_indices)],
                    model_version=found.version, image_width=rgb.shape[1], image_height=rgb.shape[0],
                )
            except BaseException:
                pending.discard()
                raise
            return store.add(row, data, extension, pending)

        stored, created = await run_in_threadpool(inspect_and_store)
        if not created:
            return _replay(stored, data)
        metrics.verdicts.labels(stored.verdict, stored.fraction).inc()
        return _json(to_out(stored), 201, {"Location": f"/v1/inspections/{stored.id}"})

    @app.post("/v1/detect", response_model=DetectResponse, tags=["models"], **v1, summary="Detections only; nothing is stored.")
    async def detect(
        request: Request,
        image: Annotated[UploadFile, File(description="JPEG or PNG photo")],
        fraction: Annotated[str | None, Form(description="Optional: mark contaminants under this fraction's policy")] = None,
        found: Detector = Depends(require_detector),
    ) -> DetectResponse:
        if fraction is not None and fraction not in found.policy.fractions:
            raise ApiError(422, "unknown_fraction", f"unknown waste fraction {fraction!r}; known: {found.policy.fractions}", "fraction")
        data = await read_upload(image)

        def decode_and_detect():
            rgb, _ = decode_or_reject(data)
            small, scale = downscale(rgb, request.app.state.spec.max_side)
            return rgb, timed(found)(small, scale)

        rgb, detections = await run_in_threadpool(decode_and_detect)
        flagged: tuple[int, ...] = ()
        if fraction is not None:
            flagged = found.policy.judge(fraction, [d.label for d in detections], [d.score for d in detections]).contaminant_indices
        return DetectResponse(
            detections=detection_out(detections, flagged), model_version=found.version, width=rgb.shape[1], height=rgb.shape[0]
        )

    @app.get("/v1/inspections", response_model=InspectionPage, tags=["inspections"], **v1)
    def list_inspections(
        request: Request,
        bin_id: str | None = None,
        truck_id: str | None = None,
        fraction: str | None = None,
        verdict: Verdict | None = None,
        captured_from: Annotated[datetime | None, Query(description="Inclusive lower bound of captured_at")] = None,
        captured_to: Annotated[datetime | None, Query(description="Exclusive upper bound of captured_at")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> InspectionPage:
        conditions = []
        for column, value in ((Inspection.bin_id, bin_id), (Inspection.truck_id, truck_id), (Inspection.fraction, fraction), (Inspection.verdict, verdict)):
            if value is not None:
                conditions.append(column == value)
        if captured_from is not None:
            conditions.append(Inspection.captured_at >= _aware(captured_from, "captured_from"))
        if captured_to is not None:
            conditions.append(Inspection.captured_at < _aware(captured_to, "captured_to"))
        with request.app.state.sessions() as s:
            total = s.scalar(select(func.count()).select_from(Inspection).where(*conditions))
            rows = s.scalars(
                select(Inspection).where(*conditions).order_by(Inspection.captured_at.desc(), Inspection.id).limit(limit).offset(offset)
            ).all()
        return InspectionPage(items=[to_out(r) for r in rows], total=total, limit=limit, offset=offset)

    def find_or_404(request: Request, inspection_id: str) -> Inspection:
        row = request.app.state.store.get(inspection_id)
        if row is None:
            raise ApiError(404, "not_found", f"no inspection {inspection_id}")
        return row

    @app.get("/v1/inspections/{inspection_id}", response_model=InspectionOut, tags=["inspections"], **v1)
    def get_inspection(request: Request, inspection_id: str) -> InspectionOut:
        return to_out(find_or_404(request, inspection_id))

    def stored_image(request: Request, inspection_id: str):
        row = find_or_404(request, inspection_id)
        path = request.app.state.store.image_file(row)
        if path is None:
            raise ApiError(410, "image_deleted", f"the image of inspection {inspection_id} was deleted by the retention policy")
        return row, path

    image_responses = {**ERROR_RESPONSES, 200: {"content": {"image/jpeg": {}, "image/png": {}}}, 410: {"description": "Deleted by retention"}}
    auth_only = dict(dependencies=[Depends(require_key)])

    @app.get("/v1/inspections/{inspection_id}/image", tags=["inspections"], response_class=Response, responses=image_responses, **auth_only)
    def get_image(request: Request, inspection_id: str) -> Response:
        _, path = stored_image(request, inspection_id)
        return FileResponse(path, media_type="image/png" if path.suffix == ".png" else "image/jpeg")  # streamed, not read into memory

    @app.get("/v1/inspections/{inspection_id}/evidence", tags=["inspections"], response_class=Response, responses=image_responses, **auth_only,
             summary="The photo with detections drawn: contaminants in red, other objects in yellow.")
    def get_evidence(request: Request, inspection_id: str) -> Response:
        row, path = stored_image(request, inspection_id)
        return Response(draw_evidence(path.read_bytes(), row.detections), media_type="image/jpeg")

    @app.get("/health/live", response_model=Health, tags=["health"])
    def live() -> Health:
        return Health(status="ok")

    @app.get("/health/ready", response_model=Health, tags=["health"], responses={503: {"model": Health}})
    def ready(request: Request):
        found: Detector | None = request.app.state.detector
        if found is None or not found.ready:
            return JSONResponse(Health(status="starting").model_dump(), status_code=503)
        return Health(status="ok", model_version=found.version)

    @app.get("/metrics", tags=["health"], response_class=Response)
    def prometheus() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def to_out(row: Inspection) -> InspectionOut:
    return InspectionOut(
        id=row.id, truck_id=row.truck_id, capture_id=row.capture_id, bin_id=row.bin_id, fraction=row.fraction,
        captured_at=_utc(row.captured_at), received_at=_utc(row.received_at), latitude=row.latitude, longitude=row.longitude,
        verdict=row.verdict, contamination_score=row.contamination_score, quality_issue=row.quality_issue,
        detections=[DetectionOut(**d) for d in row.detections], model_version=row.model_version,
        image_available=row.image_path is not None,
    )


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise ApiError(422, "invalid_field", f"{field} needs a time zone", field)
    return value


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _replay(existing: Inspection, data: bytes) -> Response:
    if hashlib.sha256(data).hexdigest() != existing.image_sha256:
        raise ApiError(409, "capture_id_conflict", f"capture id {existing.capture_id} of truck {existing.truck_id} was already used for another image", "capture_id")
    return _json(to_out(existing), 200, {"Idempotent-Replay": "true", "Location": f"/v1/inspections/{existing.id}"})


def _json(body: InspectionOut, status: int, headers: dict[str, str]) -> Response:
    # Serialised here, once: a returned model would be validated and encoded a
    # second time by FastAPI, on the hot path of every upload.
    return Response(body.model_dump_json(), status_code=status, headers=headers, media_type="application/json")
