"""The reviewers' and admins' pages over HTTP: login, roles, CSRF, the queue, decisions, accounts.

The browser tests (tests/test_browser_review.py) drive the same pages with a
mouse and keyboard; these check the rules at the HTTP level, where every
refusal can be asserted exactly.
"""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from serve import accounts, auth, review
from serve.app import API_KEY_HEADER, create_app
from serve.db import Inspection, ReviewEvent
from serve.settings import ServeSettings
from tests.serve_helpers import form
from tests.test_serve_injected import SeeingDetector, photo

PASSWORD = "correct horse battery"


@pytest.fixture
def app(tmp_path, taxonomy):
    settings = ServeSettings(model_dir=tmp_path / "no-model", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                             image_dir=tmp_path / "images", auth_cache_s=0, review_qc_sample_rate=0.0, _env_file=None)  # fmt: skip
    return create_app(settings, detector=SeeingDetector(taxonomy.fractions))


@pytest.fixture
def client(app):
    with TestClient(app, follow_redirects=False) as c:
        sessions = app.state.sessions
        accounts.create_user(sessions, "ada", "admin", PASSWORD)
        accounts.create_user(sessions, "rita", "reviewer", PASSWORD)
        accounts.create_user(sessions, "otto", "reviewer", PASSWORD)
        c.truck_key = auth.create_key(sessions, "truck-1")
        yield c


def csrf_in(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def log_in(client: TestClient, name: str, password: str = PASSWORD, next_url: str = "/review"):
    page = client.get(f"/login?next={next_url}")
    assert page.status_code == 200
    return client.post("/login", data={"username": name, "password": password, "csrf_token": csrf_in(page.text), "next": next_url})


def distinct_photo(n: int) -> bytes:
    """A 320 x 240 textured photo of its own (the same bytes twice would be one image to the dataset)."""
    import numpy as np

    from tests.serve_helpers import jpeg_bytes

    blocks = np.random.default_rng(n).integers(60, 200, (30, 40, 3), dtype=np.uint8)
    return jpeg_bytes(np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1), quality=95)


def upload(client: TestClient, n: int, fraction: str = "biowaste", image: bytes | None = None, **fields) -> str:
    r = client.post("/v1/inspections", files={"image": ("p.jpg", image or photo(), "image/jpeg")},
                    data=form(capture_id=f"cap-{n}", fraction=fraction, **fields), headers={API_KEY_HEADER: client.truck_key})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_login_sets_a_protected_session_cookie_and_returns_to_the_page_asked_for(client):
    r = log_in(client, "rita", next_url="/review?fraction=paper")
    assert r.status_code == 303 and r.headers["location"] == "/review?fraction=paper"
    cookie = r.headers["set-cookie"]
    assert "binsight_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert client.get("/review").status_code == 200


def test_over_https_the_session_cookie_is_secure(app):
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as c:
        accounts.create_user(app.state.sessions, "rita", "reviewer", PASSWORD)
        assert "Secure" in log_in(c, "rita").headers["set-cookie"]


def test_a_wrong_password_is_refused_with_a_message_and_no_session(client):
    r = log_in(client, "rita", "not the password")
    assert r.status_code == 401 and "Wrong user name or password" in r.text and "binsight_session" not in r.headers.get("set-cookie", "")
    assert client.get("/review").status_code == 303


def test_repeated_failures_lock_the_login(client):
    for _ in range(5):
        log_in(client, "rita", "not the password")
    r = log_in(client, "rita")
    assert r.status_code == 401 and "too many failed attempts" in r.text


