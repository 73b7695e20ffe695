"""An upload's link to the bin registry (serve/bin_link.py) through the API and the review pages, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serve import accounts, auth
from serve.app import API_KEY_HEADER, create_app
from serve.bin_link import haversine_m
from serve.registry import import_bins, read_bins
from serve.settings import ServeSettings
from tests.serve_helpers import form, migrated
from tests.test_serve_injected import SeeingDetector, photo
from tests.test_serve_pages import PASSWORD, log_in

# The registry's bin stands at the position serve_helpers.form() sends.
REGISTRY = """rfid;address;district;route;fraction;latitude;longitude
E200A1B2C3D4;Hauptstr. 1;Mitte;R-12;biowaste;51,6739;7,8159
E2PAPER;Hauptstr. 3;Nord;R-7;paper;51,6739;7,8159
"""


@pytest.fixture
def app(tmp_path, taxonomy, database_url):
    settings = ServeSettings(model_dir=tmp_path / "no-model", database_url=migrated(database_url), image_dir=tmp_path / "images",
                             auth_cache_s=0, review_qc_sample_rate=0.0, bin_link_max_distance_m=75.0, _env_file=None)  # fmt: skip
    return create_app(settings, detector=SeeingDetector(taxonomy.fractions))


@pytest.fixture
def client(app, tmp_path):
    with TestClient(app, follow_redirects=False) as c:
        sessions = app.state.sessions
        (tmp_path / "bins.csv").write_text(REGISTRY)
        import_bins(sessions, read_bins(tmp_path / "bins.csv"))
        accounts.create_user(sessions, "rita", "reviewer", PASSWORD)
        c.headers[API_KEY_HEADER] = auth.create_key(sessions, "truck-1")
        yield c


def upload(client: TestClient, capture_id: str, **fields) -> dict:
    r = client.post("/v1/inspections", files={"image": ("p.jpg", photo(), "image/jpeg")}, data=form(capture_id=capture_id, **fields))
    assert r.status_code == 201, r.text
    return r.json()


def link_of(body: dict) -> tuple:
    return body["bin_link"], body["bin_link_reason"], body["district"], body["route"]


def test_an_upload_at_its_bin_is_linked_with_the_registry_district_and_route(client):
    body = upload(client, "c1", tour_id="T-2026-11-20-1")
    assert link_of(body) == ("linked", None, "Mitte", "R-12")
    assert body["bin_distance_m"] == 0.0 and body["tour_id"] == "T-2026-11-20-1"
    assert client.get(f"/v1/inspections/{body['id']}").json()["district"] == "Mitte"


def test_an_upload_without_rfid_is_stored_with_an_uncertain_link(client):
    body = upload(client, "c1", bin_id=None)
    assert body["bin_id"] is None and link_of(body) == ("uncertain", "missing_rfid", None, None)


def test_an_rfid_the_registry_does_not_know_is_uncertain(client):
    assert link_of(upload(client, "c1", bin_id="E2UNKNOWN")) == ("uncertain", "unknown_rfid", None, None)


def test_a_capture_far_from_the_bin_is_uncertain_and_says_how_far(client):
    body = upload(client, "c1", latitude="51.6749", longitude="7.8159")  # 0.001 degrees north: about 111 m
    assert link_of(body) == ("uncertain", "far_from_bin", "Mitte", "R-12")
    assert body["bin_distance_m"] == pytest.approx(haversine_m(51.6749, 7.8159, 51.6739, 7.8159), abs=0.1)
    assert 110 < body["bin_distance_m"] < 112
    near = upload(client, "c2", latitude="51.6743", longitude="7.8159")  # about 44 m: within the 75 m
    assert link_of(near) == ("linked", None, "Mitte", "R-12") and 44 < near["bin_distance_m"] < 45


def test_without_a_position_there_is_nothing_to_doubt(client):
    body = upload(client, "c1", latitude=None, longitude=None)
    assert link_of(body) == ("linked", None, "Mitte", "R-12") and body["bin_distance_m"] is None


def test_a_bin_registered_under_another_fraction_is_still_linked(client):
    body = upload(client, "c1", bin_id="E2PAPER", fraction="biowaste")
    assert link_of(body) == ("linked", None, "Nord", "R-7") and body["fraction"] == "biowaste"


def test_the_list_filters_by_district_route_and_link(client):
    mitte = upload(client, "c1")["id"]
    nord = upload(client, "c2", bin_id="E2PAPER", fraction="paper")["id"]
    unknown = upload(client, "c3", bin_id="E2UNKNOWN")["id"]

    def listed(**params) -> set[str]:
        r = client.get("/v1/inspections", params=params)
        assert r.status_code == 200, r.text
        return {i["id"] for i in r.json()["items"]}

    assert listed(district="Mitte") == {mitte}
    assert listed(route="R-7") == {nord}
    assert listed(bin_link="uncertain") == {unknown}
    assert listed(bin_link="linked", district="Nord") == {nord}
    refused = client.get("/v1/inspections", params={"bin_link": "maybe"})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "bin_link"


def test_the_review_pages_show_the_uncertain_link_and_filter_by_district_and_route(client):
    mitte = upload(client, "c1")["id"]
    nord = upload(client, "c2", bin_id="E2PAPER", fraction="paper")["id"]
    far = upload(client, "c3", latitude="51.6749", longitude="7.8159")["id"]
    log_in(client, "rita")

    page = client.get("/review").text
    assert page.count("uncertain link</span>") == 1 and 'title="uncertain link to the bin: far_from_bin"' in page
    assert '<option value="Mitte"' in page and '<option value="R-7"' in page
    by_district = client.get("/review", params={"district": "Mitte"}).text
    assert f"/review/items/{mitte}?district=Mitte" in by_district and f"/review/items/{far}" in by_district and nord not in by_district
    by_route = client.get("/review", params={"route": "R-7"}).text
    assert nord in by_route and mitte not in by_route
    # The filter travels: "next" keeps to the district.
    assert client.get("/review/next", params={"route": "R-7"}).headers["location"] == f"/review/items/{nord}?route=R-7"

    item = client.get(f"/review/items/{far}").text
    assert "uncertain link: far_from_bin" in item and "Taken 111 m from the bin's registered location" in item
    assert "<dt>District</dt><dd>Mitte</dd>" in item and "R-12" in item
    linked = client.get(f"/review/items/{mitte}").text
    assert "uncertain link" not in linked and "linked, 0 m away" in linked


def test_the_item_page_notes_a_bin_registered_under_another_fraction(client):
    other = upload(client, "c1", bin_id="E2PAPER", fraction="biowaste")["id"]
    log_in(client, "rita")
    assert "The registry lists this bin as <strong>paper</strong>; the truck collected biowaste." in client.get(f"/review/items/{other}").text


def test_the_item_page_of_a_photo_without_rfid_says_so(client):
    missing = upload(client, "c1", bin_id=None)["id"]
    log_in(client, "rita")
    page = client.get(f"/review/items/{missing}").text
    assert "uncertain link: missing_rfid" in page and "The truck read no RFID tag." in page and "— (no RFID read)" in page
