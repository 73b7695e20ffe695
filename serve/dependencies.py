"""What the endpoints share, handed to them with FastAPI's `Depends`.

Each function reads what the start-up (serve/lifecycle.py) or the factory
(serve/app.py) put on `app.state`, so a test can replace any of them with
`app.dependency_overrides[get_detector] = lambda: fake`.

All are `async def`: FastAPI runs a plain `def` dependency in the thread
pool, and that hop costs more than what these do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import sessionmaker

from pipeline.inspection import InspectionSpec
from serve.auth import KeyOwner, KeyVerifier
from serve.detector import Detector
from serve.errors import ApiError
from serve.observability import Metrics
from serve.privacy import PrivacyFilter
from serve.quality import effective_spec
from serve.settings import ServeSettings
from serve.storage import InspectionStore

API_KEY_HEADER = "X-API-Key"
api_key_scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="A truck's API key (`binsight create-key NAME`).")


async def get_settings(request: Request) -> ServeSettings:
    return request.app.state.settings


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_sessions(request: Request) -> sessionmaker:
    return request.app.state.sessions


async def get_store(request: Request) -> InspectionStore:
    return request.app.state.store


async def get_privacy(request: Request) -> PrivacyFilter:
    return request.app.state.privacy


async def loaded_detector(request: Request) -> Detector | None:
    """The detector once loaded and warmed up, else None (readiness asks this)."""
    found: Detector | None = request.app.state.detector
    return found if found is not None and found.ready else None


async def get_detector(request: Request, found: Annotated[Detector | None, Depends(loaded_detector)]) -> Detector:
    """The detector, or 503 saying why there is none (no model, or still loading)."""
    if found is None:
        raise ApiError(503, "model_unavailable", request.app.state.model_error or "the model is still loading")
    return found


async def get_inspection_spec(request: Request, detector: Annotated[Detector, Depends(get_detector)]) -> InspectionSpec:
    """Inference size and quality gate: the detector's card with the settings' overrides."""
    state = request.app.state
    if detector is state.detector:
        return state.spec  # worked out (and validated) once at start-up
    return effective_spec(detector.spec, state.settings)  # a detector injected by a test


async def require_api_key(request: Request, key: Annotated[str | None, Depends(api_key_scheme)]) -> KeyOwner:
    """The owner of the caller's valid API key (a truck, or the fleet), or 401."""
    verifier: KeyVerifier = request.app.state.keys
    owner = verifier.cached(key) or await run_in_threadpool(verifier.verify, key)
    if owner is None:
        raise ApiError(401, "unauthorized", f"a valid API key is required in the {API_KEY_HEADER} header")
    return owner


Settings = Annotated[ServeSettings, Depends(get_settings)]
Sessions = Annotated[sessionmaker, Depends(get_sessions)]
Store = Annotated[InspectionStore, Depends(get_store)]
Privacy = Annotated[PrivacyFilter, Depends(get_privacy)]
ReadyDetector = Annotated[Detector, Depends(get_detector)]
Spec = Annotated[InspectionSpec, Depends(get_inspection_spec)]
AppMetrics = Annotated[Metrics, Depends(get_metrics)]
Caller = Annotated[KeyOwner, Depends(require_api_key)]
