"""The inference service trucks call: `create_app(settings)` builds it, nothing heavy happens at import.

The factory only assembles: settings and metrics on `app.state`, middleware,
one error shape, and the routers (serve/routers/), each for one audience.
What endpoints share comes from serve/dependencies.py; start-up and shutdown
are serve/lifecycle.py.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from serve.dependencies import API_KEY_HEADER, api_key_scheme  # noqa: F401  (imported from here by clients and tests)
from serve.detector import Detector
from serve.errors import install_handlers
from serve.forms import keep_uploads_in_memory
from serve.limits import BodySizeLimit
from serve.lifecycle import lifespan
from serve.observability import Metrics, RequestTimer
from serve.openapi import install_openapi
from serve.responses import to_out  # noqa: F401  (kept importable from here)
from serve.pages import STATIC_DIR, install_page_handlers
from serve.routers import admin, dashboard, health, labelstudio, login, notices, reviewers, trucks
from serve.routers.docs import install_docs
from serve.settings import ServeSettings


def create_app(settings: ServeSettings | None = None, detector: Detector | None = None) -> FastAPI:
    """The service; `detector` replaces the model of settings.model_dir (the caller keeps owning it)."""
    settings = settings or ServeSettings()
    registry = CollectorRegistry()  # the app's own: tests build many apps in one process
    metrics = Metrics(registry)

    app = FastAPI(
        title="binsight",
        version="1",
        summary="Contaminant detection for waste-bin photos from collection trucks",
        lifespan=lifespan,
        docs_url=None,  # served by serve/routers/docs.py, with their files from the app rather than a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.metrics_registry = registry
    app.state.given_detector = detector

    keep_uploads_in_memory(settings.max_upload_bytes)  # the body limit below bounds what that holds
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes, on_reject=lambda: metrics.errors.labels("body_too_large").inc())
    install_handlers(app, lambda code: metrics.errors.labels(code).inc())
    app.add_middleware(RequestTimer, histogram=metrics.latency)

    app.include_router(trucks.router)
    app.include_router(health.router)
    install_openapi(app)
    install_docs(app)
    # Label Studio's ML backend (Basic Auth, off without BINSIGHT_LABELSTUDIO_KEY): its contract is Label Studio's, not ours to document.
    app.include_router(labelstudio.router, include_in_schema=False)
    # The people's pages (session cookie, CSRF; serve/pages.py), kept out of the trucks' OpenAPI document.
    app.include_router(login.router)
    app.include_router(reviewers.router)
    app.include_router(admin.router)
    app.include_router(notices.router)
    app.include_router(dashboard.router)
    install_page_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
