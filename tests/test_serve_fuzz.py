"""Schemathesis holds the API to its own OpenAPI document: every operation, every check.

For each operation, schemathesis' three phases: the schema's examples;
coverage (boundary values, each required field and header left out,
methods the path does not support, wrong content types); and fuzzing with
Hypothesis, with data that fits the schema (which must be accepted) and data
that does not (which must be refused). Every response goes through all of
schemathesis' checks: no 5xx, only documented statuses, content types,
headers and bodies, positive data accepted, negative data rejected, missing
headers refused, 405 with a true Allow header, auth not ignored, ...

Driven through schemathesis' own test builder and Hypothesis directly: its
pytest plugin does not yet support pytest 9.
"""

from __future__ import annotations

import dataclasses
import io
from datetime import datetime, timedelta, timezone

import jsonschema_rs  # schemathesis' own JSON Schema validator
import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
from schemathesis.core.media_types import MEDIA_TYPE_STRATEGIES
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test

from serve import auth
from serve.app import API_KEY_HEADER, create_app
from serve.routers.trucks import MIN_IMAGE_SIDE
from serve.schemas import RFC3339_DATE_TIME
from serve.settings import ServeSettings

MAX_EXAMPLES = 40  # fuzzing examples per operation; coverage and examples phases add their own cases
MAX_UPLOAD_BYTES = 300_000  # small, so that boundary cases of the upload limit stay cheap


@st.composite
def photos(draw, image_format: str) -> bytes:
    """A real photo file, 3 to 96 px a side: what an image part that fits the schema carries.

    JSON Schema cannot say "a decodable JPEG"; without this, data that fits
    the schema would be random bytes, which the service rightly refuses.
    """
    width, height = draw(st.integers(MIN_IMAGE_SIDE, 96)), draw(st.integers(MIN_IMAGE_SIDE, 96))
    seed = draw(st.integers(0, 2**16))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, image_format)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo_parts():
    registered = {"image/jpeg": photos("JPEG"), "image/png": photos("PNG")}
    for media_type, strategy in registered.items():
        schemathesis.openapi.media_type(media_type, strategy)
    yield
    for media_type in registered:
        MEDIA_TYPE_STRATEGIES.pop(media_type, None)


@pytest.fixture(scope="module")
def running_app(tmp_path_factory, tiny_model_dir, photo_parts):
    folder = tmp_path_factory.mktemp("fuzz")
    app = create_app(ServeSettings(model_dir=tiny_model_dir, database_url=f"sqlite:///{folder / 'db.sqlite'}", image_dir=folder / "img",
                                   max_upload_bytes=MAX_UPLOAD_BYTES, _env_file=None))
    with TestClient(app) as client:  # runs the lifespan: model, database
        yield app, auth.create_key(app.state.sessions, "fuzzer"), client.get("/openapi.json").json()


def fuzzed_schema(app):
    config = schemathesis.Config.from_dict({
        # Positive and negative data. The API key is not generated: every request carries a
        # valid one, and the ignored_auth check sends requests without it on its own.
        "generation": {"mode": "all", "with-security-parameters": False},
        # 413 (a part past the upload limit) refuses invalid data as well as 400 or 422 do.
        "checks": {"negative_data_rejection": {"expected-statuses": [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]}},
    })
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    schema.hook("map_body")(captured_in_the_past)
    return schema


