"""One error shape for every failure: {"error": {"code", "message", "field"}}, with a fitting status.

`error_responses(...)` documents, per endpoint, exactly the statuses it can
answer with, so that a client generated from the OpenAPI document knows them.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from serve.schemas import ErrorResponse


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_response(status: int, code: str, message: str, field: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_handlers(app: FastAPI, on_error) -> None:
    """Route every error through one shape; `on_error(code)` counts them for /metrics."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, err: ApiError):
        on_error(err.code)
        return error_response(err.status, err.code, err.message, err.field)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        location = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header", "form")]
        field = ".".join(location) or None
        missing = first.get("type") == "missing"
        code = "missing_field" if missing else "invalid_field"
        problem = first.get("msg", "invalid value")
        if isinstance(first.get("input"), UploadFile):
            problem = "send it as a text field, not as a file"
        on_error(code)
        return error_response(422, code, f"{field or 'request'}: {problem}", field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException):
        code = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "body_too_large"}.get(err.status_code, "http_error")
        headers = dict(getattr(err, "headers", None) or {})
        if err.status_code == 405:
            # Starlette names only the methods of the first route on the path
            # (/v1/inspections has one route for GET and one for POST), and
            # static files name none: they are only read.
            headers["Allow"] = ", ".join(allowed_methods(request) or ("GET", "HEAD"))
        on_error(code)
        return error_response(err.status_code, code, str(err.detail), headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception):
        on_error("internal_error")
        return error_response(500, "internal_error", f"unexpected {type(err).__name__}; nothing was stored")


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on this request's path (asked of the routes, as routing would)."""
    allowed = []
    for method in HTTP_METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


ERROR_DESCRIPTIONS = {
    400: "Malformed multipart body, or more parts than a form allows",
    401: "Missing or invalid API key",
    403: "The API key belongs to another truck (a truck's key posts and reads as that truck only)",
    404: "No such inspection",
    409: "The capture id was used before with another image",
    410: "The image was deleted by the retention policy",
    413: "Body or image too large (BINSIGHT_MAX_UPLOAD_BYTES, BINSIGHT_MAX_IMAGE_PIXELS)",
    415: "The body is no form, or the photo is not a JPEG or PNG",
    422: "Missing or malformed field, unknown fraction, capture time in the future, unusable image file",
    503: "No model loaded (yet)",
}


def error_responses(*statuses: int) -> dict[int, dict]:
    """The OpenAPI `responses` of these error statuses, all in the one error shape."""
    return {status: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[status]} for status in statuses}


# The statuses every /v1 endpoint was documented with before error_responses():
# kept for routers not yet listing their own.
ERROR_RESPONSES = error_responses(401, 404, 409, 413, 415, 422, 503)
