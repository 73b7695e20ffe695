"""Notices in a real browser: the level overview, a bin's history, a letter and its PDF, an uncertain link, a withdrawal.

tests/test_notices_e2e.py checks the notices' rules over HTTP; here headless
Chromium opens the pages a reviewer and an administrator use, against a live
server (tests/test_browser_review.py's `site`, `browser` and `page`), so what
only a browser sees is checked too: the letter's evidence image decodes under
the page's Content-Security-Policy and is the crop (not the photo), the PDF
comes through the browser's own session, the withdraw form posts its CSRF token.

Seeded once per module: one registry bin (a `Bin` row), three uploads of it
that a reviewer confirms over HTTP with the e2e test's `decide` (notices of
levels 1, 2 and 3), and one upload of a bin the registry does not know (an
uncertain link). Screenshots go to build/screenshots/ for a person to look at.

Needs Chromium and the playwright package, like tests/test_browser_review.py
(whose import skips this module without them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx
import pytest
from sqlalchemy import select

from serve.crop_areas import plan_crops
from serve.db import Bin, Inspection, Notice, as_utc
from tests.test_browser_review import (  # noqa: F401 (browser, page, site: fixtures used by name)
    PASSWORD,
    SCREENSHOTS,
    Site,
    browser,
    log_in,
    page,
    site,
    sync_api,
)
from tests.test_notices_e2e import ADDRESS, CONFIG, RFID, decide
from tests.test_serve_injected import CAN_BOX, HEIGHT, WIDTH
from tests.test_serve_pages import log_in as log_in_over_http

expect = sync_api.expect
pytestmark = pytest.mark.browser

TRUCK = "HAM-EB-301"
UNKNOWN_RFID = "E200DEADBEEF"  # not in the registry: its upload's link to a bin is uncertain
TITLES = [level.title for level in CONFIG.rules("biowaste").levels]  # Information, Verwarnung, Nichtleerung und Gebühr


@dataclass(frozen=True)
class Seeded:
    findings: list[str]  # the registry bin's confirmed inspections, oldest first
    notices: list[Notice]  # theirs, levels 1, 2, 3
    uncertain: str  # the inspection of the unknown bin


@pytest.fixture(scope="module")
def seeded(site: Site) -> Seeded:
    with site.sessions.begin() as s:  # at the uploads' GPS position (tests/serve_helpers.py form()), so they link
        s.add(Bin(rfid=RFID, address=ADDRESS, district="Mitte", route="R1", fraction="biowaste", latitude=51.6739, longitude=7.8159,
                  updated_at=datetime.now(timezone.utc)))  # fmt: skip
    # 320 x 240 photos: the detector's can lies at CAN_BOX there, the box `decide` confirms.
    findings = [site.upload(TRUCK, n, size=(WIDTH, HEIGHT)) for n in range(3)]
    uncertain = site.upload(TRUCK, 3, size=(WIDTH, HEIGHT), bin_id=UNKNOWN_RFID)
    with httpx.Client(base_url=site.url, follow_redirects=False, timeout=30) as client:
        assert log_in_over_http(client, "rita", PASSWORD).status_code == 303
        for inspection in findings:
            decide(client, inspection)
    with site.sessions() as s:
        links = {i: (row.bin_link, row.bin_link_reason) for i in (*findings, uncertain) if (row := s.get(Inspection, i))}
        by_inspection = {n.inspection_id: n for n in s.scalars(select(Notice))}
    assert links == {**{i: ("linked", None) for i in findings}, uncertain: ("uncertain", "unknown_rfid")}
    notices = [by_inspection[i] for i in findings]
    assert [n.level for n in notices] == [1, 2, 3] and len(by_inspection) == 3  # the uncertain one is not decided: no notice
    return Seeded(findings, notices, uncertain)


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def notices_table(page):
    """The bin page's table of notices (the page has a second one, of inspections)."""
    return page.locator("h2:has-text('Notices') + table")


