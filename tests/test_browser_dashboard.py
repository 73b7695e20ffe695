"""The statistics dashboard in a real browser: the charts load under the page's Content-Security-Policy.

An SVG served with the wrong content type, or refused by the policy, is a
broken image in the browser while every HTTP-level test still passes; here
headless Chromium opens the page and checks that each chart decoded. Saves
build/screenshots/dashboard.png for a person to look at.

Needs Chromium and the playwright package, like tests/test_browser_review.py.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("BINSIGHT_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(f"Chromium not found at {CHROMIUM}: install the Debian package `chromium` or set BINSIGHT_CHROMIUM", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed: pip install -e '.[test]'")

import numpy as np  # noqa: E402

from pipeline.config import load_taxonomy  # noqa: E402
from serve import accounts  # noqa: E402
from serve.app import create_app  # noqa: E402
from serve.settings import ServeSettings  # noqa: E402
from tests.browser_helpers import AnySizeSeeingDetector, live_server  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.stats_helpers import add_all, box, inspection  # noqa: E402

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
SCREENSHOTS = REPO / "build" / "screenshots"
DISTRICTS = {"Mitte": ("R1", "HAM-101"), "Nord": ("R2", "HAM-102"), "Süd": ("R3", "HAM-103"), "Heessen": ("R4", "HAM-104")}


def a_city(sessions, weeks: int = 10) -> None:
    """Weeks of inspections in four districts with different, drifting contamination; some bins offend repeatedly."""
    rng = np.random.default_rng(10)
    monday = datetime.now(timezone.utc).date() - timedelta(days=datetime.now(timezone.utc).weekday() + 7 * (weeks - 1))
    rows = []
    for week in range(weeks):
        for d, (district, (route, truck)) in enumerate(DISTRICTS.items()):
            day = monday + timedelta(days=7 * week + d)
            share = 0.08 + 0.05 * d + 0.01 * week * (1 if d % 2 else -0.5)
            for n in range(30):
                when = f"{day.isoformat()}T{6 + n // 12:02d}:{(n * 7) % 60:02d}:00+01:00"
                if rng.random() < 0.05:
                    rows.append(inspection(when, "inconclusive", district=district, route=route, truck=truck, tour="1"))
                    continue
                dirty = rng.random() < share
                review = ("confirmed" if rng.random() < 0.7 else "rejected") if dirty and rng.random() < 0.6 else None
                bin_id = f"E2-{district[:2].upper()}-{n % 5}" if dirty and n % 3 == 0 else "own"
                side = int(rng.integers(3, 12)) * (4 if district == "Heessen" else 1)  # Heessen's bags are large: its loads go over
                found = [box("plastic_bag", 10, 10, 10 + side, 10 + side)] if dirty else []
                rows.append(inspection(when, "contaminated" if dirty else "clean", review, district=district, route=route, truck=truck,
                                       tour="1", bin_id=bin_id, detections=found, reviewed=found if review == "confirmed" else None,
                                       fraction="paper" if n % 10 == 9 else "biowaste"))  # fmt: skip
    add_all(sessions, rows)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dashboard")
    settings = ServeSettings(model_dir=tmp / "no-model", database_url=f"sqlite:///{tmp / 'db.sqlite'}", image_dir=tmp / "images",
                             auth_cache_s=0, _env_file=None)  # fmt: skip
    app = create_app(settings, detector=AnySizeSeeingDetector(load_taxonomy(REPO / "configs/classes.yaml").fractions))
    with live_server(app) as server:
        accounts.create_user(app.state.sessions, "olga", "reviewer", PASSWORD)
        a_city(app.state.sessions)
        yield server


def test_the_dashboard_shows_its_charts_in_a_browser(site):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        refused: list[str] = []
        page.on("console", lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None)
        page.goto(site.url + "/dashboard")
        page.get_by_label("User name").fill("olga")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(re.compile(r"/dashboard$"))
        charts = page.locator(".charts img")
        sync_api.expect(charts).to_have_count(5)  # weekly, districts, routes, fractions, trucks
        for i in range(5):
            charts.nth(i).scroll_into_view_if_needed()
        page.wait_for_function("() => [...document.querySelectorAll('.charts img')].every(i => i.complete)")
        widths = page.eval_on_selector_all(".charts img", "imgs => imgs.map(i => i.naturalWidth)")
        assert all(w > 0 for w in widths), f"a chart did not decode: natural widths {widths}"
        assert not refused, refused
        sync_api.expect(page.locator("p.indicator")).to_contain_text("Image-based indicator, not a lab analysis.")
        assert page.locator("table.repeated a[href^='/bins/']").count() > 0
        assert page.locator("table.loads .badge.over-limit").count() > 0 and page.locator("table.loads .badge.within-limits").count() > 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
        browser.close()
