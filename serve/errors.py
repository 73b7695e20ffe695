"""One error shape for every failure: {"error": {"code", "message", "field"}}, with a fitting status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
        message = f"{field or 'request'}: {first.get('msg', 'invalid value')}"
        on_error(code)
        return error_response(422, code, message, field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException):
        code = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "body_too_large"}.get(err.status_code, "http_error")
        on_error(code)
        return error_response(err.status_code, code, str(err.detail), headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception):
        on_error("internal_error")
        return error_response(500, "internal_error", f"unexpected {type(err).__name__}; nothing was stored")


ERROR_RESPONSES = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        401: "Missing or invalid API key",
        404: "No such inspection",
        409: "The capture id was used before with another image",
        413: "Body or image too large",
        415: "Not a JPEG or PNG image",
        422: "Missing or malformed field, unknown fraction, unusable image file",
        503: "No model loaded yet",
    }.items()
}
