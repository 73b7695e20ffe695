"""The image access log (serve/access_log.py): written where photos leave, read by `binsight access-log`, kept by erasure."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from serve import access_log, accounts, auth, gdpr
from serve.access_log import AccessQuery, record_access
from serve.app import API_KEY_HEADER, create_app
from serve.db import ImageAccess, make_engine, make_sessionmaker
from serve.settings import ServeSettings
from tests.serve_helpers import form, migrated
from tests.test_serve_injected import SeeingDetector, photo
from tests.test_serve_pages import PASSWORD, log_in


@pytest.fixture
def app(tmp_path, taxonomy, database_url):
    settings = ServeSettings(model_dir=tmp_path / "no-model", database_url=migrated(database_url), image_dir=tmp_path / "images",
                             auth_cache_s=0, review_qc_sample_rate=0.0, _env_file=None)  # fmt: skip
    return create_app(settings, detector=SeeingDetector(taxonomy.fractions))


@pytest.fixture
def client(app):
    with TestClient(app, follow_redirects=False) as c:
        accounts.create_user(app.state.sessions, "rita", "reviewer", PASSWORD)
        c.headers[API_KEY_HEADER] = auth.create_key(app.state.sessions, "truck-1")
        yield c


def upload(client: TestClient, capture_id: str, bin_id: str) -> str:
    r = client.post("/v1/inspections", files={"image": ("p.jpg", photo(), "image/jpeg")}, data=form(capture_id=capture_id, bin_id=bin_id))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def logged(sessions) -> list[tuple]:
    return [(a.actor_kind, a.actor, a.inspection_id, a.bin_id, a.what) for a in access_log.entries(sessions)]


def test_opening_photos_through_the_pages_and_the_api_is_logged_and_nothing_else_is(client, app):
    sessions = app.state.sessions
    mine = upload(client, "c1", "BIN-1")
    assert logged(sessions) == []  # storing a photo is no access to it

    photos = [client.get(f"/v1/inspections/{mine}/image"), client.get(f"/v1/inspections/{mine}/evidence")]
    assert client.get(f"/v1/inspections/{mine}").status_code == 200  # the record without the photo: not logged
    log_in(client, "rita")
    photos.append(client.get(f"/review/items/{mine}/image"))
    assert [r.status_code for r in photos] == [200, 200, 200]
    # A copy in the browser's cache would be opened again unlogged, and outlive the reviewer's logout.
    assert [r.headers["cache-control"] for r in photos] == ["no-store"] * 3
    assert client.get("/review/items/no-such-id/image").status_code == 404  # nothing handed out, nothing logged

    assert logged(sessions) == [
        ("api_key", "truck-1", mine, "BIN-1", "image"),
        ("api_key", "truck-1", mine, "BIN-1", "evidence"),
        ("user", "rita", mine, "BIN-1", "image"),
    ]


def test_another_trucks_key_sees_nothing_and_leaves_no_entry(client, app):
    mine = upload(client, "c1", "BIN-1")
    other = auth.create_key(app.state.sessions, "truck-2", truck_id="HAM-EB-999")
    assert client.get(f"/v1/inspections/{mine}/image", headers={API_KEY_HEADER: other}).status_code == 404
    assert logged(app.state.sessions) == []


def test_the_gdpr_export_holds_the_bins_access_log_and_is_logged_itself(client, app, tmp_path):
    sessions, image_dir = app.state.sessions, app.state.settings.image_dir
    mine = upload(client, "c1", "BIN-1")
    upload(client, "c2", "BIN-2")
    client.get(f"/v1/inspections/{mine}/image")
    record_access(sessions, actor_kind="user", actor="otto", inspection_id="gone-already", bin_id="BIN-1", what="notice")
    record_access(sessions, actor_kind="user", actor="otto", inspection_id="x", bin_id="BIN-2", what="image")

    gdpr.export_bin(sessions, image_dir, "BIN-1", tmp_path / "bin.zip", exported_by="dpo")
    with zipfile.ZipFile(tmp_path / "bin.zip") as archive:
        records = json.loads(archive.read("records.json"))
        readme = archive.read("README.txt").decode()
    assert [(a["actor"], a["inspection_id"], a["what"]) for a in records["image_access"]] == [("truck-1", mine, "image"), ("otto", "gone-already", "notice")]
    assert "the access log: who opened which photo" in " ".join(readme.split())
    assert logged(sessions)[-1] == ("cli", "dpo", mine, "BIN-1", "export")


def test_erasure_keeps_the_access_log(client, app):
    sessions, image_dir = app.state.sessions, app.state.settings.image_dir
    mine = upload(client, "c1", "BIN-1")
    client.get(f"/v1/inspections/{mine}/evidence")
    gdpr.delete_bin(sessions, image_dir, "BIN-1", "Europe/Berlin")
    assert logged(sessions) == [("api_key", "truck-1", mine, "BIN-1", "evidence")]


def test_a_wrong_kind_or_access_is_refused(tmp_path):
    engine = make_engine(migrated(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    sessions = make_sessionmaker(engine)
    with pytest.raises(ValueError, match="unknown actor kind 'robot'; one of user, api_key, cli"):
        record_access(sessions, actor_kind="robot", actor="r2", inspection_id="i", bin_id=None, what="image")
    with pytest.raises(ValueError, match="unknown access 'thumbnail'; one of image, evidence, crop, notice, export"):
        record_access(sessions, actor_kind="user", actor="rita", inspection_id="i", bin_id=None, what="thumbnail")
    with pytest.raises(ValueError, match="needs the actor's name"):
        record_access(sessions, actor_kind="user", actor="", inspection_id="i", bin_id=None, what="image")
    assert access_log.entries(sessions) == []
    engine.dispose()


def test_the_command_prints_the_log_as_csv_filtered_by_bin_day_and_user(database_url, tmp_path):
    url = migrated(database_url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    for actor, bin_id in (("rita", "BIN-1"), ("otto", "BIN-1"), ("rita", "BIN-2")):
        record_access(sessions, actor_kind="user", actor=actor, inspection_id=f"{actor}-{bin_id}", bin_id=bin_id, what="image")
    with sessions.begin() as s:  # otto's look was a week ago
        s.execute(update(ImageAccess).where(ImageAccess.actor == "otto").values(at=datetime.now(timezone.utc) - timedelta(days=7)))
    assert [a.actor for a in access_log.entries(sessions, AccessQuery(bin_id="BIN-1"))] == ["otto", "rita"]  # oldest first
    engine.dispose()

    env = {**os.environ, "BINSIGHT_DATABASE_URL": url, "BINSIGHT_AUTO_MIGRATE": "true"}

    def run(*args):
        done = subprocess.run([sys.executable, "-m", "binsight.cli", "access-log", *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return list(csv.DictReader(io.StringIO(done.stdout)))

    rows = run("--bin", "BIN-1")
    assert [(r["actor"], r["inspection_id"], r["what"], r["actor_kind"]) for r in rows] == [("otto", "otto-BIN-1", "image", "user"), ("rita", "rita-BIN-1", "image", "user")]
    assert datetime.fromisoformat(rows[1]["at"]).tzinfo is not None
    assert [r["bin_id"] for r in run("--user", "rita")] == ["BIN-1", "BIN-2"]
    since = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
    assert [r["actor"] for r in run("--since", since, "--bin", "BIN-1")] == ["rita"]
    assert run("--user", "nobody") == []
