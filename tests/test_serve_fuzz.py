"""Schemathesis fuzzes the API from its own OpenAPI document: no input may cause a 5xx.

The operations are driven directly with Hypothesis (schemathesis' pytest
plugin does not yet support pytest 9), one property per operation.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from serve import auth
from serve.app import API_KEY_HEADER, create_app
from serve.settings import ServeSettings


@pytest.fixture(scope="module")
def running_app(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("fuzz")
    app = create_app(ServeSettings(model_dir=tiny_model_dir, database_url=f"sqlite:///{folder / 'db.sqlite'}", image_dir=folder / "img", _env_file=None))
    with TestClient(app) as client:  # runs the lifespan: model, database
        yield app, auth.create_key(app.state.sessions, "fuzzer")


def operations(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_is_fuzzed_and_none_answers_5xx(running_app):
    app, key = running_app
    fuzzed = []
    for operation in operations(app):

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_server_error(case):
            response = case.call(headers={API_KEY_HEADER: key})
            assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}"
            if 400 <= response.status_code < 500:
                assert "code" in response.json()["error"], response.text

        no_server_error()
        fuzzed.append(f"{operation.method.upper()} {operation.path}")
    assert "POST /v1/inspections" in fuzzed and "GET /v1/inspections/{inspection_id}/evidence" in fuzzed
