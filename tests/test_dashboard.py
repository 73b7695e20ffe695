"""The statistics dashboard over HTTP (serve/routers/dashboard.py): who may open it, what it shows, its charts and filters.

The numbers on the page are worked out by hand from the rows each test writes.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from serve import accounts
from serve.app import create_app
from serve.settings import ServeSettings
from tests.stats_helpers import add_all, box, inspection
from tests.test_serve_injected import SeeingDetector
from tests.test_serve_pages import PASSWORD, log_in

RANGE = "from=2026-11-16&to=2026-11-29"


def make_client(tmp_path, detector, **settings):
    config = ServeSettings(model_dir=tmp_path / "no-model", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", image_dir=tmp_path / "images",
                           auth_cache_s=0, review_qc_sample_rate=0.0, _env_file=None, **settings)  # fmt: skip
    return TestClient(create_app(config, detector=detector), follow_redirects=False)


@pytest.fixture
def client(tmp_path, taxonomy):
    with make_client(tmp_path, SeeingDetector(taxonomy.fractions)) as c:
        accounts.create_user(c.app.state.sessions, "rita", "reviewer", PASSWORD)
        accounts.create_user(c.app.state.sessions, "ada", "admin", PASSWORD)
        yield c


def two_weeks(sessions) -> None:
    add_all(sessions, [
        # W47, Nord: 4 usable (clean, 3 contaminated of which 1 confirmed), 1 inconclusive -> rate 3/4 = 75.0 %, confirmed 25.0 %
        inspection("2026-11-16T07:00:00+01:00", "clean", truck="HAM-1", tour="1"),
        inspection("2026-11-16T07:01:00+01:00", "contaminated", "confirmed", bin_id="E2-REPEAT", truck="HAM-1", tour="1",
                   reviewed=[box("plastic_bag", 0, 0, 50, 20, origin=0)]),  # 1000 of 10 000 px² plastic in its photo
        inspection("2026-11-16T07:02:00+01:00", "contaminated", truck="HAM-1", tour="1", detections=[box("can", 0, 0, 10, 10)]),
        inspection("2026-11-16T07:03:00+01:00", "contaminated", truck="HAM-1", tour="1"),
        inspection("2026-11-16T07:04:00+01:00", "inconclusive", truck="HAM-1", tour="1"),
        # W48, Süd: 2 usable, 1 contaminated and confirmed (the same bin again) -> 50.0 %, 50.0 %
        inspection("2026-11-24T07:00:00+01:00", "contaminated", "confirmed", bin_id="E2-REPEAT", district="Süd", route="R2", truck="HAM-2"),
        inspection("2026-11-24T07:01:00+01:00", "clean", district="Süd", route="R2", truck="HAM-2"),
    ])  # fmt: skip


def test_logged_out_the_dashboard_and_its_charts_send_to_the_login(client):
    for path in ("/dashboard", "/dashboard/charts/weekly.svg"):
        r = client.get(path)
        assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}"


def test_a_reviewer_sees_rates_repeated_findings_and_load_grades(client):
    two_weeks(client.app.state.sessions)
    log_in(client, "rita")
    r = client.get(f"/dashboard?{RANGE}")
    assert r.status_code == 200
    html = r.text
    assert r.headers["content-security-policy"].startswith("default-src 'self'") and "<script" not in html
    assert re.search(r'<a href="[^"]*/dashboard" aria-current="page">Statistics</a>', html)

    # Totals: 7 inspections, 6 usable, 4 contaminated -> 66.7 %; confirmed 2 of 6 -> 33.3 %
    summary = html[html.index('class="summary"'):html.index("</section>")]
    assert re.findall(r'class="figure">([^<]+)<', summary) == ["7", "6", "1", "66.7 %", "33.3 %"]
    weeks = html[html.index("<caption>Per ISO week</caption>"):]
    weeks = weeks[:weeks.index("</table>")]
    assert re.search(r"<td>2026-W47</td>\s*<td class=\"num\">5</td>\s*<td class=\"num\">1</td>\s*<td class=\"num\">75.0 %</td>\s*"
                     r"<td class=\"num\">25.0 %</td>", weeks)  # fmt: skip
    assert re.search(r"<td>2026-W48</td>\s*<td class=\"num\">2</td>\s*<td class=\"num\">0</td>\s*<td class=\"num\">50.0 %</td>", weeks)
    assert '<td>Süd</td>' in html and '<td>HAM-2</td>' in html

    assert '<a href="/bins/E2-REPEAT">E2-REPEAT</a>' in html  # two confirmed findings
    repeated = html[html.index('id="repeated"'):html.index('id="loads"')]
    assert repeated.count("/bins/") == 1

    loads = html[html.index('id="loads"'):]
    assert "Image-based indicator, not a lab analysis." in loads
    # HAM-1, tour 1: 4 usable photos of 10 000 px²; the reviewer's bag (1000) and the model's can (100): 1100 / 40 000 = 2.8 %
    # foreign matter, 1000 / 40 000 = 2.5 % plastics -> over the 1 % plastics limit.
    ham1 = re.search(r"<td>2026-11-16</td>\s*<td>HAM-1</td>\s*<td>1</td>(.*?)</tr>", loads, re.S).group(1)
    assert re.findall(r'<td class="num[^"]*">([^<]+)</td>', ham1) == ["4", "1", "2.8 %", "2.5 %"]
    assert "over limit" in ham1 and "plastics" in ham1
    ham2 = re.search(r"<td>2026-11-24</td>\s*<td>HAM-2</td>\s*<td>whole day</td>(.*?)</tr>", loads, re.S).group(1)
    assert "within limits" in ham2  # its confirmed photo has no box the reviewer left: 0 %


def test_the_fraction_filter_and_the_charts_follow_the_query(client):
    two_weeks(client.app.state.sessions)
    add_all(client.app.state.sessions, [inspection("2026-11-17T07:00:00+01:00", "contaminated", fraction="paper", district="Ost")])
    log_in(client, "ada")
    html = client.get(f"/dashboard?{RANGE}&fraction=paper").text
    summary = html[html.index('class="summary"'):html.index("</section>")]
    assert re.findall(r'class="figure">([^<]+)<', summary)[:1] == ["1"]
    assert "No biowaste loads in this range." in html  # paper has no load grade
    assert f'/dashboard/charts/districts.svg?{RANGE.replace("&", "&amp;")}&amp;fraction=paper"' in html
    assert f'/dashboard/charts/routes.svg?{RANGE.replace("&", "&amp;")}&amp;fraction=paper"' in html
    assert 'alt="Contamination rate per route"' in html


def test_charts_are_svg_images_with_a_policy_that_runs_nothing(client):
    two_weeks(client.app.state.sessions)
    log_in(client, "rita")
    for chart in ("weekly", "districts", "routes", "fractions", "trucks"):
        r = client.get(f"/dashboard/charts/{chart}.svg?{RANGE}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
        assert r.headers["content-security-policy"].startswith("default-src 'none'")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "<svg" in r.text and "<script" not in r.text
    assert "2026-W47" in client.get(f"/dashboard/charts/weekly.svg?{RANGE}").text
    assert "Süd" in client.get(f"/dashboard/charts/districts.svg?{RANGE}").text
    routes = client.get(f"/dashboard/charts/routes.svg?{RANGE}").text
    assert "Per route" in routes and ">R1<" in routes and ">R2<" in routes and "Süd" not in routes
    assert "no usable inspections" in client.get("/dashboard/charts/trucks.svg?from=2020-01-01&to=2020-01-05").text
    missing = client.get("/dashboard/charts/pie.svg")
    assert missing.status_code == 404 and "There is no chart &#39;pie&#39;" in missing.text


@pytest.mark.parametrize("query, message", [
    ("from=2026-13-01", "from &#39;2026-13-01&#39; is not a date (YYYY-MM-DD)."),
    ("from=2026-11-30&to=2026-11-01", "the range starts after it ends (2026-11-30 &gt; 2026-11-01)."),
])  # fmt: skip
def test_a_bad_filter_is_a_page_that_says_what_is_wrong(client, query, message):
    log_in(client, "rita")
    for path in ("/dashboard", "/dashboard/charts/weekly.svg"):
        r = client.get(f"{path}?{query}")
        assert r.status_code == 400 and message in r.text


def test_without_a_model_the_load_grades_say_why(tmp_path):
    with make_client(tmp_path, None) as c:
        accounts.create_user(c.app.state.sessions, "rita", "reviewer", PASSWORD)
        log_in(c, "rita")
        r = c.get(f"/dashboard?{RANGE}")
    assert r.status_code == 200
    assert "Load grades are not available:" in r.text and "no model card" in r.text and "--classes" in r.text


def test_the_load_grades_cover_the_last_four_weeks_of_the_range(client):
    add_all(client.app.state.sessions, [
        inspection("2026-10-01T07:00:00+02:00", "contaminated", truck="HAM-OLD", detections=[box("can", 0, 0, 50, 50)]),
        inspection("2026-11-02T07:00:00+01:00", "contaminated", truck="HAM-NEW", detections=[box("can", 0, 0, 50, 50)]),
    ])  # fmt: skip
    log_in(client, "rita")
    html = client.get("/dashboard?from=2026-09-01&to=2026-11-29").text
    loads = html[html.index('id="loads"'):]
    assert "Loads of 2026-11-02 to 2026-11-29" in loads  # 28 days up to the 29th start on the 2nd
    assert "<td>HAM-NEW</td>" in loads and "HAM-OLD" not in loads
    assert "HAM-OLD" in html[:html.index('id="loads"')]  # the rates still count it