def test_the_notices_page_lists_the_bin_under_level_3_and_names_every_level(site, seeded, page):
    log_in(page, site, "rita", "/notices")
    # Staff see the whole scale by its configured names, also the levels that hold no bin now.
    scale = page.get_by_role("list", name="Escalation levels").locator("li")
    expect(scale).to_have_text([f"Level 1 · {TITLES[0]} 0 bins", f"Level 2 · {TITLES[1]} 0 bins", f"Level 3 · {TITLES[2]} 1 bin"])
    expect(page.locator("main h2")).to_have_text([f"Level 3: {TITLES[2]} 1 bin"])  # a table only for the level with a bin
    scale.nth(2).get_by_role("link").click()  # the scale's entry leads to its level's table
    expect(page).to_have_url(re.compile(r"/notices#level-3$"))
    third = page.locator(f"h2#level-3:has-text('Level 3: {TITLES[2]}') + table")
    expect(third.locator(f"a[href$='/bins/{RFID}']")).to_have_text(RFID)
    expect(third.locator("tbody tr")).to_have_count(1)
    expect(third.locator("tbody tr td").nth(1)).to_have_text(ADDRESS)
    expect(third.locator("tbody td.num")).to_have_text("3")  # three notices in the bin's record
    expect(page.locator(f"a[href$='/bins/{RFID}']")).to_have_count(1)  # listed at its current level only
    screenshot(page, "notices.png")

    third.locator("tbody tr").click()  # the row leads to the bin (review.js data-href)
    page.wait_for_url(f"{site.url}/bins/{RFID}")


def test_the_bins_page_lists_its_three_notices_with_their_letters(site, seeded, page):
    log_in(page, site, "rita", f"/bins/{RFID}")
    expect(page.locator("ul.standings")).to_contain_text(f"level 3 of 3, {TITLES[2]}")
    rows = notices_table(page).locator("tbody tr")
    expect(rows).to_have_count(3)
    newest_first = seeded.notices[::-1]
    for row, notice in zip([rows.nth(i) for i in range(3)], newest_first, strict=True):
        expect(row.locator("td").nth(1)).to_have_text(f"{notice.level} · {TITLES[notice.level - 1]}")
        expect(row.locator("td").nth(2)).to_have_text(CONFIG.german_name("can"))
        expect(row.locator("td").nth(4)).to_have_text("counts")
        expect(row.get_by_role("link", name="HTML")).to_have_attribute("href", re.compile(rf"/notices/{notice.id}$"))
        expect(row.get_by_role("link", name="PDF")).to_have_attribute("href", re.compile(rf"/notices/{notice.id}\.pdf$"))
    expect(page.get_by_role("button", name="Withdraw")).to_have_count(0)  # reviewers see notices; only admins withdraw
    expect(page.get_by_text("Withdraw a notice when an appeal is upheld")).to_have_count(0)  # nor the advice on withdrawing
    inspections = page.locator("h2:has-text('Inspections') + table tbody tr")
    expect(inspections).to_have_count(3)  # the unknown bin's inspection is not this bin's
    expect(inspections.locator("td:last-child")).to_have_text(["level 3", "level 2", "level 1"])
    screenshot(page, "bin_history.png")

    notices_table(page).locator("tbody tr").nth(2).get_by_role("link", name="HTML").click()
    page.wait_for_url(f"{site.url}/notices/{seeded.notices[0].id}")  # the link opens the letter itself
    expect(page.locator("h1")).to_have_text(f"{TITLES[0]}: Störstoffe in Ihrer Biotonne")


def test_a_letter_names_the_contaminant_the_bin_and_the_day_and_shows_only_the_crop(site, seeded, page):
    notice = seeded.notices[2]
    log_in(page, site, "rita", f"/notices/{notice.id}")
    facts = page.locator("p.facts")
    with site.sessions() as s:
        captured = as_utc(s.get(Inspection, notice.inspection_id).captured_at).astimezone(CONFIG.zone)
    expect(facts).to_contain_text(f"Tonne: {RFID}, {ADDRESS}")
    expect(facts).to_contain_text(f"Leerung am: {captured:%d.%m.%Y} um {captured:%H:%M} Uhr")  # local time, not UTC
    expect(facts).to_contain_text(f"Gefunden: {CONFIG.german_name('can')}")
    expect(facts).to_contain_text(f"Stufe: 3 von 3, {TITLES[2]}")
    expect(page.locator("h1")).to_have_text(f"{TITLES[2]}: Störstoffe in Ihrer Biotonne")

    # One crop around the can: decoded (the CSP allows data: images), at the crop's size, far smaller than the 320 x 240 photo.
    images = page.locator("img")
    expect(images).to_have_count(1)
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    size = images.first.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    [(left, top, right, bottom)] = plan_crops([list(CAN_BOX)], WIDTH, HEIGHT, CONFIG.crop_margin, CONFIG.crop_max_share).areas
    assert size == [right - left, bottom - top], size
    assert size[0] * size[1] <= CONFIG.crop_max_share * WIDTH * HEIGHT and size[0] < WIDTH and size[1] < HEIGHT
    shown = images.first.bounding_box()
    assert shown["width"] > 50 and shown["height"] > 50, shown  # visible, not squeezed to nothing by the layout
    screenshot(page, "letter.png")


