"""Who may do what on the truck API and /metrics: keys bound to a truck, fleet keys, the operator's scraper."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from serve import accounts, auth, review
from serve.app import API_KEY_HEADER, create_app
from serve.settings import ServeSettings
from tests.serve_helpers import form
from tests.test_serve_injected import SeeingDetector, photo


@pytest.fixture
def app(tmp_path, taxonomy):
    settings = ServeSettings(model_dir=tmp_path / "no-model", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                             image_dir=tmp_path / "images", auth_cache_s=0, _env_file=None)  # fmt: skip
    return create_app(settings, detector=SeeingDetector(taxonomy.fractions))


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        s = app.state.sessions
        c.keys = {"t1": auth.create_key(s, "truck-1", truck_id="T1"), "t2": auth.create_key(s, "truck-2", truck_id="T2"),
                  "fleet": auth.create_key(s, "depot")}  # fmt: skip
        yield c


def upload(client, key: str, truck: str, capture: str):
    return client.post("/v1/inspections", files={"image": ("p.jpg", photo(), "image/jpeg")},
                       data=form(capture_id=capture, truck_id=truck), headers={API_KEY_HEADER: client.keys[key]})  # fmt: skip


def test_a_trucks_key_posts_only_as_that_truck(client):
    assert upload(client, "t1", "T1", "c1").status_code == 201
    r = upload(client, "t1", "T2", "c2")
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_truck" and r.json()["error"]["field"] == "truck_id"
    assert upload(client, "fleet", "T2", "c3").status_code == 201  # a fleet key posts for any truck


def test_a_replay_under_another_trucks_key_shows_nothing(client):
    assert upload(client, "t1", "T1", "same").status_code == 201
    assert upload(client, "t2", "T1", "same").status_code == 403  # refused before the retry lookup


def test_a_truck_reads_back_only_its_own_inspections(client):
    own = upload(client, "t1", "T1", "c1").json()["id"]
    other = upload(client, "t2", "T2", "c1").json()["id"]
    h1 = {API_KEY_HEADER: client.keys["t1"]}
    assert [i["id"] for i in client.get("/v1/inspections", headers=h1).json()["items"]] == [own]
    assert client.get("/v1/inspections?truck_id=T2", headers=h1).status_code == 403
    for suffix in ("", "/image", "/evidence"):
        assert client.get(f"/v1/inspections/{own}{suffix}", headers=h1).status_code == 200
        r = client.get(f"/v1/inspections/{other}{suffix}", headers=h1)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    fleet = client.get("/v1/inspections", headers={API_KEY_HEADER: client.keys["fleet"]}).json()
    assert sorted(i["id"] for i in fleet["items"]) == sorted([own, other])


def test_the_review_state_shows_in_the_truck_api_and_filters_the_list(client, app):
    first = upload(client, "fleet", "T1", "c1").json()["id"]
    second = upload(client, "fleet", "T1", "c2").json()["id"]
    h = {API_KEY_HEADER: client.keys["fleet"]}
    assert client.get(f"/v1/inspections/{first}", headers=h).json()["review_state"] is None
    rita = accounts.create_user(app.state.sessions, "rita", "reviewer", "correct horse battery")
    review.claim(app.state.sessions, first, rita, review.QueuePolicy(0.5).claim_ttl)
    review.decide(app.state.sessions, first, rita, review.Decision("rejected"), SeeingDetector({}).class_names)
    assert client.get(f"/v1/inspections/{first}", headers=h).json()["review_state"] == "rejected"
    assert [i["id"] for i in client.get("/v1/inspections?review_state=rejected", headers=h).json()["items"]] == [first]
    assert [i["id"] for i in client.get("/v1/inspections?review_state=unreviewed", headers=h).json()["items"]] == [second]
    assert client.get("/v1/inspections?review_state=maybe", headers=h).status_code == 422


def test_metrics_answer_only_this_host_without_a_token(app):
    with TestClient(app, client=("203.0.113.9", 40000)) as far, TestClient(app, client=("127.0.0.1", 40000)) as near:
        r = far.get("/metrics")
        assert r.status_code == 403 and "BINSIGHT_METRICS_TOKEN" in r.json()["error"]["message"]
        assert near.get("/metrics").status_code == 200


def test_metrics_need_the_bearer_token_when_one_is_set(app):
    app.state.settings = app.state.settings.model_copy(update={"metrics_token": SecretStr("s3cret")})
    with TestClient(app, client=("127.0.0.1", 40000)) as c:
        assert c.get("/metrics").status_code == 401  # a token is set: loopback alone is not enough
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        r = c.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and "binsight_request_seconds" in r.text


def test_a_truck_key_opens_no_page_and_a_session_no_truck_endpoint(client, app):
    r = client.get("/review", headers={API_KEY_HEADER: client.keys["fleet"]}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
