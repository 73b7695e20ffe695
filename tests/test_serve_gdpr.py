"""Data-subject requests per bin (serve/gdpr.py, `binsight gdpr`) on SQLite and PostgreSQL."""

import json
import subprocess
import sys
import uuid
import zipfile
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from serve import access_log, accounts, gdpr, review
from serve.db import Inspection, Notice, ReviewClaim, ReviewEvent, as_utc, make_engine, make_sessionmaker
from serve.notice_config import load_notice_config
from serve.settings import ServeSettings
from tests.serve_helpers import migrated

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(database_url, tmp_path):
    engine = make_engine(migrated(database_url))
    yield make_sessionmaker(engine), tmp_path / "images"
    engine.dispose()


def add(sessions, image_dir, bin_id: str, n: int, with_image: bool = True) -> str:
    inspection_id = str(uuid.uuid4())
    rel = f"2026/11/20/{inspection_id}.jpg" if with_image else None
    if rel:
        (image_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (image_dir / rel).write_bytes(b"\xff\xd8 photo " + bin_id.encode())
    with sessions.begin() as s:
        s.add(Inspection(
            id=inspection_id, truck_id="t1", capture_id=f"{bin_id}-{n}", bin_id=bin_id, fraction="biowaste", captured_at=T0 + timedelta(minutes=n),
            received_at=T0, latitude=51.68, longitude=7.82, verdict="contaminated", contamination_score=0.8, quality_issue=None,
            detections=[{"label": "can", "score": 0.8, "box": [1.0, 1.0, 9.0, 9.0], "contaminant": True}], model_version="m1",
            image_path=rel, image_sha256="0" * 64, image_width=16, image_height=16,
        ))  # fmt: skip
    return inspection_id


def reviewed_bin_beside_another(sessions, image_dir) -> tuple[list[str], str]:
    """BIN-1's two inspections (one confirmed, one claimed by a reviewer right now) and BIN-2's one."""
    rita = accounts.create_user(sessions, "rita", "reviewer", "correct horse battery")
    mine = [add(sessions, image_dir, "BIN-1", 1), add(sessions, image_dir, "BIN-1", 2)]
    other = add(sessions, image_dir, "BIN-2", 3)
    review.claim(sessions, mine[0], rita, timedelta(minutes=5))
    review.decide(sessions, mine[0], rita, review.Decision("confirmed"), ["can"])
    review.claim(sessions, mine[1], rita, timedelta(minutes=5))  # open in someone's browser right now
    return mine, other


def test_export_holds_every_record_photo_and_decision_of_the_bin_and_nothing_else(store, tmp_path):
    sessions, image_dir = store
    rita = accounts.create_user(sessions, "rita", "reviewer", "correct horse battery")
    mine = [add(sessions, image_dir, "BIN-1", 1), add(sessions, image_dir, "BIN-1", 2, with_image=False)]
    add(sessions, image_dir, "BIN-2", 3)
    review.claim(sessions, mine[0], rita, timedelta(minutes=5))
    review.decide(sessions, mine[0], rita, review.Decision("confirmed", note="lid open"), ["can"])

    summary = gdpr.export_bin(sessions, image_dir, "BIN-1", tmp_path / "out" / "bin.zip")
    assert (summary.inspections, summary.images, summary.review_events) == (2, 1, 1)
    with zipfile.ZipFile(tmp_path / "out" / "bin.zip") as archive:
        names = set(archive.namelist())
        records = json.loads(archive.read("records.json"))
        assert archive.read(f"images/{mine[0]}.jpg") == b"\xff\xd8 photo BIN-1"
    assert names == {"README.txt", "records.json", f"images/{mine[0]}.jpg"}
    assert [r["id"] for r in records["inspections"]] == mine and {r["bin_id"] for r in records["inspections"]} == {"BIN-1"}
    assert records["review_events"][0]["user_name"] == "rita" and records["review_events"][0]["note"] == "lid open"
    assert records["inspections"][0]["review_state"] == "confirmed"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "bin.zip"]  # no temporary file left


