"""The HTTP API with a real exported model, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from serve import auth
from serve.app import create_app
from serve.settings import ServeSettings
from tests.serve_helpers import form, jpeg_bytes, migrated, scene_jpeg, scrape_metrics


@pytest.fixture
def settings(tmp_path, tiny_model_dir, database_url):
    # PostgreSQL is migrated beforehand, as in production; SQLite migrates itself at start-up.
    return ServeSettings(model_dir=tiny_model_dir, database_url=migrated(database_url) if "postgresql" in database_url else database_url, image_dir=tmp_path / "images", max_upload_bytes=2_000_000,
                         auth_cache_s=0, _env_file=None)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        c.headers[auth_header()] = auth.create_key(c.app.state.sessions, "truck-101")
        yield c


def auth_header():
    from serve.app import API_KEY_HEADER

    return API_KEY_HEADER


def post(client, image: bytes, content_type="image/jpeg", **fields):
    return client.post("/v1/inspections", data=form(**fields), files={"image": ("bin.jpg", image, content_type)})


def error_code(response):
    return response.json()["error"]["code"]


def test_inspection_is_created_stored_and_returned(client, tiny_dataset, settings):
    r = post(client, scene_jpeg(tiny_dataset), capture_id="c1")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["verdict"] in {"clean", "contaminated", "inconclusive"} and body["model_version"]
    assert r.headers["Location"] == f"/v1/inspections/{body['id']}"
    for d in body["detections"]:
        assert d["label"] in {"plastic_bag", "plastic_bottle", "can", "glass", "cardboard"} and len(d["box"]) == 4
    got = client.get(f"/v1/inspections/{body['id']}").json()
    assert got == body
    image = client.get(f"/v1/inspections/{body['id']}/image")
    # Stored after the privacy step (serve/privacy.py): re-encoded, never the upload's bytes, the same picture (nothing to blur here).
    assert image.status_code == 200 and image.content != scene_jpeg(tiny_dataset)
    stored, uploaded = (np.asarray(Image.open(io.BytesIO(b)), np.float32) for b in (image.content, scene_jpeg(tiny_dataset)))
    assert stored.shape == uploaded.shape and np.abs(stored - uploaded).mean() < 3
    evidence = client.get(f"/v1/inspections/{body['id']}/evidence")
    assert evidence.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(evidence.content)).size == (128, 128)


def test_retry_returns_the_same_inspection(client, tiny_dataset):
    first = post(client, scene_jpeg(tiny_dataset), capture_id="retry-me")
    again = post(client, scene_jpeg(tiny_dataset), capture_id="retry-me")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replay"] == "true"
    assert client.get("/v1/inspections", params={"truck_id": "HAM-EB-101"}).json()["total"] == 1


def test_same_capture_id_with_another_image_is_a_conflict(client, tiny_dataset):
    post(client, scene_jpeg(tiny_dataset, 0), capture_id="dup")
    r = post(client, scene_jpeg(tiny_dataset, 1), capture_id="dup")
    assert r.status_code == 409 and error_code(r) == "capture_id_conflict"


def test_same_capture_id_from_another_truck_is_another_inspection(client, tiny_dataset):
    a = post(client, scene_jpeg(tiny_dataset), capture_id="x", truck_id="HAM-EB-101").json()
    b = post(client, scene_jpeg(tiny_dataset), capture_id="x", truck_id="HAM-EB-102").json()
    assert a["id"] != b["id"]


def test_unusable_image_is_inconclusive_never_clean(client):
    dark = np.random.default_rng(0).integers(0, 12, (200, 200, 3), dtype=np.uint8)
    r = post(client, jpeg_bytes(dark), capture_id="night")
    assert r.status_code == 201 and r.json()["verdict"] == "inconclusive" and r.json()["quality_issue"] == "too_dark"


def test_requests_without_valid_key_are_refused(client, tiny_dataset):
    for headers in ({auth_header(): ""}, {auth_header(): "bsk_wrong"}):
        r = client.post("/v1/inspections", data=form(), files={"image": ("a.jpg", scene_jpeg(tiny_dataset), "image/jpeg")}, headers=headers)
        assert r.status_code == 401 and error_code(r) == "unauthorized"
    assert client.get("/v1/inspections", headers={auth_header(): "nope"}).status_code == 401


def test_revoked_key_is_refused(client, tiny_dataset):
    auth.revoke_key(client.app.state.sessions, "truck-101")
    assert client.get("/v1/inspections").status_code == 401


def truncated_jpeg(tiny_dataset):
    data = scene_jpeg(tiny_dataset)
    return data[: len(data) // 2]


def png_header(width, height):
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, payload: struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "case, status, code",
    [
        ("not_an_image", 415, "unsupported_image_format"),
        ("truncated_jpeg", 422, "truncated_image"),
        ("zero_pixels", 422, "invalid_image_size"),
        ("decompression_bomb", 413, "image_too_large"),
        ("wrong_content_type", 415, "unsupported_media_type"),
        ("empty_image", 422, "empty_image"),
    ],
)
def test_bad_images_are_refused_and_nothing_is_stored(client, tiny_dataset, settings, case, status, code):
    image, content_type = {
        "not_an_image": (b"%PDF-1.7 not a photo", "image/jpeg"),
        "truncated_jpeg": (truncated_jpeg(tiny_dataset), "image/jpeg"),
        "zero_pixels": (png_header(0, 480), "image/png"),
        "decompression_bomb": (png_header(30_000, 30_000), "image/png"),
        "wrong_content_type": (scene_jpeg(tiny_dataset), "text/plain"),
        "empty_image": (b"", "image/jpeg"),
    }[case]
    r = post(client, image, content_type=content_type, capture_id=f"bad-{case}")
    assert (r.status_code, error_code(r)) == (status, code), r.text
    assert client.get("/v1/inspections").json()["total"] == 0
    assert not any(p.is_file() for p in settings.image_dir.rglob("*")) if settings.image_dir.exists() else True
    assert client.get("/health/live").status_code == 200  # and the service keeps serving


@pytest.mark.parametrize(
    "fields, code, field",
    [
        ({"fraction": "compost"}, "unknown_fraction", "fraction"),
        ({"truck_id": None}, "missing_field", "truck_id"),  # bin_id may be left out: tests/test_bin_link.py
        ({"capture_id": None}, "missing_field", "capture_id"),
        ({"captured_at": "last tuesday"}, "invalid_field", "captured_at"),
        ({"captured_at": "2026-05-04T06:00:00"}, "invalid_field", "captured_at"),
        ({"captured_at": (datetime.now(timezone.utc) + timedelta(days=2)).isoformat()}, "capture_time_in_future", "captured_at"),
        ({"latitude": "123.4"}, "invalid_field", "latitude"),
        ({"longitude": "east"}, "invalid_field", "longitude"),
        ({"longitude": None}, "invalid_field", "latitude"),
        ({"bin_id": "bin id with spaces"}, "invalid_field", "bin_id"),
    ],
)
def test_bad_metadata_is_refused_with_the_field_named(client, tiny_dataset, fields, code, field):
    r = client.post("/v1/inspections", data=form(**fields), files={"image": ("b.jpg", scene_jpeg(tiny_dataset), "image/jpeg")})
    assert r.status_code == 422 and error_code(r) == code and r.json()["error"]["field"] == field, r.text
    assert client.get("/v1/inspections").json()["total"] == 0


def test_missing_image_part(client):
    r = client.post("/v1/inspections", data=form())
    assert r.status_code == 422 and r.json()["error"]["field"] == "image"


def test_body_over_the_limit_is_refused(client, settings):
    big = b"\xff\xd8\xff" + b"0" * (settings.max_upload_bytes + 10)
    r = post(client, big, capture_id="huge")
    assert r.status_code == 413 and error_code(r) == "body_too_large"


def test_chunked_body_over_the_limit_is_refused(client, settings):
    def chunks():
        for _ in range(settings.max_upload_bytes // 100_000 + 2):
            yield b"x" * 100_000

    r = client.post("/v1/inspections", content=chunks(), headers={"content-type": "multipart/form-data; boundary=zzz"})
    assert r.status_code == 413 and error_code(r) == "body_too_large"


def test_detect_returns_detections_and_stores_nothing(client, tiny_dataset):
    r = client.post("/v1/detect", files={"image": ("b.jpg", scene_jpeg(tiny_dataset), "image/jpeg")}, data={"fraction": "paper"})
    assert r.status_code == 200 and r.json()["width"] == 128 and isinstance(r.json()["detections"], list)
    assert client.get("/v1/inspections").json()["total"] == 0


def test_list_filters_and_paginates(client, tiny_dataset):
    base = datetime(2026, 6, 1, 6, 0, tzinfo=timezone.utc)
    for i in range(5):
        post(client, scene_jpeg(tiny_dataset, i), capture_id=f"p{i}", bin_id="BIN-A" if i < 3 else "BIN-B",
             captured_at=(base + timedelta(hours=i)).isoformat())
    page = client.get("/v1/inspections", params={"bin_id": "BIN-A", "limit": 2}).json()
    assert page["total"] == 3 and len(page["items"]) == 2 and all(i["bin_id"] == "BIN-A" for i in page["items"])
    rest = client.get("/v1/inspections", params={"bin_id": "BIN-A", "limit": 2, "offset": 2}).json()
    assert len(rest["items"]) == 1 and rest["items"][0]["id"] not in {i["id"] for i in page["items"]}
    window = client.get("/v1/inspections", params={"captured_from": (base + timedelta(hours=1)).isoformat(), "captured_to": (base + timedelta(hours=3)).isoformat()}).json()
    assert window["total"] == 2
    verdicts = {i["verdict"] for i in client.get("/v1/inspections").json()["items"]}
    for v in verdicts:
        assert all(i["verdict"] == v for i in client.get("/v1/inspections", params={"verdict": v}).json()["items"])


def test_unknown_inspection_is_404(client):
    r = client.get("/v1/inspections/does-not-exist")
    assert r.status_code == 404 and error_code(r) == "not_found"


def test_health_and_metrics(client, tiny_dataset):
    assert client.get("/health/live").json() == {"status": "ok", "model_version": None}
    ready = client.get("/health/ready").json()
    assert ready["status"] == "ok" and ready["model_version"]
    post(client, scene_jpeg(tiny_dataset), capture_id="m1")
    post(client, b"junk", capture_id="m2")
    text = scrape_metrics(client).text
    assert "binsight_request_seconds_bucket" in text and "binsight_verdicts_total{" in text
    assert 'binsight_errors_total{code="unsupported_image_format"} 1.0' in text


def test_without_a_model_the_service_says_what_to_do(tmp_path):
    settings = ServeSettings(model_dir=tmp_path / "nothing", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", image_dir=tmp_path / "img", _env_file=None)
    with TestClient(create_app(settings)) as c:
        key = auth.create_key(c.app.state.sessions, "t")
        assert c.get("/health/ready").status_code == 503
        r = c.post("/v1/detect", files={"image": ("a.jpg", b"x", "image/jpeg")}, headers={auth_header(): key})
        assert r.status_code == 503 and "make run" in r.json()["error"]["message"]


def test_retention_removes_the_image_but_keeps_the_inspection(client, tiny_dataset, settings):
    from serve.db import Inspection
    from serve.retention import delete_clean_images

    body = post(client, scene_jpeg(tiny_dataset), capture_id="old", captured_at="2026-01-05T06:00:00+00:00").json()
    with client.app.state.sessions.begin() as s:
        s.get(Inspection, body["id"]).verdict = "clean"  # whatever the tiny model said: make it a clean bin
    assert delete_clean_images(client.app.state.sessions, settings.image_dir, days=30) == 1
    kept = client.get(f"/v1/inspections/{body['id']}").json()
    assert kept["verdict"] == "clean" and kept["image_available"] is False
    for suffix in ("image", "evidence"):
        r = client.get(f"/v1/inspections/{body['id']}/{suffix}")
        assert r.status_code == 410 and error_code(r) == "image_deleted"


def test_failure_during_inference_leaves_no_image_and_no_row(client, tiny_dataset, settings, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("onnxruntime fell over")

    from serve.detector import Detector

    monkeypatch.setattr(Detector, "detect", broken)
    with TestClient(client.app, raise_server_exceptions=False) as c:
        c.headers.update(client.headers)
        r = c.post("/v1/inspections", data=form(capture_id="boom"), files={"image": ("b.jpg", scene_jpeg(tiny_dataset), "image/jpeg")})
    assert r.status_code == 500 and error_code(r) == "internal_error"
    assert client.get("/v1/inspections").json()["total"] == 0
    assert not [p for p in settings.image_dir.rglob("*") if p.is_file()]


def test_low_scores_are_not_reported_but_contaminants_always_are(client, tiny_dataset):
    r = post(client, scene_jpeg(tiny_dataset), capture_id="scores").json()
    for d in r["detections"]:
        assert d["score"] >= 0.3 or d["contaminant"]


def test_retry_unknown_to_this_process_is_caught_by_the_constraint(client, tiny_dataset, settings):
    # A retry after a restart (or one that reached another replica): not in
    # this process's recent captures, so it is only recognised on insert.
    first = post(client, scene_jpeg(tiny_dataset), capture_id="after-restart").json()
    client.app.state.store.recent = type(client.app.state.store.recent)()
    again = post(client, scene_jpeg(tiny_dataset), capture_id="after-restart")
    assert again.status_code == 200 and again.headers["Idempotent-Replay"] == "true" and again.json()["id"] == first["id"]
    conflict = post(client, scene_jpeg(tiny_dataset, 1), capture_id="after-restart")
    assert conflict.status_code == 409 and error_code(conflict) == "capture_id_conflict"
    assert client.get("/v1/inspections").json()["total"] == 1
    assert len([p for p in settings.image_dir.rglob("*") if p.is_file()]) == 1


def test_app_creates_the_folder_of_its_sqlite_database(tmp_path, tiny_model_dir):
    database = tmp_path / "not" / "yet" / "there.db"
    settings = ServeSettings(model_dir=tiny_model_dir, database_url=f"sqlite:///{database}", image_dir=tmp_path / "images", _env_file=None)
    with TestClient(create_app(settings)) as c:
        assert c.get("/health/live").status_code == 200
    assert database.is_file()


def test_body_that_is_no_form_is_refused(client, tiny_dataset):
    r = client.post("/v1/inspections", json=form(), headers={"content-type": "application/json"})
    assert r.status_code == 415 and error_code(r) == "unsupported_media_type" and "multipart/form-data" in r.json()["error"]["message"]


def test_metadata_sent_as_a_file_is_refused(client, tiny_dataset):
    fields = form()
    bin_id = fields.pop("bin_id")
    r = client.post("/v1/inspections", data=fields, files={"image": ("b.jpg", scene_jpeg(tiny_dataset), "image/jpeg"), "bin_id": ("id.txt", bin_id.encode())})
    assert r.status_code == 422 and error_code(r) == "invalid_field" and r.json()["error"]["field"] == "bin_id"


def test_malformed_multipart_body_is_refused(client):
    body = b"--zzz\r\nContent-Disposition: form-data; name=\"bin_id\"\r\n\r\nB1\r\n--zzz\r\nthis is no header\r\n"
    r = client.post("/v1/inspections", content=body, headers={"content-type": "multipart/form-data; boundary=zzz"})
    assert 400 <= r.status_code < 500 and "error" in r.json()
    assert client.get("/v1/inspections").json()["total"] == 0


def test_openapi_documents_the_upload_form(client):
    from serve.schemas import CaptureMetadata

    body = client.get("/openapi.json").json()["paths"]["/v1/inspections"]["post"]["requestBody"]
    schema = body["content"]["multipart/form-data"]["schema"]
    assert schema["properties"]["image"]["format"] == "binary"
    assert set(schema["properties"]) == {"image", *CaptureMetadata.model_fields}
    assert {"image", "truck_id", "fraction", "captured_at", "capture_id"} <= set(schema["required"])
    assert not {"latitude", "bin_id", "tour_id"} & set(schema["required"])  # a truck whose RFID reader failed still sends the photo
    assert schema["properties"]["bin_id"]["type"] == "string" and schema["properties"]["bin_id"]["pattern"]  # a form part is left out, never null


def test_unsupported_methods_name_every_method_of_the_path(client):
    r = client.options("/v1/inspections")
    assert r.status_code == 405 and error_code(r) == "method_not_allowed"
    assert r.headers["Allow"] == "GET, POST"  # two routes share the path: both methods are named
    r = client.delete("/v1/inspections/some-id")
    assert r.status_code == 405 and r.headers["Allow"] == "GET"


@pytest.mark.parametrize("value", ["0.5", "1700000000", "2026-05-04T06:00Z", "2026-05-04 06:00:00Z", "2026-05-04T06:00:00"])
def test_time_filters_take_only_rfc3339_date_times(client, value):
    r = client.get("/v1/inspections", params={"captured_to": value})
    assert r.status_code == 422 and error_code(r) == "invalid_field" and r.json()["error"]["field"] == "captured_to", r.text


def test_capture_times_are_stored_in_utc_whatever_their_offset(client, tiny_dataset):
    body = post(client, scene_jpeg(tiny_dataset), capture_id="offset", captured_at="2026-06-01T08:30:00+02:00").json()
    assert body["captured_at"] == "2026-06-01T06:30:00Z"
    assert client.get(f"/v1/inspections/{body['id']}").json()["captured_at"] == "2026-06-01T06:30:00Z"
    window = {"captured_from": "2026-06-01T06:00:00Z", "captured_to": "2026-06-01T07:00:00Z"}
    assert client.get("/v1/inspections", params=window).json()["total"] == 1
    assert client.get("/v1/inspections", params={**window, "captured_from": "2026-06-01T07:00:00+01:00"}).json()["total"] == 1


@pytest.mark.parametrize("value", ["0.5", "1700000000", "2026-05-04T06:00Z", "0001-01-01T00:00:00+23:00"])
def test_capture_time_must_be_an_rfc3339_date_time_in_utcs_range(client, tiny_dataset, value):
    r = post(client, scene_jpeg(tiny_dataset), capture_id="when", captured_at=value)
    assert r.status_code == 422 and error_code(r) == "invalid_field" and r.json()["error"]["field"] == "captured_at", r.text


def test_a_photo_too_small_to_judge_is_refused(client):
    r = post(client, jpeg_bytes(np.full((50, 2, 3), 128, np.uint8)), capture_id="sliver")
    assert r.status_code == 422 and error_code(r) == "invalid_image_size" and "2x50" in r.json()["error"]["message"]


def test_image_sent_as_a_text_field_is_named_missing(client):
    r = client.post("/v1/inspections", data={**form(), "image": "not a file"})
    assert r.status_code == 422 and error_code(r) == "missing_field" and r.json()["error"]["field"] == "image"
    assert "file part" in r.json()["error"]["message"]
