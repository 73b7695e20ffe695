"""Notices end to end over HTTP: trucks upload, reviewers confirm in the pages, the bin escalates, the letter reads back.

The detector is injected (tests/test_serve_injected.py): it sees a can and
cardboard in every photo, so biowaste photos are `contaminated`. The bin is
put in the registry directly (a `Bin` row). Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pypdf import PdfReader
from sqlalchemy import select

from serve import accounts, auth
from serve.app import create_app
from serve.db import Bin, ImageAccess, Inspection, Notice
from serve import letters
from serve.crop_areas import plan_crops
from serve.notice_config import load_notice_config
from serve.settings import ServeSettings
from tests.test_serve_injected import CAN_BOX, HEIGHT, WIDTH, SeeingDetector
from tests.test_serve_pages import PASSWORD, csrf_in, distinct_photo, log_in, upload

RFID = "E200A1B2C3D4"  # tests/serve_helpers.py form()'s bin
ADDRESS = "Südstraße 12, 59065 Hamm"
CONFIG = load_notice_config("serve/defaults/notices/escalation.yaml")
WINDOW = timedelta(days=CONFIG.rules("biowaste").window_days)


@pytest.fixture
def client(tmp_path, taxonomy, database_url):
    settings = ServeSettings(model_dir=tmp_path / "no-model", database_url=database_url, auto_migrate=True, image_dir=tmp_path / "images",
                             auth_cache_s=0, review_qc_sample_rate=0.0, _env_file=None)  # fmt: skip
    app = create_app(settings, detector=SeeingDetector(taxonomy.fractions))
    with TestClient(app, follow_redirects=False) as c:
        sessions = app.state.sessions
        accounts.create_user(sessions, "ada", "admin", PASSWORD)
        accounts.create_user(sessions, "rita", "reviewer", PASSWORD)
        c.truck_key = auth.create_key(sessions, "truck-1")
        with sessions.begin() as s:  # at the uploads' GPS position (tests/serve_helpers.py form())
            s.add(Bin(rfid=RFID, address=ADDRESS, district="Mitte", route="R1", fraction="biowaste", latitude=51.6739, longitude=7.8159,
                      updated_at=datetime.now(timezone.utc)))  # fmt: skip
        yield c


def linked_upload(client, n: int, **fields) -> str:
    """An upload of the registry's bin at its registered place: the service links it at upload time."""
    inspection = upload(client, n, image=distinct_photo(n), **fields)
    with client.app.state.sessions() as s:
        row = s.get(Inspection, inspection)
    assert row.verdict == "contaminated" and row.bin_link == "linked", (row.verdict, row.bin_link, row.bin_link_reason)
    return inspection


def uncertain_upload(client, n: int, reason: str, **fields) -> str:
    """An upload the service itself links as uncertain (unknown RFID, or GPS far from the registered bin)."""
    inspection = upload(client, n, image=distinct_photo(n), **fields)
    with client.app.state.sessions() as s:
        row = s.get(Inspection, inspection)
    assert row.verdict == "contaminated" and (row.bin_link, row.bin_link_reason) == ("uncertain", reason)
    return inspection


CAN_ONLY = [{"label": "can", "box": list(CAN_BOX), "score": 0.9, "origin": 0}]


def decide(client, inspection: str, decision: str = "confirmed", boxes=CAN_ONLY):
    """The reviewer opens the item (claiming it) and decides, as the page's form does; the redirect to the next item."""
    page = client.get(f"/review/items/{inspection}")
    assert page.status_code == 200
    form = {"csrf_token": csrf_in(page.text), "decision": decision, "state_before": ""}
    if boxes is not None:
        form["boxes"] = json.dumps(boxes)
    r = client.post(f"/review/items/{inspection}/decision", data=form)
    assert r.status_code == 303, r.text
    return r


def notice_of(client, inspection: str) -> Notice | None:
    with client.app.state.sessions() as s:
        return s.scalar(select(Notice).where(Notice.inspection_id == inspection))


def test_three_confirmed_findings_make_three_levels_a_fourth_stays_and_after_the_window_it_starts_again(client):
    log_in(client, "rita")
    found = [linked_upload(client, n) for n in range(1, 5)]
    redirects = [decide(client, inspection) for inspection in found]
    levels = [notice_of(client, inspection).level for inspection in found]
    assert levels == [1, 2, 3, 3]
    assert [notice_of(client, i).action for i in found] == ["information", "warning", "not_emptied_fee", "not_emptied_fee"]
    assert all(notice_of(client, i).contaminants == ["can"] and notice_of(client, i).issued_by == "rita" for i in found)
    assert "notice=1" in redirects[0].headers["location"] and "notice=3" in redirects[3].headers["location"]
    assert "A notice of level 3 was issued" in client.get(client.get(redirects[3].headers["location"]).headers["location"]).text

    # The window passes without a finding: the bin's record resets.
    with client.app.state.sessions.begin() as s:
        for notice in s.scalars(select(Notice)):
            notice.issued_at = notice.issued_at - WINDOW - timedelta(days=1)
    later = linked_upload(client, 5)
    decide(client, later)
    assert notice_of(client, later).level == 1