def test_delete_erases_the_bin_and_leaves_the_others(store):
    """Since the statistics (issue 10) the bin's inspections stay as anonymous copies; before, they were deleted."""
    sessions, image_dir = store
    mine, other = reviewed_bin_beside_another(sessions, image_dir)

    summary = gdpr.delete_bin(sessions, image_dir, "BIN-1", "Europe/Berlin")
    assert (summary.inspections, summary.images, summary.review_events) == (2, 2, 1)
    with sessions() as s:
        rows = s.scalars(select(Inspection)).all()
        assert s.scalar(select(func.count()).select_from(ReviewEvent)) == 0
        assert s.scalar(select(func.count()).select_from(ReviewClaim)) == 0
    copies = [r for r in rows if r.id != other]
    assert len(copies) == 2 and not {r.id for r in copies} & set(mine)  # new ids: the old ones lead nowhere
    assert {r.capture_id for r in copies}.isdisjoint({"BIN-1-1", "BIN-1-2"})
    for copy in copies:
        assert (copy.bin_id, copy.latitude, copy.longitude, copy.image_path, copy.reviewed_by, copy.reviewed_at) == (None,) * 6
        assert as_utc(copy.captured_at) == datetime(2026, 11, 16, 11, 0, tzinfo=timezone.utc)  # noon in Berlin, the week's Monday
        assert (copy.verdict, copy.contamination_score, copy.detections) == ("contaminated", 0.8, [])  # what the statistics count
    assert {r.review_state for r in copies} == {"confirmed", None}
    assert next(r for r in rows if r.id == other).bin_id == "BIN-2"
    assert [p.name for p in image_dir.rglob("*.jpg")] == [f"{other}.jpg"]
    with pytest.raises(gdpr.NoSuchBin, match="no inspection of bin 'BIN-1'"):
        gdpr.delete_bin(sessions, image_dir, "BIN-1", "Europe/Berlin")


def test_after_an_erasure_the_export_still_hands_out_who_received_the_bins_photos(store, tmp_path):
    """Art. 15 (1)(c): the access log outlives the erasure (serve/access_log.py), so the bin's export still holds it."""
    sessions, image_dir = store
    mine, _ = reviewed_bin_beside_another(sessions, image_dir)
    access_log.record_accesses(sessions, actor_kind="user", actor="rita", opened=[(mine[0], "BIN-1")], what="image")
    gdpr.delete_bin(sessions, image_dir, "BIN-1", "Europe/Berlin")

    summary = gdpr.export_bin(sessions, image_dir, "BIN-1", tmp_path / "after.zip")
    assert (summary.inspections, summary.images, summary.review_events, summary.notices) == (0, 0, 0, 0)
    with zipfile.ZipFile(tmp_path / "after.zip") as archive:
        records = json.loads(archive.read("records.json"))
        assert not [n for n in archive.namelist() if n.startswith("images/")]
    assert records["inspections"] == [] and [(a["actor"], a["inspection_id"], a["what"]) for a in records["image_access"]] == [("rita", mine[0], "image")]
    with pytest.raises(gdpr.NoSuchBin, match="nothing of bin 'BIN-3' is stored"):
        gdpr.export_bin(sessions, image_dir, "BIN-3", tmp_path / "none.zip")
    assert not (tmp_path / "none.zip").exists()


