"""Persistence on SQLite and PostgreSQL: an inspection and its image are stored both or neither."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from serve.db import Inspection, make_engine, make_sessionmaker
from serve.migrate import upgrade
from serve.retention import delete_clean_images
from serve.storage import InspectionStore


@pytest.fixture
def store(database_url, tmp_path):
    engine = make_engine(database_url)
    upgrade(engine)
    yield InspectionStore(make_sessionmaker(engine), tmp_path / "images")
    engine.dispose()


def inspection(capture_id="c1", verdict="clean", captured_at=None, truck_id="T1") -> Inspection:
    now = datetime.now(timezone.utc)
    return Inspection(
        truck_id=truck_id, capture_id=capture_id, bin_id="B1", fraction="biowaste", captured_at=captured_at or now,
        received_at=now, verdict=verdict, contamination_score=0.1, detections=[], model_version="m1", image_width=4, image_height=4,
    )


def count(store) -> int:
    with store.sessions() as s:
        return s.scalar(select(func.count()).select_from(Inspection))


def image_files(store) -> list:
    return [p for p in store.image_dir.rglob("*") if p.is_file()] if store.image_dir.exists() else []


def test_stored_inspection_has_its_image(store):
    row, created = store.add(inspection(), b"jpeg-bytes", "jpg")
    assert created and store.image_file(store.get(row.id)).read_bytes() == b"jpeg-bytes"
    assert store.find("T1", "c1").id == row.id


def test_failed_commit_leaves_neither_row_nor_image(store):
    from sqlalchemy import event

    def broken_commit(connection):
        raise RuntimeError("database went away")

    event.listen(store.engine, "commit", broken_commit)
    try:
        with pytest.raises(RuntimeError, match="went away"):
            store.add(inspection(), b"jpeg-bytes", "jpg")
    finally:
        event.remove(store.engine, "commit", broken_commit)
    assert count(store) == 0 and image_files(store) == []


def test_image_left_by_a_crash_before_commit_is_swept(store):
    kept, _ = store.add(inspection("kept"), b"a", "jpg")
    orphan = store.image_dir / "ab" / "crashed.jpg"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"half a story")
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    fresh = store.image_dir / "ab" / "in-flight.jpg"  # a request still committing: left alone
    fresh.write_bytes(b"b")
    assert store.sweep_orphans() == 1
    assert not orphan.exists() and fresh.exists() and store.image_file(store.get(kept.id)) is not None


def test_racing_retries_store_one_inspection(store):
    results = []

    def submit():
        results.append(store.add(inspection("race"), b"same-bytes", "jpg"))

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(created for _, created in results) == 1
    assert len({row.id for row, _ in results}) == 1
    assert count(store) == 1 and len(image_files(store)) == 1


def test_retention_deletes_only_old_clean_images_and_keeps_records(store):
    now = datetime.now(timezone.utc)
    old_clean, _ = store.add(inspection("old-clean", "clean", now - timedelta(days=40)), b"1", "jpg")
    new_clean, _ = store.add(inspection("new-clean", "clean", now - timedelta(days=2)), b"2", "jpg")
    old_dirty, _ = store.add(inspection("old-dirty", "contaminated", now - timedelta(days=40)), b"3", "jpg")
    old_unsure, _ = store.add(inspection("old-unsure", "inconclusive", now - timedelta(days=40)), b"4", "jpg")
    assert delete_clean_images(store.sessions, store.image_dir, days=30) == 1
    gone = store.get(old_clean.id)
    assert gone is not None and gone.image_path is None and gone.image_deleted_at is not None
    for row in (new_clean, old_dirty, old_unsure):
        assert store.image_file(store.get(row.id)) is not None
    assert len(image_files(store)) == 3
    assert delete_clean_images(store.sessions, store.image_dir, days=30) == 0  # idempotent


def test_migrations_run_twice_without_harm(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    upgrade(engine)
    engine.dispose()


def test_key_verifier_trusts_a_checked_key_for_its_ttl_only(database_url):
    from serve import auth

    engine = make_engine(database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    key = auth.create_key(sessions, "truck", truck_id="T7")
    verifier = auth.KeyVerifier(sessions, ttl_s=60)
    owner = auth.KeyOwner("truck", "T7")
    assert verifier.cached(key) is None and verifier.verify(key) == owner and verifier.cached(key) == owner
    auth.revoke_key(sessions, "truck")
    assert verifier.cached(key) == owner  # within the TTL, by design
    assert auth.KeyVerifier(sessions, ttl_s=60).verify(key) is None
    assert auth.KeyVerifier(sessions, ttl_s=0).verify("bsk_unknown") is None
    engine.dispose()


def test_recent_captures_forget_the_oldest_beyond_capacity():
    from serve.storage import RecentCaptures

    recent = RecentCaptures(capacity=2)
    for n in range(3):
        recent.put("T1", f"c{n}", f"id{n}")
    assert recent.get("T1", "c0") is None and recent.get("T1", "c1") == "id1" and recent.get("T1", "c2") == "id2"
    assert recent.get("T2", "c2") is None


def test_stored_inspection_is_found_among_recent_captures(store):
    row, _ = store.add(inspection("fresh"), b"x", "jpg")
    assert store.find_recent("T1", "fresh").id == row.id and store.find_recent("T1", "other") is None


def test_retention_keeps_clean_photos_a_reviewer_still_needs(store):
    from sqlalchemy import update

    from serve.db import Inspection

    now = datetime.now(timezone.utc)
    rows = {name: store.add(inspection(name, "clean", now - timedelta(days=40)), name.encode(), "jpg")[0]
            for name in ("qc-waiting", "qc-confirmed", "rejected", "plain", "legacy")}  # fmt: skip
    with store.sessions.begin() as s:
        for name, draw, state in (("qc-waiting", 0, None), ("qc-confirmed", 0, "confirmed"), ("rejected", 9999, "rejected"),
                                  ("plain", 9999, None), ("legacy", None, None)):  # fmt: skip
            s.execute(update(Inspection).where(Inspection.id == rows[name].id).values(qc_draw=draw, review_state=state))
    assert delete_clean_images(store.sessions, store.image_dir, days=30, qc_sample_rate=0.02) == 3
    kept = {name for name, row in rows.items() if store.image_file(store.get(row.id)) is not None}
    assert kept == {"qc-waiting", "rejected"}  # sampled and unseen; a missed contaminant's evidence