def test_an_uncertain_link_a_rejection_and_an_unusable_photo_make_no_notice(client):
    log_in(client, "rita")
    far = uncertain_upload(client, 1, "far_from_bin", latitude="51.6760")  # about 230 m north of the registered bin
    r = decide(client, far)
    assert notice_of(client, far) is None and "notice=uncertain" in r.headers["location"]
    landing = client.get(client.get(r.headers["location"]).headers["location"])  # the queue (nothing else waits) says why
    assert "No notice to the household: the photo&#39;s link to the bin is uncertain" in landing.text
    unknown = uncertain_upload(client, 5, "unknown_rfid", bin_id="E200FFFFFFFF")  # an RFID the registry does not hold
    r = decide(client, unknown)
    assert notice_of(client, unknown) is None and "notice=uncertain" in r.headers["location"]

    rejected, unusable = linked_upload(client, 2), linked_upload(client, 3)
    decide(client, rejected, "rejected", boxes=None)
    decide(client, unusable, "unusable", boxes=None)
    assert notice_of(client, rejected) is None and notice_of(client, unusable) is None

    confirmed = linked_upload(client, 4)  # the first notice of the bin after all of them: level 1
    decide(client, confirmed)
    assert notice_of(client, confirmed).level == 1


def test_the_letter_pdf_names_the_bin_the_contaminant_and_the_date_and_holds_only_the_crop(client):
    log_in(client, "rita")
    inspection = linked_upload(client, 1)
    decide(client, inspection)
    notice = notice_of(client, inspection)

    r = client.get(f"/notices/{notice.id}.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    pdf = PdfReader(io.BytesIO(r.content))
    text = "\n".join(page.extract_text() for page in pdf.pages)
    with client.app.state.sessions() as s:
        row = s.get(Inspection, inspection)
    day = row.captured_at.replace(tzinfo=timezone.utc).astimezone(ZoneInfo("Europe/Berlin")).strftime("%d.%m.%Y")
    assert RFID in text and ADDRESS in text and day in text
    assert "Metall (Dose, Deckel, Folie)" in text and "Pappe" not in text  # the reviewer left only the can
    assert "Verwarnung" not in text and "Information" in text and "Obst- und Gemüsereste" in text

    images = [image for page in pdf.pages for image in page.images]
    assert len(images) == 1
    [(left, top, right, bottom)] = plan_crops([list(CAN_BOX)], WIDTH, HEIGHT, CONFIG.crop_margin, CONFIG.crop_max_share).areas
    assert images[0].image.size == (right - left, bottom - top) != (WIDTH, HEIGHT)
    # The crop shows the can's part of the photo, not another one.
    photo = np.asarray(Image.open(io.BytesIO(distinct_photo(1))).convert("RGB"), dtype=float)
    shown = np.asarray(images[0].image.convert("RGB"), dtype=float)
    here = np.abs(shown - photo[top:bottom, left:right]).mean()  # JPEG twice over: close, not equal
    elsewhere = np.abs(shown - photo[HEIGHT - (bottom - top):, WIDTH - (right - left):]).mean()
    assert here < 12 and elsewhere > 3 * here, (here, elsewhere)


def pdf_images(client, notice) -> list:
    r = client.get(f"/notices/{notice.id}.pdf")
    assert r.status_code == 200, r.text
    pdf = PdfReader(io.BytesIO(r.content))
    assert len(pdf.pages) == 1
    return [image.image for page in pdf.pages for image in page.images]


def test_two_boxes_in_opposite_corners_make_two_small_crops_not_the_whole_frame(client):
    log_in(client, "rita")
    inspection = linked_upload(client, 1)
    corners = [[8.0, 8.0, 58.0, 58.0], [262.0, 182.0, 312.0, 232.0]]  # top left, bottom right of the 320 x 240 photo
    decide(client, inspection, boxes=[{"label": "can", "box": b, "score": None, "origin": None} for b in corners])
    notice = notice_of(client, inspection)

    html = client.get(f"/notices/{notice.id}").text
    assert html.count('src="data:image/jpeg;base64,') == 2 and "Ausschnitte mit den Störstoffen" in html
    images = pdf_images(client, notice)
    assert len(images) == 2
    frame = WIDTH * HEIGHT
    assert all(image.width * image.height <= CONFIG.crop_max_share * frame for image in images)
    areas = plan_crops(corners, WIDTH, HEIGHT, CONFIG.crop_margin, CONFIG.crop_max_share).areas
    assert sorted(image.size for image in images) == sorted((r - l, b - t) for l, t, r, b in areas)
    covered = np.zeros((HEIGHT, WIDTH), bool)
    for left, top, right, bottom in areas:
        covered[top:bottom, left:right] = True
    assert covered.mean() < 0.2  # the union of the crops is two corners, far from the whole frame
    # Each crop shows its own corner of the photo (the letter keeps the plan's order), not the other one.
    photo = np.asarray(Image.open(io.BytesIO(distinct_photo(1))).convert("RGB"), dtype=float)
    for shown, (left, top, right, bottom), (l2, t2, r2, b2) in zip(images, areas, areas[::-1], strict=True):
        pixels = np.asarray(shown.convert("RGB"), dtype=float)
        here, there = np.abs(pixels - photo[top:bottom, left:right]).mean(), np.abs(pixels - photo[t2:b2, l2:r2]).mean()
        assert here < 12 and there > 3 * here, (here, there)


def test_a_photo_deleted_while_the_letter_is_made_gives_the_letter_without_it(client, monkeypatch):
    log_in(client, "rita")
    inspection = linked_upload(client, 1)
    decide(client, inspection)
    notice = notice_of(client, inspection)
    opened = letters.open_upright

    def retention_strikes(path):  # retention deletes the photo after the letter looked for it, before it is read
        Path(path).unlink()
        return opened(path)

    monkeypatch.setattr(letters, "open_upright", retention_strikes)
    page = client.get(f"/notices/{notice.id}")
    assert page.status_code == 200 and "Das Foto dieser Leerung ist nicht mehr gespeichert." in page.text
    assert "data:image/jpeg" not in page.text
    monkeypatch.undo()
    assert pdf_images(client, notice) == []


def test_an_unreadable_photo_makes_an_error_page_naming_it(client):
    log_in(client, "rita")
    inspection = linked_upload(client, 1)
    decide(client, inspection)
    notice = notice_of(client, inspection)
    with client.app.state.sessions() as s:
        stored = client.app.state.settings.image_dir / s.get(Inspection, inspection).image_path
    stored.write_bytes(b"not a JPEG")
    page = client.get(f"/notices/{notice.id}.pdf")
    assert page.status_code == 500 and "The letter could not be made" in page.text
    assert f"the stored photo {stored} cannot be read" in page.text


def test_the_html_letter_embeds_the_crop_and_every_opening_is_logged(client):
    log_in(client, "rita")
    inspection = linked_upload(client, 1)
    decide(client, inspection)
    notice = notice_of(client, inspection)
    page = client.get(f"/notices/{notice.id}")
    assert page.status_code == 200 and page.headers["content-security-policy"].startswith("default-src 'self'; img-src 'self' data:")
    assert page.text.count('src="data:image/jpeg;base64,') == 1 and "Metall (Dose, Deckel, Folie)" in page.text and ADDRESS in page.text
    client.get(f"/notices/{notice.id}.pdf")
    with client.app.state.sessions() as s:
        logged = list(s.scalars(select(ImageAccess).where(ImageAccess.what == "notice")))
    assert [(a.actor, a.actor_kind, a.inspection_id, a.bin_id) for a in logged] == [("rita", "user", inspection, RFID)] * 2
    assert client.get("/notices/no-such-notice").status_code == 404


def test_bins_per_level_and_a_bins_history_with_a_withdrawal(client):
    log_in(client, "rita")
    found = [linked_upload(client, n) for n in range(1, 3)]
    for inspection in found:
        decide(client, inspection)
    overview = client.get("/notices")
    assert overview.status_code == 200 and "Level 2: Verwarnung" in overview.text and f'/bins/{RFID}"' in overview.text
    assert "Level 1:" not in overview.text  # a bin is listed at its current level only

    history = client.get(f"/bins/{RFID}")
    second = notice_of(client, found[1])
    assert history.status_code == 200 and ADDRESS in history.text and "level 2 of 3, Verwarnung" in history.text
    assert f'/notices/{second.id}.pdf"' in history.text and history.text.count("<span class=\"badge confirmed\">counts</span>") == 2
    assert "Withdraw</button>" not in history.text  # reviewers see notices; only admins withdraw
    assert client.post(f"/notices/{second.id}/withdraw", data={"csrf_token": csrf_in(history.text)}).status_code == 403

    client.cookies.clear()
    log_in(client, "ada")
    page = client.get(f"/bins/{RFID}")
    assert client.post(f"/notices/{second.id}/withdraw", data={}).status_code == 403  # no CSRF token
    r = client.post(f"/notices/{second.id}/withdraw", data={"csrf_token": csrf_in(page.text)})
    assert r.status_code == 303 and r.headers["location"] == f"/bins/{RFID}?done=withdrawn"
    withdrawn = notice_of(client, found[1])
    assert withdrawn.withdrawn_by == "ada" and withdrawn.withdrawn_at is not None
    assert "level 1 of 3, Information" in client.get(r.headers["location"]).text
    again = client.post(f"/notices/{second.id}/withdraw", data={"csrf_token": csrf_in(page.text)})
    assert again.status_code == 409 and "withdrawn already" in again.text

    third = linked_upload(client, 3)  # the withdrawn notice does not count: level 2 again, not 3
    decide(client, third)
    assert notice_of(client, third).level == 2


def test_notice_pages_are_for_staff_only(client):
    for path in ("/notices", f"/bins/{RFID}", "/notices/x", "/notices/x.pdf"):
        r = client.get(path, headers={"X-API-Key": client.truck_key})
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    log_in(client, "rita")
    assert client.get("/bins/NOT-A-BIN").status_code == 404