def test_the_commands_confirm_and_say_what_they_did(tmp_path):
    env = {"BINSIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "BINSIGHT_IMAGE_DIR": str(tmp_path / "img")}
    import os

    def run(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "serve.cli", "gdpr", *args], env={**os.environ, **env}, capture_output=True, text=True, input=stdin)

    missing = run("export", "BIN-9", "--out", str(tmp_path / "x.zip"))
    assert missing.returncode == 2 and "nothing of bin 'BIN-9' is stored" in missing.stderr and "Traceback" not in missing.stderr
    engine = make_engine(env["BINSIGHT_DATABASE_URL"])
    add(make_sessionmaker(engine), tmp_path / "img", "BIN-9", 1)
    engine.dispose()
    assert run("export", "BIN-9", "--out", str(tmp_path / "x.zip")).returncode == 0 and (tmp_path / "x.zip").is_file()
    for unknown in (("delete", "BIN-0"), ("delete", "BIN-0", "--purge")):  # said before any question is asked
        missing = run(*unknown)
        assert missing.returncode == 2 and "no inspection of bin 'BIN-0'" in missing.stderr and "Traceback" not in missing.stderr
    # The first erased bin of its week: its copies would be attributable, so the operator must choose.
    alone = run("delete", "BIN-9", "--yes")
    assert alone.returncode == 2 and "Traceback" not in alone.stderr
    assert "bin BIN-9 would be the only erased bin in no district/biowaste (1 of 1 weeks)" in alone.stderr
    assert "Choose --purge" in alone.stderr and "--keep-copies" in alone.stderr and "nothing was erased" in alone.stderr
    refused = run("delete", "BIN-9", "--keep-copies", stdin="BIN-8\n")
    assert refused.returncode == 2 and "not confirmed; nothing was erased" in refused.stderr
    done = run("delete", "BIN-9", "--keep-copies", stdin="BIN-9\n")
    assert done.returncode == 0 and "erased bin BIN-9: 1 inspections anonymised (kept for the statistics), 1 photos" in done.stdout
    engine = make_engine(env["BINSIGHT_DATABASE_URL"])
    add(make_sessionmaker(engine), tmp_path / "img", "BIN-7", 1)
    add(make_sessionmaker(engine), tmp_path / "img", "BIN-6", 1)
    engine.dispose()
    assert run("delete", "BIN-7", "--yes").returncode == 0  # BIN-9's copy shares its week: no choice needed
    assert run("delete", "BIN-6", "--purge", "--keep-copies", "--yes").returncode == 2  # one or the other
    purged = run("delete", "BIN-6", "--purge", "--yes")
    assert purged.returncode == 0 and "erased bin BIN-6: 1 inspections deleted outright (--purge), 1 photos" in purged.stdout
    engine = make_engine(env["BINSIGHT_DATABASE_URL"])
    with make_sessionmaker(engine)() as s:
        assert s.scalar(select(func.count()).select_from(Inspection)) == 2  # BIN-9's and BIN-7's copies; nothing of BIN-6
    engine.dispose()

def notice(sessions, inspection_id: str, bin_id: str, level: int, withdrawn: bool = False) -> str:
    with sessions.begin() as s:
        row = Notice(inspection_id=inspection_id, bin_id=bin_id, fraction="biowaste", level=level, action="information letter",
                     contaminants=["can"], issued_at=T0 + timedelta(days=level), issued_by="rita",
                     withdrawn_at=T0 + timedelta(days=9) if withdrawn else None, withdrawn_by="otto" if withdrawn else None)  # fmt: skip
        s.add(row)
        s.flush()
        return row.id


