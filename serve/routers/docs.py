"""The API's documentation pages, /docs (Swagger UI) and /redoc, working without internet.

FastAPI's own pages load Swagger UI and ReDoc from a CDN: a blank page on a
depot's network or a vendor's laptop offline. Here their JavaScript and CSS
come from the pinned package `fastapi-offline`, served by the app itself
under /docs/assets, so the pages name no other host.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs/assets"
ASSETS_PACKAGE = "fastapi_offline"  # swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png

log = logging.getLogger("binsight.serve")
router = APIRouter(include_in_schema=False)


def assets_dir() -> Path | None:
    try:
        return Path(str(resources.files(ASSETS_PACKAGE) / "static"))
    except ModuleNotFoundError:
        return None


def install_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc with their files from the app; without the package, no pages (and a warning)."""
    directory = assets_dir()
    if directory is None or not directory.is_dir():
        log.warning("no API documentation pages: the package %s, which holds their files, is not installed", ASSETS_PACKAGE)
        return
    app.mount(ASSETS_URL, StaticFiles(directory=directory), name="docs-assets")
    app.include_router(router)


def _urls(request: Request) -> tuple[str, str]:
    root = request.scope.get("root_path", "")
    return f"{root}{request.app.openapi_url}", f"{root}{ASSETS_URL}"


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    openapi_url, assets = _urls(request)
    return get_swagger_ui_html(
        openapi_url=openapi_url, title=f"{request.app.title} - API", swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css", swagger_favicon_url=f"{assets}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},  # the online validator badge would call swagger.io
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    openapi_url, assets = _urls(request)
    return get_redoc_html(
        openapi_url=openapi_url, title=f"{request.app.title} - API", redoc_js_url=f"{assets}/redoc.standalone.js",
        redoc_favicon_url=f"{assets}/favicon.png", with_google_fonts=False,
    )