def test_the_login_form_needs_its_csrf_token(client):
    client.get("/login")
    r = client.post("/login", data={"username": "rita", "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 403 and "CSRF" in r.text


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example"])
def test_login_never_redirects_off_the_site(client, target):
    r = log_in(client, "rita", next_url=target)
    assert r.status_code == 303 and r.headers["location"] == "/review"


def test_pages_need_a_session_and_a_truck_key_opens_none(client):
    for path in ("/review", "/review/next", "/admin/users"):
        r = client.get(path, headers={API_KEY_HEADER: client.truck_key})
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_a_reviewer_session_does_not_open_the_truck_api(client):
    log_in(client, "rita")
    assert client.get("/v1/inspections").status_code == 401
    r = client.post("/v1/inspections", files={"image": ("p.jpg", photo(), "image/jpeg")}, data=form())
    assert r.status_code == 401


def test_a_reviewer_cannot_open_admin_pages(client):
    log_in(client, "rita")
    r = client.get("/admin/users")
    assert r.status_code == 403 and "Administrators only" in r.text
    page = client.get("/review")
    r = client.post("/admin/users", data={"username": "eve", "role": "admin", "password": PASSWORD, "csrf_token": csrf_in(page.text)})
    assert r.status_code == 403


def editor_data(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="review-data">(.*?)</script>', html, re.S).group(1))


def test_the_queue_shows_what_waits_and_a_decision_loads_the_next(client, app):
    first, second = upload(client, 1), upload(client, 2)
    upload(client, 3, fraction="residual")  # nothing is a contaminant in residual waste: clean, not sampled (rate 0)
    log_in(client, "rita")
    queue = client.get("/review")
    assert queue.status_code == 200 and ">2</strong> waiting" in queue.text

    item_url = client.get("/review/next").headers["location"]
    assert item_url.startswith("/review/items/")
    item = client.get(item_url)
    data = editor_data(item.text)
    assert data["editable"] and [b["label"] for b in data["boxes"]] == ["can", "cardboard"]
    assert data["contaminants"] == sorted(["plastic_bag", "plastic_bottle", "can", "glass", "cardboard"])
    current = item_url.split("/")[3].split("?")[0]
    assert current in (first, second)
    assert client.get(f"/review/items/{current}/image").headers["content-type"] == "image/jpeg"

    boxes = [dict(data["boxes"][0], label="glass"), {"label": "plastic_bag", "box": [200, 150, 260, 200], "score": None, "origin": None}]
    r = client.post(f"/review/items/{current}/decision", data={"csrf_token": csrf_in(item.text), "decision": "confirmed", "boxes": json.dumps(boxes), "note": "lid"})
    assert r.status_code == 303 and r.headers["location"].startswith("/review/next?decided=confirmed")
    nxt = client.get(r.headers["location"])
    other = second if current == first else first
    assert nxt.headers["location"].startswith(f"/review/items/{other}")
    assert "Confirmed. Here is the next one." in client.get(nxt.headers["location"]).text

    with app.state.sessions() as s:
        row = s.get(Inspection, current)
        event = s.scalars(select(ReviewEvent)).one()
    assert row.review_state == "confirmed" and [d["label"] for d in row.reviewed_detections] == ["glass", "plastic_bag"]
    assert event.user_name == "rita" and {c["change"] for c in event.changes} == {"relabelled", "deleted", "added"} and event.note == "lid"


def test_a_decision_without_csrf_token_is_refused_and_nothing_is_stored(client, app):
    inspection = upload(client, 1)
    log_in(client, "rita")
    client.get(f"/review/items/{inspection}")
    r = client.post(f"/review/items/{inspection}/decision", data={"decision": "confirmed"})
    assert r.status_code == 403 and "CSRF" in r.text
    with app.state.sessions() as s:
        assert s.get(Inspection, inspection).review_state is None


def test_bad_boxes_are_refused_with_the_reason(client, app):
    inspection = upload(client, 1)
    log_in(client, "rita")
    page = client.get(f"/review/items/{inspection}")
    bad = json.dumps([{"label": "banana", "box": [1, 1, 5, 5]}])
    r = client.post(f"/review/items/{inspection}/decision", data={"csrf_token": csrf_in(page.text), "decision": "confirmed", "boxes": bad})
    assert r.status_code == 400 and "unknown class" in r.text and "Nothing was stored" in r.text
    r = client.post(f"/review/items/{inspection}/decision", data={"csrf_token": csrf_in(page.text), "decision": "confirmed", "boxes": "{not json"})
    assert r.status_code == 400


def test_an_item_open_with_one_reviewer_is_read_only_for_another(client):
    inspection = upload(client, 1)
    log_in(client, "rita")
    assert editor_data(client.get(f"/review/items/{inspection}").text)["editable"]
    client.cookies.clear()
    log_in(client, "otto")
    page = client.get(f"/review/items/{inspection}")
    assert not editor_data(page.text)["editable"] and "rita is reviewing this one" in page.text
    assert client.get("/review/next").headers["location"].startswith("/review?")  # nothing else waits for otto
    r = client.post(f"/review/items/{inspection}/decision", data={"csrf_token": csrf_in(page.text), "decision": "rejected"})
    assert r.status_code == 409


def test_skip_gives_the_item_back_and_moves_on(client):
    a, b = upload(client, 1), upload(client, 2)
    log_in(client, "rita")
    first = client.get("/review/next").headers["location"].split("/")[3].split("?")[0]
    page = client.get(f"/review/items/{first}")
    r = client.post(f"/review/items/{first}/skip", data={"csrf_token": csrf_in(page.text)})
    nxt = client.get(r.headers["location"]).headers["location"]
    assert nxt.startswith(f"/review/items/{({a, b} - {first}).pop()}")


def test_an_admin_manages_accounts_in_the_browser(client):
    log_in(client, "ada")
    page = client.get("/admin/users")
    assert page.status_code == 200 and "rita" in page.text
    token = csrf_in(page.text)
    r = client.post("/admin/users", data={"csrf_token": token, "username": "rosa", "role": "reviewer", "password": "short"})
    assert r.status_code == 400 and "too short" in r.text
    r = client.post("/admin/users", data={"csrf_token": token, "username": "rosa", "role": "reviewer", "password": PASSWORD})
    assert r.status_code == 303
    assert client.post("/admin/users/rosa/state", data={"csrf_token": token, "disabled": "true"}).status_code == 303
    assert client.post("/admin/users/rosa/password", data={"csrf_token": token, "password": "another long one"}).status_code == 303
    r = client.post("/admin/users/nobody/password", data={"csrf_token": token, "password": "another long one"})
    assert r.status_code == 400 and "no user named" in r.text
    client.cookies.clear()
    assert "disabled" in log_in(client, "rosa", "another long one").text


def test_logout_ends_the_session_on_the_server(client):
    log_in(client, "rita")
    cookie = client.cookies.get("binsight_session")
    page = client.get("/review")
    r = client.post("/logout", data={"csrf_token": csrf_in(page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    client.cookies.set("binsight_session", cookie)  # the old cookie, replayed
    assert client.get("/review").status_code == 303


def test_the_whole_loop_upload_review_export_and_prepare_accepts_the_corrections(client, app, tmp_path):
    """Trucks upload, a reviewer confirms (correcting a class, drawing a box) and rejects in the pages,
    `export-reviewed` writes the dataset, and the prepare stage takes the corrected boxes."""
    from pathlib import Path

    from pipeline.config import PrepareConfig, load_taxonomy
    from pipeline.prepare import prepare
    from serve.export_reviewed import export_reviewed

    uploaded = [upload(client, n, image=distinct_photo(n), bin_id=f"E2004711{n:04d}") for n in range(8)]
    log_in(client, "rita")
    decided = {}
    for n in range(len(uploaded)):
        item_url = client.get("/review/next" if n == 0 else nxt).headers["location"]
        inspection_id = item_url.split("/")[3].split("?")[0]
        page = client.get(item_url)
        boxes = editor_data(page.text)["boxes"]
        if n == 0:  # confirm, the can corrected to glass, a bag drawn
            boxes = [dict(boxes[0], label="glass", score=None), boxes[1], {"label": "plastic_bag", "box": [200, 150, 260, 200], "score": None, "origin": None}]
            decision = "confirmed"
        elif n == 1:  # reject: no contaminant there
            decision = "rejected"
        else:
            decision = "confirmed"
        r = client.post(f"/review/items/{inspection_id}/decision", data={"csrf_token": csrf_in(page.text), "decision": decision, "boxes": json.dumps(boxes)})
        assert r.status_code == 303, r.text
        decided[inspection_id], nxt = (n, decision), r.headers["location"]
    assert sorted(decided) == sorted(uploaded)

    taxonomy = load_taxonomy(Path("configs/classes.yaml"))
    outcome = export_reviewed(app.state.sessions, app.state.settings.image_dir, tmp_path / "data", taxonomy)
    assert outcome.result.images_added == 8 and outcome.result.problems == []
    cfg = PrepareConfig(seed=1, val_share=0.2, test_share=0.2, drop_invalid=False, min_box_size=2.0, respect_source_splits=True)
    report = prepare(tmp_path / "data", tmp_path / "splits", tmp_path / "report.json", cfg, taxonomy)
    assert report["problems"] == [] and sum(s["images"] for s in report["splits"].values()) == 8

    doc = json.loads((tmp_path / "data" / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    labels_of = {}
    for im in doc["images"]:
        inspection_id = im["source"]["path"].split("/")[-1]
        labels_of[decided[inspection_id][0]] = sorted(names[a["category_id"]] for a in doc["annotations"] if a["image_id"] == im["id"])
    assert labels_of[0] == ["cardboard", "glass", "plastic_bag"]  # the correction and the drawn box
    assert labels_of[1] == []  # rejected: every box was a contaminant in biowaste
    assert labels_of[2] == ["can", "cardboard"]


@pytest.mark.parametrize("query", ["captured_to=9999-12-31", "captured_from=2026-13-01", "captured_to=yesterday"])
def test_a_bad_date_filter_is_a_clear_400(client, query):
    log_in(client, "rita")
    for path in ("/review", "/review/next"):
        r = client.get(f"{path}?{query}")
        assert r.status_code == 400 and "is not a date" in r.text


def test_a_page_showing_an_item_unreviewed_cannot_overwrite_a_decision_made_meanwhile(client, app):
    sessions, ttl = app.state.sessions, review.QueuePolicy(0.5).claim_ttl
    inspection = upload(client, 1)
    log_in(client, "rita")
    page = client.get(f"/review/items/{inspection}")  # rita's tab: not reviewed yet
    rita = accounts.session_for(sessions, client.cookies.get("binsight_session")).account
    otto = accounts.authenticate(sessions, "otto", PASSWORD, accounts.LockoutPolicy())
    review.release(sessions, inspection, rita)  # she skips it in another tab; otto decides it
    assert review.claim(sessions, inspection, otto, ttl)
    review.decide(sessions, inspection, otto, review.Decision("rejected", expected_state=None), SeeingDetector({}).class_names)
    assert review.claim(sessions, inspection, rita, ttl)  # and she holds it again (e.g. an admin's re-review)
    r = client.post(f"/review/items/{inspection}/decision", data={"csrf_token": csrf_in(page.text), "decision": "confirmed", "state_before": ""})
    assert r.status_code == 409 and "decided meanwhile" in r.text
    with sessions() as s:
        assert s.get(Inspection, inspection).review_state == "rejected"


def test_pages_forbid_framing_and_foreign_scripts(client):
    r = client.get("/login")
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"


def test_logging_in_again_ends_the_previous_session(client):
    log_in(client, "rita")
    first = client.cookies.get("binsight_session")
    # A login form left open in another tab (its CSRF cookie and field), posted while rita's session is live.
    client.cookies.set("binsight_login_csrf", "tab-token")
    r = client.post("/login", data={"username": "otto", "password": PASSWORD, "csrf_token": "tab-token", "next": "/review"})
    assert r.status_code == 303 and client.cookies.get("binsight_session") != first
    client.cookies.set("binsight_session", first)
    assert client.get("/review").status_code == 303  # the first session is gone on the server


def test_a_photo_deleted_by_retention_answers_410_with_a_message_not_a_500(client):
    inspection = upload(client, 1)
    log_in(client, "rita")
    assert client.get(f"/review/items/{inspection}/image").status_code == 200
    with client.app.state.sessions() as s:
        stored = client.app.state.settings.image_dir / s.get(Inspection, inspection).image_path
    stored.unlink()  # the file went, the row still names it: retention between its two steps, or a check and the read
    gone = client.get(f"/review/items/{inspection}/image")
    assert gone.status_code == 410 and "no longer stored: retention deleted it" in gone.text
    with client.app.state.sessions.begin() as s:
        s.get(Inspection, inspection).image_path = None  # retention's record of the deletion
    assert client.get(f"/review/items/{inspection}/image").status_code == 410
    unknown = client.get("/review/items/no-such-inspection/image")
    assert unknown.status_code == 404 and "There is no inspection no-such-inspection." in unknown.text