def test_export_holds_the_bins_notices_and_their_letters(store, tmp_path):
    sessions, image_dir = store
    # No photo files: the letters then say the photo is gone (this test's photos are not real JPEGs anyway).
    mine = [add(sessions, image_dir, "BIN-1", 1, with_image=False), add(sessions, image_dir, "BIN-1", 2, with_image=False)]
    other = add(sessions, image_dir, "BIN-2", 3)
    first, second = notice(sessions, mine[0], "BIN-1", 1), notice(sessions, mine[1], "BIN-1", 2, withdrawn=True)
    notice(sessions, other, "BIN-2", 1)

    config = load_notice_config(ServeSettings(_env_file=None).notices_config_path)  # binsight's own letter
    summary = gdpr.export_bin(sessions, image_dir, "BIN-1", tmp_path / "bin.zip", notice_config=config)
    assert summary.notices == 2
    with zipfile.ZipFile(tmp_path / "bin.zip") as archive:
        records = json.loads(archive.read("records.json"))
        letters = sorted(n for n in archive.namelist() if n.startswith("letters/"))
        texts = [archive.read(n).decode("utf-8") for n in letters]
    assert [n["id"] for n in records["notices"]] == [first, second]
    assert {k: records["notices"][1][k] for k in ("level", "action", "contaminants", "issued_by", "withdrawn_by")} == {
        "level": 2, "action": "information letter", "contaminants": ["can"], "issued_by": "rita", "withdrawn_by": "otto"}
    assert records["notices"][1]["issued_at"].startswith("2026-11-22") and records["notices"][1]["withdrawn_at"].startswith("2026-11-29")
    assert len(letters) == 2 and all(n.endswith(".html") and "BIN-1" in n for n in letters)
    assert all("<html" in text.lower() and "BIN-1" in text for text in texts)
    without = gdpr.export_bin(sessions, image_dir, "BIN-1", tmp_path / "plain.zip")  # no letter configuration: records only
    with zipfile.ZipFile(tmp_path / "plain.zip") as archive:
        assert without.notices == 2 and not [n for n in archive.namelist() if n.startswith("letters/")]


def test_an_export_whose_access_log_fails_hands_nothing_out(store, tmp_path, monkeypatch):
    sessions, image_dir = store
    mine = add(sessions, image_dir, "BIN-1", 1)

    def refuse(*args, **kwargs):
        raise RuntimeError("the access log is not writable")

    monkeypatch.setattr(access_log, "record_accesses", refuse)
    with pytest.raises(RuntimeError, match="the access log is not writable"):
        gdpr.export_bin(sessions, image_dir, "BIN-1", tmp_path / "out" / "bin.zip")
    assert list((tmp_path / "out").iterdir()) == []  # neither the archive nor its temporary file
    monkeypatch.undo()
    gdpr.export_bin(sessions, image_dir, "BIN-1", tmp_path / "out" / "bin.zip", exported_by="ops")
    logged = [(e.actor_kind, e.actor, e.inspection_id, e.bin_id, e.what) for e in access_log.entries(sessions, access_log.AccessQuery())]
    assert logged == [("cli", "ops", mine, "BIN-1", "export")]


def test_an_upload_arriving_during_the_erasure_is_erased_or_comes_after_it(store, monkeypatch):
    """The race: the truck's upload commits while delete_bin is between selecting the bin's rows and committing."""
    import threading

    sessions, image_dir = store
    add(sessions, image_dir, "BIN-1", 1)
    done = {}
    real_copy = gdpr.anonymised_copy

    def upload():
        add(sessions, image_dir, "BIN-1", 2)
        done["uploaded"] = True

    def copy_while_uploading(row, tz):
        if "thread" not in done:
            done["thread"] = threading.Thread(target=upload)
            done["thread"].start()
            done["thread"].join(timeout=2)  # PostgreSQL: it commits now; SQLite: it waits for the erasure's write lock
            done["during"] = done.get("uploaded", False)
        return real_copy(row, tz)

    monkeypatch.setattr(gdpr, "anonymised_copy", copy_while_uploading)
    summary = gdpr.delete_bin(sessions, image_dir, "BIN-1", "Europe/Berlin")
    done["thread"].join(timeout=30)
    with sessions() as s:
        left = s.scalar(select(func.count()).select_from(Inspection).where(Inspection.bin_id == "BIN-1"))
    if done["during"]:  # committed inside the erasure's window: erased with the rest
        assert (summary.inspections, left) == (2, 0)
    else:  # held back until the erasure committed: a new upload of the bin, after it
        assert (summary.inspections, left, done["uploaded"]) == (1, 1, True)


