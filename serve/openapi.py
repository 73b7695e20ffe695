"""The OpenAPI document as the exact truck contract, so a vendor can generate a client from it.

FastAPI writes the document from the routes and models; this adds what only
the running service knows: the waste fractions of the loaded model (an enum),
and the upload limits of the settings. It also writes the upload forms the
way OpenAPI describes multipart bodies: inline, the photo as a binary part
with its media types (`encoding`), optional fields as plain optional fields
(a form part cannot be null).
"""

from __future__ import annotations

import copy
import json

from fastapi import FastAPI

from serve.errors import ERROR_DESCRIPTIONS
from serve.forms import IMAGE_DESCRIPTION, IMAGE_FIELD, IMAGE_MEDIA_TYPES
from serve.routers.trucks import MIN_IMAGE_SIDE
from serve.settings import ServeSettings

FORM = "multipart/form-data"


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` (and /openapi.json) the document with the contract filled in."""

    def openapi() -> dict:
        fractions = known_fractions(app)
        if app.openapi_schema is None or getattr(app.state, "openapi_fractions", None) != fractions:
            app.openapi_schema = None  # written anew: the model (and with it the fractions) was loaded since
            document = FastAPI.openapi(app)  # FastAPI's own, which it keeps in app.openapi_schema
            state_contract(document, fractions, app.state.settings)
            app.state.openapi_fractions = fractions
        return app.openapi_schema

    app.openapi = openapi


def known_fractions(app: FastAPI) -> tuple[str, ...]:
    """The waste fractions of the loaded model; none before start-up or without a model."""
    detector = getattr(app.state, "detector", None)
    return tuple(detector.policy.fractions) if detector is not None else ()


def state_contract(document: dict, fractions: tuple[str, ...], settings: ServeSettings) -> None:
    for operation in _operations(document):
        for parameter in operation.get("parameters", []):
            parameter["schema"] = _not_nullable(parameter["schema"])  # a query parameter is left out, never null
        _validation_errors_in_our_shape(operation)
        content = operation.get("requestBody", {}).get("content", {})
        if FORM not in content:
            continue
        body = content[FORM]
        body["schema"] = _inlined(document, body["schema"])
        form = body["schema"]
        for name, field in form.get("properties", {}).items():
            form["properties"][name] = _not_nullable(field)
        if IMAGE_FIELD in form.get("properties", {}):
            form["properties"][IMAGE_FIELD] = _image_part(settings)
            body["encoding"] = {IMAGE_FIELD: {"contentType": ", ".join(IMAGE_MEDIA_TYPES)}}
        if fractions and "fraction" in form.get("properties", {}):
            form["properties"]["fraction"]["enum"] = list(fractions)
    _drop_unused_components(document)


def _validation_errors_in_our_shape(operation: dict) -> None:
    """FastAPI's own 422 (HTTPValidationError) as the service answers it, or gone where nothing is validated."""
    response = operation.get("responses", {}).get("422")
    if response is None or "HTTPValidationError" not in json.dumps(response):
        return
    validated = "requestBody" in operation or any(p["in"] != "path" for p in operation.get("parameters", []))
    if validated:
        operation["responses"]["422"] = {"description": ERROR_DESCRIPTIONS[422], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
    else:  # a path segment is taken as text: nothing to refuse
        del operation["responses"]["422"]


def _image_part(settings: ServeSettings) -> dict:
    return {
        "type": "string",
        "format": "binary",
        "minLength": 1,
        "maxLength": settings.max_upload_bytes,
        "description": (
            f"{IMAGE_DESCRIPTION}. The whole request may be at most {settings.max_upload_bytes} bytes "
            f"(BINSIGHT_MAX_UPLOAD_BYTES, answered with 413), and the image at most {settings.max_image_pixels} pixels "
            f"(BINSIGHT_MAX_IMAGE_PIXELS, 413) and at least {MIN_IMAGE_SIDE} pixels a side (422). Rotated upright by its EXIF orientation."
        ),
    }


def _not_nullable(field: dict) -> dict:
    """`anyOf: [X, null]` as X: an optional form part is left out, it is never null."""
    options = field.get("anyOf")
    if not options:
        return field
    kept = [option for option in options if option.get("type") != "null"]
    if len(kept) != 1:
        return field
    plain = {key: value for key, value in field.items() if key != "anyOf"}
    if plain.get("default", ...) is None:
        del plain["default"]
    return {**kept[0], **plain}


def _inlined(document: dict, schema: dict) -> dict:
    reference = schema.get("$ref", "")
    if not reference.startswith("#/components/schemas/"):
        return schema
    return copy.deepcopy(document["components"]["schemas"][reference.rsplit("/", 1)[1]])


def _operations(document: dict):
    for path_item in document.get("paths", {}).values():
        yield from (operation for method, operation in path_item.items() if method != "parameters")


def _drop_unused_components(document: dict) -> None:
    """Remove the schemas nothing refers to any more (the inlined forms)."""
    schemas = document.get("components", {}).get("schemas", {})
    unused = True
    while unused:
        used = json.dumps({"paths": document["paths"], "schemas": schemas})
        unused = [name for name in schemas if used.count(f'"#/components/schemas/{name}"') == 0]
        for name in unused:
            del schemas[name]
