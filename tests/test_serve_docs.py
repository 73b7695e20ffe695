"""The API documentation pages work without internet: every file they load comes from the app."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from serve.app import create_app
from serve.settings import ServeSettings

EXPECTED_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs")
    settings = ServeSettings(model_dir=folder / "no-model", database_url=f"sqlite:///{folder / 'db.sqlite'}", image_dir=folder / "img", _env_file=None)
    with TestClient(create_app(settings)) as c:
        yield c


def referenced_urls(html: str) -> list[str]:
    """What the page loads: src and href attributes, Swagger UI's `url:` and ReDoc's spec-url."""
    return re.findall(r'(?:src|href|spec-url)="([^"]+)"', html) + re.findall(r"\burl: '([^']+)'", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_loads_only_files_of_the_app(client, page):
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", r.text, re.IGNORECASE), "the page names another host"
    urls = referenced_urls(r.text)
    assert any(u.endswith(".js") for u in urls) and "/openapi.json" in urls, urls
    for url in urls:
        assert url.startswith("/"), url
        got = client.get(url)
        assert got.status_code == 200, url
        expected = next(kind for suffix, kind in EXPECTED_TYPES.items() if url.endswith(suffix))
        assert expected in got.headers["content-type"], (url, got.headers["content-type"])
        assert len(got.content) > 1000 or url.endswith(".png"), url  # the real files, not a stub


def test_swagger_ui_is_recent_enough_for_openapi_3_1(client):
    # Swagger UI renders OpenAPI 3.1 (what FastAPI writes) from version 5 on.
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    bundle = client.get("/docs/assets/swagger-ui-bundle.js").text
    assert re.search(r'"5\.\d+\.\d+"', bundle)


def test_docs_pages_are_not_in_the_api_document(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/docs") or p == "/redoc"]
