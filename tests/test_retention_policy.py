"""The retention policy per review state (serve/retention.py) with times given, and the service's job that runs it."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from serve.app import create_app
from serve.db import Notice
from serve.notice_config import load_notice_config
from serve.retention import RetentionReport, apply_policy
from serve.retention_job import RetentionJob
from serve.settings import ServeSettings
from tests.conftest import REPO
from tests.test_serve_storage import inspection, store  # noqa: F401  (the fixture: SQLite and PostgreSQL)

CONFIG = load_notice_config(REPO / "serve/defaults/notices/escalation.yaml")
WINDOW = timedelta(days=CONFIG.rules("biowaste").window_days)
NOW = datetime(2027, 6, 1, tzinfo=timezone.utc)
CLEAN_DAYS, REJECTED_DAYS = 30, 90


def add(store, name: str, verdict: str, days_ago: int, state: str | None = None, bin_id: str = "B1"):  # noqa: F811
    row = inspection(name, verdict, NOW - timedelta(days=days_ago))
    row.bin_id, row.review_state, row.qc_draw = bin_id, state, 9999
    if state:
        row.reviewed_at, row.reviewed_by = NOW - timedelta(days=days_ago), "rita"
    return store.add(row, name.encode(), "jpg")[0]


def notice(store, row, days_ago: int, level: int = 1, withdrawn_days_ago: int | None = None) -> None:  # noqa: F811
    with store.sessions.begin() as s:
        s.add(Notice(inspection_id=row.id, bin_id=row.bin_id, fraction="biowaste", level=level, action="information", contaminants=["can"],
                     issued_at=NOW - timedelta(days=days_ago), issued_by="rita",
                     withdrawn_at=None if withdrawn_days_ago is None else NOW - timedelta(days=withdrawn_days_ago),
                     withdrawn_by=None if withdrawn_days_ago is None else "ada"))  # fmt: skip


def kept(store, rows) -> set[str]:  # noqa: F811
    return {name for name, row in rows.items() if store.image_file(store.get(row.id)) is not None}


def test_each_state_keeps_its_photo_as_long_as_the_policy_says(store):  # noqa: F811
    rows = {
        "clean-old": add(store, "clean-old", "clean", 31),
        "clean-new": add(store, "clean-new", "clean", 29),
        "rejected-old": add(store, "rejected-old", "contaminated", 91, "rejected"),
        "rejected-new": add(store, "rejected-new", "contaminated", 89, "rejected"),
        "unusable-old": add(store, "unusable-old", "inconclusive", 91, "unusable"),
        "gate-right-old": add(store, "gate-right-old", "inconclusive", 91, "confirmed"),
        "clean-missed-old": add(store, "clean-missed-old", "clean", 91, "rejected"),
        "waiting-old": add(store, "waiting-old", "contaminated", 400),
        "set-aside-old": add(store, "set-aside-old", "inconclusive", 400),
        "no-case-old": add(store, "no-case-old", "contaminated", 91, "confirmed", bin_id="B-uncertain"),
        "no-case-new": add(store, "no-case-new", "contaminated", 89, "confirmed", bin_id="B-uncertain2"),
        "open-case": add(store, "open-case", "contaminated", 400, "confirmed", bin_id="B2"),
        "open-case-newer": add(store, "open-case-newer", "contaminated", 100, "confirmed", bin_id="B2"),
        "closed-case": add(store, "closed-case", "contaminated", 400, "confirmed", bin_id="B3"),
        "withdrawn": add(store, "withdrawn", "contaminated", 10, "confirmed", bin_id="B4"),
    }
    notice(store, rows["open-case"], 400)  # its bin's newer notice (100 days ago) keeps the record, and so this case, open
    notice(store, rows["open-case-newer"], 100, level=2)
    notice(store, rows["closed-case"], WINDOW.days + 1)  # no newer notice: the window has passed, the record reset
    notice(store, rows["withdrawn"], 10, withdrawn_days_ago=5)
    report = apply_policy(store.sessions, store.image_dir, CONFIG, CLEAN_DAYS, REJECTED_DAYS, now=NOW)
    assert report == RetentionReport(clean=1, rejected=4, closed_cases=3)
    assert kept(store, rows) == {"clean-new", "rejected-new", "waiting-old", "set-aside-old", "no-case-new", "open-case", "open-case-newer"}
    gone = store.get(rows["closed-case"].id)
    assert gone.image_path is None and gone.image_deleted_at is not None and gone.review_state == "confirmed"  # the record stays
    assert apply_policy(store.sessions, store.image_dir, CONFIG, CLEAN_DAYS, REJECTED_DAYS, now=NOW).total == 0  # nothing twice


def test_what_nobody_reviewed_goes_after_the_cap_and_leaves_the_queue(store):  # noqa: F811
    from serve import accounts
    from serve.db import ReviewClaim
    from serve.review import QueuePolicy, queue

    rows = {
        "waiting-old": add(store, "waiting-old", "contaminated", 181),
        "waiting-new": add(store, "waiting-new", "contaminated", 179),
        "set-aside-old": add(store, "set-aside-old", "inconclusive", 181),
        "qc-draw-old": add(store, "qc-draw-old", "clean", 181),
        "clean-not-drawn-old": add(store, "clean-not-drawn-old", "clean", 181),
        "open-in-a-browser-old": add(store, "open-in-a-browser-old", "contaminated", 181),
        "open-case": add(store, "open-case", "contaminated", 400, "confirmed", bin_id="B2"),
    }
    rita = accounts.create_user(store.sessions, "rita", "reviewer", "correct horse battery")
    with store.sessions.begin() as s:
        s.get(type(rows["qc-draw-old"]), rows["qc-draw-old"].id).qc_draw = 0  # drawn for quality control; the others' 9999 is not
        s.add(ReviewClaim(inspection_id=rows["open-in-a-browser-old"].id, user_id=rita.id, expires_at=NOW + timedelta(minutes=5)))
    notice(store, rows["open-case"], 10)
    policy = QueuePolicy(threshold=0.5, qc_sample_rate=0.5)
    waiting = {"waiting-old", "waiting-new", "set-aside-old", "qc-draw-old", "open-in-a-browser-old"}
    assert {r.id for r in queue(store.sessions, policy)} == {rows[n].id for n in waiting}
    no_cap = apply_policy(store.sessions, store.image_dir, CONFIG, 365, REJECTED_DAYS, qc_sample_rate=0.5, now=NOW)
    assert no_cap.total == 0
    report = apply_policy(store.sessions, store.image_dir, CONFIG, 365, REJECTED_DAYS, qc_sample_rate=0.5, now=NOW, days_unreviewed=180)
    assert report == RetentionReport(clean=0, rejected=0, closed_cases=0, unreviewed=3)
    # Kept: the newer one, a clean photo the queue never held (the clean rule's, 365 days here), the one a reviewer has
    # open, and a reviewed finding (its case rule's).
    assert kept(store, rows) == {"waiting-new", "clean-not-drawn-old", "open-in-a-browser-old", "open-case"}
    assert {r.id for r in queue(store.sessions, policy)} == {rows["waiting-new"].id, rows["open-in-a-browser-old"].id}
    assert store.get(rows["waiting-old"].id).verdict == "contaminated"  # the record stays


def test_the_job_runs_the_policy_every_interval_and_stops_at_once(caplog):
    ran = threading.Event()
    reports = iter([RetentionReport(2, 1, 0)] + [RetentionReport(0, 0, 0)] * 1000)

    def policy():
        ran.set()
        return next(reports)

    job = RetentionJob(policy, interval_s=0.01)
    with caplog.at_level(logging.INFO, logger="binsight.serve.retention"):
        job.start()
        assert ran.wait(5)
        job.stop()
    assert not job.running and job.runs >= 1
    assert "retention: deleted 3 images: 2 of clean bins, 1 rejected or unusable" in caplog.text


def test_a_failing_run_is_logged_and_the_job_goes_on(caplog):
    def policy():
        raise OSError("disk gone")

    job = RetentionJob(policy, interval_s=60)
    with caplog.at_level(logging.ERROR, logger="binsight.serve.retention"):
        assert job.tick() is None
    assert "retention run failed" in caplog.text and job.runs == 1
    with pytest.raises(ValueError, match="above 0 seconds"):
        RetentionJob(policy, interval_s=0)


def app_settings(tmp_path, minutes: float) -> ServeSettings:
    return ServeSettings(model_dir=tmp_path / "no-model", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", image_dir=tmp_path / "img",
                         retention_interval_minutes=minutes, _env_file=None)  # fmt: skip


def test_the_service_starts_the_job_and_stops_it_at_shutdown(tmp_path):
    with TestClient(create_app(app_settings(tmp_path, 0.001))) as c:  # every 60 ms
        job = c.app.state.retention_job
        assert job.running
        deadline = datetime.now() + timedelta(seconds=10)
        while job.runs < 2 and datetime.now() < deadline:
            threading.Event().wait(0.02)
        assert job.runs >= 2 and job.last_report == RetentionReport(0, 0, 0)  # the real policy, on the app's database
    assert not job.running
    with TestClient(create_app(app_settings(tmp_path, 0))) as c:
        assert c.app.state.retention_job is None
