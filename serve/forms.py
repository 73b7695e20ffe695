"""The upload form of POST /v1/inspections: parsed and validated in one pass, and described for OpenAPI.

The endpoint reads its multipart body itself instead of declaring one FastAPI
`Form` parameter per field: FastAPI would validate every field on its own and
then `CaptureMetadata` would validate them again, which cost a third of a
millisecond on every upload. The OpenAPI document is generated from the same
`CaptureMetadata` model, so the documented form and the accepted form cannot
drift apart.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from serve.errors import ApiError
from serve.imaging import ACCEPTED_FORMATS
from serve.schemas import CaptureMetadata

IMAGE_FIELD = "image"
ACCEPTED_CONTENT_TYPES = set(ACCEPTED_FORMATS.values()) | {"application/octet-stream"}
IMAGE_DESCRIPTION = "JPEG or PNG photo of the open bin"


async def read_upload(image: UploadFile) -> bytes:
    """The bytes of an uploaded image part, refused early when it declares a type that is no image."""
    content_type = (image.content_type or "").split(";")[0].strip().lower()
    if content_type and content_type not in ACCEPTED_CONTENT_TYPES:
        raise ApiError(415, "unsupported_media_type", f"the image part is {content_type}; send image/jpeg or image/png", IMAGE_FIELD)
    return await image.read()


async def read_capture_form(request: Request) -> tuple[CaptureMetadata, bytes]:
    """The validated capture metadata and the image bytes of an upload, or ApiError naming the problem."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):  # the latter: to say the image is missing
        raise ApiError(415, "unsupported_media_type", f"the request is {media_type or 'without a content type'}; send multipart/form-data with an image part and the capture fields")
    # Room for every field as a file part, so that such a mistake is named rather than counted.
    form = await request.form(max_files=1 + len(CaptureMetadata.model_fields), max_fields=2 * len(CaptureMetadata.model_fields))
    try:
        image = form.get(IMAGE_FIELD)
        if not isinstance(image, UploadFile):
            raise ApiError(422, "missing_field", f"{IMAGE_FIELD}: a file part with the JPEG or PNG photo is required", IMAGE_FIELD)
        fields = {}
        for name in CaptureMetadata.model_fields:
            value = form.get(name)
            if isinstance(value, UploadFile):
                raise ApiError(422, "invalid_field", f"{name}: send it as a text field, not as a file", name)
            if value:  # an empty field counts as absent, as in an HTML form
                fields[name] = value
        meta = validated_metadata(fields)
        return meta, await read_upload(image)
    finally:
        await form.close()


def validated_metadata(fields: dict) -> CaptureMetadata:
    try:
        meta = CaptureMetadata(**fields)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        code = "missing_field" if first["type"] == "missing" else "invalid_field"
        raise ApiError(422, code, f"{field}: {first['msg']}", field) from None
    if meta.captured_at.tzinfo is None:
        raise ApiError(422, "invalid_field", "captured_at needs a time zone, e.g. 2026-05-04T06:12:00+02:00", "captured_at")
    if (meta.latitude is None) != (meta.longitude is None):
        raise ApiError(422, "invalid_field", "latitude and longitude come together or not at all", "latitude")
    return meta


def capture_form_openapi() -> dict:
    """The OpenAPI requestBody of the upload form: the image part plus CaptureMetadata's fields."""
    schema = CaptureMetadata.model_json_schema()
    schema.pop("additionalProperties", None)  # other parts are ignored, not refused
    schema["title"] = "CaptureUpload"
    schema["properties"] = {IMAGE_FIELD: {"type": "string", "format": "binary", "description": IMAGE_DESCRIPTION}, **schema["properties"]}
    schema["required"] = [IMAGE_FIELD, *schema.get("required", [])]
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
