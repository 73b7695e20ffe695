"""For the orchestrator and monitoring: liveness, readiness, Prometheus metrics.

No truck key here. /metrics tells how the service is used (request and
verdict counts per fraction), so it is the operator scraper's: a bearer token
(BINSIGHT_METRICS_TOKEN), or without one, requests from this host only.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serve.dependencies import Settings, loaded_detector
from serve.detector import Detector
from serve.errors import ApiError, error_responses
from serve.schemas import Health

router = APIRouter(tags=["health"])
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@router.get("/health/live", response_model=Health)
def live() -> Health:
    return Health(status="ok")


@router.get("/health/ready", response_model=Health, responses={503: {"model": Health}})
def ready(detector: Annotated[Detector | None, Depends(loaded_detector)]):
    if detector is None:
        return JSONResponse(Health(status="starting").model_dump(), status_code=503)
    return Health(status="ok", model_version=detector.version)


@router.get("/metrics", response_class=Response,
            responses={200: {"description": "Prometheus text exposition format", "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
                       **{**error_responses(401, 403), 401: {**error_responses(401)[401], "description": "Missing or wrong bearer token (BINSIGHT_METRICS_TOKEN)"},
                          403: {**error_responses(403)[403], "description": "No BINSIGHT_METRICS_TOKEN is set: only this host may scrape"}}})  # fmt: skip
def prometheus(request: Request, settings: Settings, authorization: Annotated[str | None, Header()] = None) -> Response:
    token = settings.metrics_token
    if token is None:
        if (request.client.host if request.client else "") not in LOOPBACK:
            raise ApiError(403, "metrics_forbidden", "/metrics answers only this host; set BINSIGHT_METRICS_TOKEN and scrape with that bearer token")
    elif not hmac.compare_digest(f"Bearer {token.get_secret_value()}".encode(), (authorization or "").encode()):
        raise ApiError(401, "unauthorized", "/metrics needs the header `Authorization: Bearer <BINSIGHT_METRICS_TOKEN>`")
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
