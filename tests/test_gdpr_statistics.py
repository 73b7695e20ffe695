"""`gdpr delete` erases a household's data and keeps the statistics (serve/gdpr.py), on SQLite and PostgreSQL."""

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from serve import accounts, gdpr, review
from serve.db import Inspection, Notice, ReviewEvent, as_utc, make_engine, make_sessionmaker
from serve.exports import load_record
from serve.load_grade import grade_loads, load_materials, policy_from_files
from serve.statistics import StatsFilter, contamination_statistics, repeated_findings
from tests.conftest import REPO
from tests.serve_helpers import migrated
from tests.stats_helpers import TZ, add_all, box, inspection

EVERYTHING = StatsFilter()


@pytest.fixture
def store(database_url, tmp_path):
    engine = make_engine(migrated(database_url))
    yield make_sessionmaker(engine), tmp_path / "images"
    engine.dispose()


def photo(image_dir, name: str) -> str:
    (image_dir / "2026/11").mkdir(parents=True, exist_ok=True)
    (image_dir / f"2026/11/{name}.jpg").write_bytes(b"\xff\xd8 a photo of the bin")
    return f"2026/11/{name}.jpg"


def dashboard(sessions):
    """What the dashboard shows: the rates in every breakdown and the load grades."""
    policy = policy_from_files(REPO / "configs/classes.yaml", REPO)
    loads = grade_loads(sessions, EVERYTHING, TZ, "biowaste", policy, load_materials(REPO / "serve/defaults/materials.yaml"))
    return contamination_statistics(sessions, EVERYTHING, TZ), [load_record(g) for g in loads]


def test_the_statistics_stay_and_nothing_of_the_bin_is_left(store):
    sessions, image_dir = store
    rita = accounts.create_user(sessions, "rita", "reviewer", "correct horse battery")
    household = add_all(sessions, [
        inspection("2026-11-16T07:00:00+01:00", "contaminated", bin_id="E2-HOUSEHOLD", truck="HAM-1", tour="1",
                   detections=[box("plastic_bag", 0, 0, 40, 20)], image_path=photo(image_dir, "a")),
        inspection("2026-11-23T00:30:00+01:00", "contaminated", "confirmed", bin_id="E2-HOUSEHOLD", truck="HAM-1",
                   reviewed=[box("can", 0, 0, 30, 30)], image_path=photo(image_dir, "b")),  # 00:30 Monday: W48 in Berlin
        inspection("2026-11-24T07:00:00+01:00", "inconclusive", bin_id="E2-HOUSEHOLD", truck="HAM-1", district="Süd"),
    ])  # fmt: skip
    neighbours = add_all(sessions, [
        inspection("2026-11-16T07:01:00+01:00", "clean", bin_id="E2-NEXT-DOOR", truck="HAM-1", tour="1"),
        inspection("2026-11-23T07:00:00+01:00", "contaminated", "confirmed", bin_id="E2-NEXT-DOOR", truck="HAM-1"),
    ])  # fmt: skip
    review.claim(sessions, household[0], rita, timedelta(minutes=5))
    review.decide(sessions, household[0], rita, review.Decision("confirmed", note="yellow bag on top, Musterstraße 5"), ["plastic_bag", "can"])
    with sessions.begin() as s:
        s.add(Notice(inspection_id=household[0], bin_id="E2-HOUSEHOLD", fraction="biowaste", level=1, action="information letter",
                     contaminants=["plastic_bag"], issued_at=datetime(2026, 11, 17, tzinfo=timezone.utc), issued_by="rita"))  # fmt: skip
    stats_before, loads_before = dashboard(sessions)
    assert [b.bin_id for b in repeated_findings(sessions, EVERYTHING, TZ, 2, 365, today=date(2026, 11, 30))] == ["E2-HOUSEHOLD"]
    with sessions() as s:
        old = {(r.id, r.capture_id) for r in s.scalars(select(Inspection).where(Inspection.bin_id == "E2-HOUSEHOLD"))}

    summary = gdpr.delete_bin(sessions, image_dir, "E2-HOUSEHOLD", TZ)
    assert (summary.inspections, summary.images, summary.review_events, summary.notices) == (3, 2, 1, 1)

    stats_after, loads_after = dashboard(sessions)
    # Every count by ISO week, district and fraction stays. Deliberately lost (serve/gdpr.py): the copies keep no truck,
    # route or tour, so they count under truck `erased` and no route, and leave their loads' grades.
    for table in ("total", "by_week", "by_district", "by_fraction"):
        assert getattr(stats_after, table) == getattr(stats_before, table), table
    assert stats_after.total.inspections == 5 and stats_after.by_week["2026-W48"].inspections == 3
    assert stats_after.by_truck["erased"].inspections == 3 and stats_after.by_truck["HAM-1"].inspections == 2
    assert stats_after.by_route == {"R1": stats_after.by_truck["HAM-1"], None: stats_after.by_truck["erased"]}
    assert sum(g["images"] + g["excluded"] for g in loads_before) - sum(g["images"] + g["excluded"] for g in loads_after) == 3
    assert all(g["truck_id"] == "HAM-1" for g in loads_after) and loads_after

    with pytest.raises(gdpr.NoSuchBin):
        gdpr.export_bin(sessions, image_dir, "E2-HOUSEHOLD", image_dir.parent / "request.zip")
    assert repeated_findings(sessions, EVERYTHING, TZ, 2, 365, today=date(2026, 11, 30)) == []
    with sessions() as s:
        rows = list(s.scalars(select(Inspection)))
        notices = list(s.scalars(select(Notice)))
        events = list(s.scalars(select(ReviewEvent)))
    old_ids = {i for i, _ in old} | {c for _, c in old}
    for row in rows:
        values = {c.name: getattr(row, c.key) for c in Inspection.__table__.columns}
        assert not any(isinstance(v, str) and ("E2-HOUSEHOLD" in v or v in old_ids) for v in values.values()), values
    copies = [r for r in rows if r.id not in neighbours]
    assert len(copies) == 3
    for copy in copies:
        assert (copy.bin_id, copy.latitude, copy.longitude, copy.image_path, copy.reviewed_by) == (None,) * 5
        assert (copy.truck_id, copy.tour_id, copy.route, copy.bin_link, copy.visible_share) == ("erased", None, None, "erased", None)
        assert copy.detections == [] and copy.reviewed_detections is None and (copy.image_width, copy.image_height) == (0, 0)
        assert copy.contamination_score in (0.1, 0.9) and not copy.capture_id.startswith("erased")
        local = as_utc(copy.captured_at).astimezone(ZoneInfo(TZ))
        assert (local.weekday(), local.hour, local.minute) == (0, 12, 0)  # the day and time are gone, the ISO week stays
        assert copy.image_deleted_at == copy.captured_at  # not the moment of erasure, which would group one request's copies
    assert sorted(as_utc(c.captured_at).astimezone(ZoneInfo(TZ)).date() for c in copies) == [date(2026, 11, 16), date(2026, 11, 23), date(2026, 11, 23)]
    assert notices == [] and events == []
    assert list(image_dir.rglob("*.jpg")) == []
    with sessions() as s:  # the neighbours are untouched
        assert {r.bin_id for r in s.scalars(select(Inspection).where(Inspection.id.in_(neighbours)))} == {"E2-NEXT-DOOR"}