def captured_in_the_past(context, body):
    """A valid capture time in the future (or beyond UTC's years) moved into the past (a `map_body` hook).

    The service refuses captures from the future by design (BINSIGHT_MAX_CLOCK_SKEW_S,
    422 capture_time_in_future), which no JSON Schema keyword can state for a
    date-time. Only times that fit the schema are moved, so negative data stays negative.
    """
    if dataclasses.is_dataclass(body):  # a form with a registered media type: the parts are in .body
        return dataclasses.replace(body, body=captured_in_the_past(context, body.body))
    when = body.get("captured_at") if isinstance(body, dict) else None
    if not (isinstance(when, str) and RFC3339_DATE_TIME.fullmatch(when)):
        return body
    try:
        keep = datetime.fromisoformat(when).astimezone(timezone.utc) < datetime.now(timezone.utc)
    except (ValueError, OverflowError):
        keep = False
    return body if keep else {**body, "captured_at": (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()}


def mislabelled_positive(case, document) -> bool:
    """A case schemathesis calls positive whose body does not fit the schema.

    schemathesis 4.32.5's coverage phase sends one such form ("Multipart body
    with custom encoding"): the photo from the registered strategy, and every
    other required part as an empty string, whatever its minLength or enum.
    """
    if not (case.meta and case.meta.generation.mode.is_positive and isinstance(case.body, dict)):
        return False
    content = document["paths"][case.operation.path][case.method.lower()].get("requestBody", {}).get("content", {})
    if "multipart/form-data" not in content:
        return False
    text_parts = {name: ("photo" if name == "image" else value) for name, value in case.body.items()}
    return not jsonschema_rs.validator_for(content["multipart/form-data"]["schema"], validate_formats=True).is_valid(text_parts)


def test_every_operation_conforms_to_the_openapi_document(running_app):
    app, key, document = running_app
    load_all_checks()
    every_check = CHECKS.get_all()
    schema = fuzzed_schema(app)
    fuzzed, cases = [], {}
    for result in schema.get_all_operations():
        operation = result.ok()
        sent = []

        def conforms(case):
            sent.append(case)
            if mislabelled_positive(case, document):  # checked as what it is: data to refuse
                response = case.call(headers={API_KEY_HEADER: key})
                assert response.status_code in (400, 415, 422), response.text
                return
            case.call_and_validate(headers={API_KEY_HEADER: key}, checks=every_check)

        test = create_test(operation=operation, test_func=conforms, config=HypothesisTestConfig(
            project=schema.config, modes=list(HypothesisTestMode),
            settings=settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None),
        ))
        test()
        fuzzed.append(operation.label)
        cases[operation.label] = len(sent)
    assert "POST /v1/inspections" in fuzzed and "GET /v1/inspections/{inspection_id}/evidence" in fuzzed and len(fuzzed) == 9, fuzzed
    assert cases["POST /v1/inspections"] >= MAX_EXAMPLES and cases["GET /v1/inspections"] >= MAX_EXAMPLES, cases


def test_uploads_that_fit_the_schema_are_stored(running_app):
    """The fuzzing above did reach the model and the database, not only the validation."""
    app, key, _ = running_app
    with TestClient(app) as client:
        listed = client.get("/v1/inspections", headers={API_KEY_HEADER: key}).json()
    assert listed["total"] > 0


def test_the_document_states_the_truck_contract(running_app, taxonomy):
    _, _, document = running_app
    upload = document["paths"]["/v1/inspections"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]
    fields = form["schema"]["properties"]
    assert fields["fraction"]["enum"] == sorted(taxonomy.fractions)
    assert fields["captured_at"]["format"] == "date-time"
    assert fields["image"]["format"] == "binary" and fields["image"]["maxLength"] == MAX_UPLOAD_BYTES and str(MAX_UPLOAD_BYTES) in fields["image"]["description"]
    assert form["encoding"]["image"]["contentType"] == "image/jpeg, image/png"
    assert form["schema"]["dependentRequired"] == {"latitude": ["longitude"], "longitude": ["latitude"]}
    assert fields["latitude"]["type"] == "number"  # a form part is left out, never null
    assert set(upload["responses"]) == {"200", "201", "400", "401", "403", "409", "413", "415", "422", "503"}
    assert upload["responses"]["201"]["headers"]["Location"]["required"]
    detect = document["paths"]["/v1/detect"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert detect["fraction"]["enum"] == sorted(taxonomy.fractions)
    listing = {p["name"]: p["schema"] for p in document["paths"]["/v1/inspections"]["get"]["parameters"]}
    assert listing["captured_from"] == {**listing["captured_from"], "type": "string", "format": "date-time"}
    assert "HTTPValidationError" not in str(document)  # every error in the service's one shape
