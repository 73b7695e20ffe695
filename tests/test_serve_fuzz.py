"""Schemathesis fuzzes the API from its own OpenAPI document: no input may cause a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from serve import auth
from serve.app import API_KEY_HEADER, create_app
from serve.settings import ServeSettings


@pytest.fixture(scope="module")
def running_app(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("fuzz")
    app = create_app(ServeSettings(model_dir=tiny_model_dir, database_url=f"sqlite:///{folder / 'db.sqlite'}", image_dir=folder / "img", _env_file=None))
    with TestClient(app) as client:  # runs the lifespan: model, database
        key = auth.create_key(app.state.sessions, "fuzzer")
        yield app, key, client


@pytest.fixture(scope="module")
def api_schema(running_app):
    app, _, _ = running_app
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_causes_a_server_error(case, running_app):
    _, key, _ = running_app
    response = case.call(headers={API_KEY_HEADER: key})
    assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}"
    if 400 <= response.status_code < 500:
        assert "code" in response.json()["error"], response.text
