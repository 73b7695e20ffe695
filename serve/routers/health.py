"""For the orchestrator and monitoring: liveness, readiness, Prometheus metrics. No API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serve.dependencies import loaded_detector
from serve.detector import Detector
from serve.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health/live", response_model=Health)
def live() -> Health:
    return Health(status="ok")


@router.get("/health/ready", response_model=Health, responses={503: {"model": Health}})
def ready(detector: Annotated[Detector | None, Depends(loaded_detector)]):
    if detector is None:
        return JSONResponse(Health(status="starting").model_dump(), status_code=503)
    return Health(status="ok", model_version=detector.version)


@router.get("/metrics", response_class=Response,
            responses={200: {"description": "Prometheus text exposition format", "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}})
def prometheus(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