def test_the_letters_pdf_comes_through_the_browsers_session(site, seeded, page, tmp_path):
    notice = seeded.notices[2]
    log_in(page, site, "rita", f"/bins/{RFID}")
    answer = page.request.get(site.url + f"/notices/{notice.id}.pdf", max_redirects=0)  # the context's session cookie
    assert answer.status == 200, answer.text()[:300]
    assert answer.headers["content-type"] == "application/pdf"
    pdf = answer.body()
    assert pdf.startswith(b"%PDF-")
    assert f'filename="hinweis-{RFID}-' in answer.headers["content-disposition"]
    stranger = page.context.browser.new_context()  # no session cookie
    try:
        logged_out = stranger.request.get(site.url + f"/notices/{notice.id}.pdf", max_redirects=0)
    finally:
        stranger.close()
    assert logged_out.status == 303 and logged_out.headers["location"].startswith("/login?next=")  # not without a session
    if shutil.which("pdftoppm"):  # for a person to look at only; nothing is asserted on the picture
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (tmp_path / "letter.pdf").write_bytes(pdf)
        subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", str(tmp_path / "letter.pdf"),
                        str(SCREENSHOTS / "letter_pdf")], check=True, timeout=60)  # fmt: skip


def test_the_review_page_of_an_unknown_bins_photo_says_its_link_is_uncertain(site, seeded, page):
    log_in(page, site, "rita", f"/review/items/{seeded.uncertain}")
    warning = page.locator("p.message.warning", has=page.locator(".badge.uncertain"))
    expect(warning.locator(".badge.uncertain")).to_have_text("uncertain link: unknown_rfid")
    expect(warning).to_contain_text("The registry has no bin with this RFID.")
    expect(warning).to_contain_text("it will not escalate")
    expect(page.locator("dl.meta dd").first).to_have_text(UNKNOWN_RFID)  # the RFID read, without "linked"
    page.wait_for_function("() => { const p = document.getElementById('photo'); return p && p.complete && p.naturalWidth > 0 }")
    screenshot(page, "item_uncertain.png")


def test_an_admin_withdraws_a_notice_on_the_bins_page_and_the_bin_drops_a_level(site, seeded, page):
    """Last in the module: it changes the seeded bin's record."""
    third = seeded.notices[2]
    log_in(page, site, "ada", f"/bins/{RFID}")
    row = notices_table(page).locator("tbody tr").first  # newest first: level 3
    expect(row.locator("td").nth(1)).to_have_text(f"3 · {TITLES[2]}")
    expect(notices_table(page).get_by_role("button", name="Withdraw")).to_have_count(3)
    expect(page.get_by_text("Withdraw a notice when an appeal is upheld")).to_be_visible()
    row.get_by_role("button", name="Withdraw").click()
    page.wait_for_url(f"{site.url}/bins/{RFID}?done=withdrawn")
    expect(page.locator(".message.success")).to_contain_text("Notice withdrawn")
    expect(page.locator("ul.standings")).to_contain_text(f"level 2 of 3, {TITLES[1]}")
    expect(row.locator("td").nth(4)).to_contain_text("withdrawn by ada")
    expect(row.get_by_role("button", name="Withdraw")).to_have_count(0)
    expect(notices_table(page).locator("td:nth-child(5) .badge")).to_have_text(["withdrawn", "counts", "counts"])
    screenshot(page, "bin_withdrawn.png")
    with site.sessions() as s:
        stored = s.get(Notice, third.id)
        assert stored.withdrawn_by == "ada" and stored.withdrawn_at is not None

    page.goto(site.url + "/notices")  # the overview moves the bin down to level 2
    expect(page.locator(f"h2:has-text('Level 2: {TITLES[1]}') + table a[href$='/bins/{RFID}']")).to_have_count(1)
    expect(page.get_by_role("list", name="Escalation levels").locator("li").nth(2)).to_contain_text("0 bins")
    expect(page.locator(f"a[href$='/bins/{RFID}']")).to_have_count(1)
