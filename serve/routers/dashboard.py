"""The statistics dashboard for staff: rates per week, district, route, fraction and truck, repeated findings, load grades.

    GET  /dashboard                        tables, charts, bins with repeated findings, load grades
    GET  /dashboard/charts/{chart}.svg     one chart (weekly, districts, routes, fractions, trucks) as SVG

Every logged-in person may open it, reviewers as well as admins: the admin
role is for managing accounts, and the people who read statistics (operations,
education campaigns) work with reviewer accounts. It shows no more personal
data than the review queue does (bin ids; no photos, no addresses).

The filters (from, to: local days; fraction) travel in the query string, to
the charts' addresses too. Without them the page shows the last twelve ISO
weeks up to today. Charts are images drawn on the server (serve/charts.py), so
the page runs no script; they are served as image/svg+xml with a policy of
their own that lets nothing in them load or run.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from serve.load_grade import INDICATOR_LABEL, Limits, grade_loads, load_materials, policy_from_files
from serve.pages import PAGE_HEADERS, PageError, Reviewer, render
from serve.statistics import StatsFilter, contamination_statistics, fractions_seen, repeated_findings
from serve.time_buckets import local_date

router = APIRouter(include_in_schema=False)

DEFAULT_WEEKS = 12
LOADS_SHOWN = 100
LOAD_DAYS = 28
"""The page grades the loads of the last four weeks of its range (each photo's boxes are read); `binsight export loads` grades any range."""
CHARTS = ("weekly", "districts", "routes", "fractions", "trucks")
SVG_HEADERS = {
    **PAGE_HEADERS,
    # An SVG opened on its own is a document: nothing in it may load or run. matplotlib styles with a <style> element.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
    "Cache-Control": "private, max-age=60",
}


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PageError(400, "Bad filter", f"{name} {value!r} is not a date (YYYY-MM-DD).") from None


def read_filter(request: Request, tz: str) -> StatsFilter:
    """The query's filter; without dates, the last DEFAULT_WEEKS ISO weeks up to today."""
    q = request.query_params
    first, last = _day(q.get("from"), "from"), _day(q.get("to"), "to")
    if first is None and last is None:
        today = local_date(datetime.now(timezone.utc), tz)
        first, last = today - timedelta(days=today.weekday() + 7 * (DEFAULT_WEEKS - 1)), today
    try:
        return StatsFilter(first, last, (q.get("fraction") or "").strip() or None)
    except ValueError as err:
        raise PageError(400, "Bad filter", f"{err}.") from None


def load_window(flt: StatsFilter, tz: str) -> StatsFilter:
    """The last LOAD_DAYS days of the filter's range (to today when it has no end)."""
    last = flt.last_day or local_date(datetime.now(timezone.utc), tz)
    first = last - timedelta(days=LOAD_DAYS - 1)
    return StatsFilter(max(first, flt.first_day) if flt.first_day else first, last, flt.fraction)


def filter_query(flt: StatsFilter) -> str:
    params = {"from": flt.first_day, "to": flt.last_day, "fraction": flt.fraction}
    return urlencode({k: str(v) for k, v in params.items() if v})


def fraction_policy(request: Request) -> tuple[dict[str, frozenset[str]] | None, str | None]:
    """The loaded model's fraction policy, else its card's; (None, why) when neither is there."""
    detector = getattr(request.app.state, "detector", None)
    if detector is not None:
        return dict(detector.policy.contaminants_by_fraction), None
    try:
        return policy_from_files(None, request.app.state.settings.model_dir), None
    except ValueError as err:
        return None, str(err)


@router.get("/dashboard", name="dashboard")
async def dashboard_page(request: Request, info: Reviewer):
    settings, sessions = request.app.state.settings, request.app.state.sessions
    tz = settings.local_timezone
    flt = read_filter(request, tz)
    policy, policy_problem = fraction_policy(request)
    limits = Limits(settings.load_limit_foreign_pct, settings.load_limit_plastics_pct)

    def load():
        stats = contamination_statistics(sessions, flt, tz)
        repeated = repeated_findings(sessions, flt, tz, settings.repeat_findings_min, settings.repeat_findings_days)
        loads, problem = None, policy_problem
        if policy is not None:
            try:
                loads = grade_loads(sessions, load_window(flt, tz), tz, settings.load_grade_fraction, policy,
                                    load_materials(settings.materials_path), limits)  # fmt: skip
            except ValueError as err:  # a missing materials file, a graded fraction the policy lacks: said on the page
                problem = str(err)
        return stats, repeated, loads, problem, fractions_seen(sessions, policy or ())

    stats, repeated, loads, loads_problem, fractions = await run_in_threadpool(load)
    graded = [g for g in loads or [] if g.grade != "not graded"]
    return render(request, "dashboard.html", {
        "active": "dashboard", "flt": flt, "query": filter_query(flt), "fractions": fractions, "stats": stats,
        "charts": CHARTS, "repeated": repeated, "repeat_min": settings.repeat_findings_min, "repeat_days": settings.repeat_findings_days,
        "loads": (loads or [])[:LOADS_SHOWN], "loads_total": len(loads or []), "loads_over": sum(1 for g in graded if g.over),
        "loads_graded": len(graded), "loads_problem": loads_problem, "limits": limits, "indicator": INDICATOR_LABEL,
        "graded_fraction": settings.load_grade_fraction, "load_window": load_window(flt, tz), "tz": tz, "default_weeks": DEFAULT_WEEKS, "k": settings.open_data_min_bins,
    }, info=info)  # fmt: skip


@router.get("/dashboard/charts/{chart}.svg", name="dashboard_chart")
async def chart(request: Request, chart: str, info: Reviewer):
    if chart not in CHARTS:
        raise PageError(404, "No such chart", f"There is no chart {chart!r}; there are {', '.join(CHARTS)}.")
    settings, sessions = request.app.state.settings, request.app.state.sessions
    flt = read_filter(request, settings.local_timezone)

    def draw() -> bytes:
        from serve.charts import bars_svg, weekly_svg

        stats = contamination_statistics(sessions, flt, settings.local_timezone)
        if chart == "weekly":
            return weekly_svg(stats)
        table, title = {"districts": (stats.by_district, "Per district"), "routes": (stats.by_route, "Per route"),
                        "fractions": (stats.by_fraction, "Per fraction"), "trucks": (stats.by_truck, "Per truck")}[chart]  # fmt: skip
        return bars_svg(title, [(key if key is not None else "(unknown)", counts) for key, counts in stats.ordered(table)])

    return Response(await run_in_threadpool(draw), media_type="image/svg+xml", headers=SVG_HEADERS)