def place(sessions, inspection_id: str, district: str | None, fraction: str = "biowaste", weeks_later: int = 0) -> None:
    with sessions.begin() as s:
        row = s.get(Inspection, inspection_id)
        row.district, row.fraction = district, fraction
        row.captured_at = as_utc(row.captured_at) + timedelta(weeks=weeks_later)


def test_exposed_weeks_are_those_without_another_erased_bins_copy(store):
    """Where no other erased copy lies in the week, the bin's copies would be the only ones: with the registry they are
    its verdicts (serve/gdpr.py). A copy of another week hides nothing."""
    sessions, image_dir = store
    tz = "Europe/Berlin"
    place(sessions, add(sessions, image_dir, "BIN-1", 1), "Mitte")
    place(sessions, add(sessions, image_dir, "BIN-1", 2), "Nord")
    place(sessions, add(sessions, image_dir, "BIN-1", 3), "Nord", weeks_later=1)
    place(sessions, add(sessions, image_dir, "BIN-1", 4), "Nord", "paper")
    place(sessions, add(sessions, image_dir, "BIN-1", 5), None)
    place(sessions, add(sessions, image_dir, "BIN-2", 6), "Nord")  # the same week as BIN-1's first in Nord
    place(sessions, add(sessions, image_dir, "BIN-3", 7), "Nord", "paper", weeks_later=5)  # another week
    place(sessions, add(sessions, image_dir, "BIN-4", 8), "Nord", "paper")
    assert [str(e) for e in gdpr.exposed_weeks(sessions, "BIN-1", tz)] == [
        "no district/biowaste (1 of 1 weeks)", "Mitte/biowaste (1 of 1 weeks)", "Nord/biowaste (2 of 2 weeks)", "Nord/paper (1 of 1 weeks)"]
    gdpr.delete_bin(sessions, image_dir, "BIN-2", tz)
    gdpr.delete_bin(sessions, image_dir, "BIN-3", tz)
    assert [str(e) for e in gdpr.exposed_weeks(sessions, "BIN-1", tz)] == [
        "no district/biowaste (1 of 1 weeks)", "Mitte/biowaste (1 of 1 weeks)", "Nord/biowaste (1 of 2 weeks)", "Nord/paper (1 of 1 weeks)"]
    gdpr.delete_bin(sessions, image_dir, "BIN-4", tz, purge=True)  # a purge leaves no copy to hide among
    assert str(gdpr.exposed_weeks(sessions, "BIN-1", tz)[-1]) == "Nord/paper (1 of 1 weeks)"
    with pytest.raises(gdpr.NoSuchBin, match="BIN-9"):
        gdpr.exposed_weeks(sessions, "BIN-9", tz)


def test_purge_leaves_nothing_of_the_bin_and_the_others_as_they_were(store):
    sessions, image_dir = store
    mine, other = reviewed_bin_beside_another(sessions, image_dir)
    notice(sessions, mine[0], "BIN-1", 1)

    summary = gdpr.delete_bin(sessions, image_dir, "BIN-1", "Europe/Berlin", purge=True)
    assert (summary.inspections, summary.images, summary.review_events, summary.notices, summary.kept_as_copies) == (2, 2, 1, 1, 0)
    with sessions() as s:
        assert [r.id for r in s.scalars(select(Inspection))] == [other]
        assert s.scalar(select(func.count()).select_from(ReviewEvent)) == 0
        assert s.scalar(select(func.count()).select_from(Notice)) == 0
        assert s.scalar(select(func.count()).select_from(ReviewClaim)) == 0
    assert [p.name for p in image_dir.rglob("*.jpg")] == [f"{other}.jpg"]
    kept = gdpr.delete_bin(sessions, image_dir, "BIN-2", "Europe/Berlin")
    assert (kept.inspections, kept.kept_as_copies) == (1, 1)
