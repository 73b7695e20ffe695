"""Reviewed inspections back into the dataset (serve/export_reviewed.py), accepted by the prepare stage."""

import io
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.config import PrepareConfig, load_taxonomy
from pipeline.prepare import prepare
from serve import access_log, accounts, review
from serve.db import Inspection, make_engine, make_sessionmaker
from serve.export_reviewed import export_reviewed
from serve.review import Box, Decision, QueuePolicy
from tests.serve_helpers import migrated

TAXONOMY = load_taxonomy(Path("configs/classes.yaml"))
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path):
    engine = make_engine(migrated(f"sqlite:///{tmp_path / 'b.db'}"))
    yield make_sessionmaker(engine), tmp_path / "images"
    engine.dispose()


def add_photo(sessions, image_dir: Path, n: int, verdict: str, detections: list, fraction: str = "biowaste") -> str:
    """An inspection as the service stores it: the photo file and its row."""
    inspection_id = str(uuid.uuid4())
    rgb = np.random.default_rng(n).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    rel = f"2026/11/20/{inspection_id}.jpg"
    (image_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    (image_dir / rel).write_bytes(buf.getvalue())
    with sessions.begin() as s:
        s.add(Inspection(
            id=inspection_id, truck_id="t1", capture_id=f"c{n}", bin_id=f"bin-{n % 4}", fraction=fraction,
            captured_at=T0 + timedelta(minutes=n), received_at=T0, latitude=51.68, longitude=7.82, verdict=verdict,
            contamination_score=max([d["score"] for d in detections], default=0.0), quality_issue=None, detections=detections,
            model_version="m1", image_path=rel, image_sha256="0" * 64, image_width=160, image_height=120,
        ))  # fmt: skip
    return inspection_id


def can(box, score=0.8):
    return {"label": "can", "score": score, "box": box, "contaminant": True}


def test_reviewed_inspections_become_training_data_that_prepare_accepts(store, tmp_path):
    sessions, image_dir = store
    rita = accounts.create_user(sessions, "rita", "reviewer", "correct horse battery")
    confirmed = add_photo(sessions, image_dir, 1, "contaminated", [can([10.0, 10.0, 40.0, 50.0])])
    corrected = add_photo(sessions, image_dir, 2, "contaminated", [can([20.0, 20.0, 60.0, 70.0]), can([100.0, 10.0, 150.0, 40.0], 0.6)])
    rejected = add_photo(sessions, image_dir, 3, "contaminated", [can([5.0, 5.0, 30.0, 30.0]), {"label": "cardboard", "score": 0.7, "box": [50.0, 50.0, 90.0, 90.0], "contaminant": False}], fraction="paper")
    unusable = add_photo(sessions, image_dir, 4, "inconclusive", [])
    add_photo(sessions, image_dir, 5, "contaminated", [can([1.0, 1.0, 9.0, 9.0])])  # not reviewed: not exported
    extra = [add_photo(sessions, image_dir, n, "contaminated", [can([30.0, 30.0, 70.0, 80.0])]) for n in range(6, 14)]

    def decide(item, decision):
        assert review.claim(sessions, item, rita, timedelta(minutes=5))
        review.decide(sessions, item, rita, decision, TAXONOMY.class_names)

    decide(confirmed, Decision("confirmed"))
    decide(corrected, Decision("confirmed", [Box("glass", (20, 20, 60, 70), 0.8, origin=0), Box("plastic_bag", (70, 60, 130, 110))]))
    decide(rejected, Decision("rejected"))
    decide(unusable, Decision("unusable"))
    for item in extra:
        decide(item, Decision("confirmed"))

    data = tmp_path / "data"
    outcome = export_reviewed(sessions, image_dir, data, TAXONOMY)
    assert outcome.unusable == 1 and outcome.image_gone == 0
    assert outcome.result.images_added == 3 + len(extra) and outcome.result.problems == []

    doc = json.loads((data / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    by_source = {im["source"]["path"]: im for im in doc["images"]}
    boxes = lambda item: sorted((names[a["category_id"]], a["bbox"]) for a in doc["annotations"] if a["image_id"] == by_source[f"inspections/{item}"]["id"])  # noqa: E731
    assert boxes(confirmed) == [("can", [10.0, 10.0, 30.0, 40.0])]
    assert boxes(corrected) == [("glass", [20.0, 20.0, 40.0, 50.0]), ("plastic_bag", [70.0, 60.0, 60.0, 50.0])]
    assert boxes(rejected) == [("cardboard", [50.0, 50.0, 40.0, 40.0])]  # the contaminant the reviewer rejected is gone
    capture = by_source[f"inspections/{rejected}"]["capture"]
    assert capture["fraction"] == "paper" and capture["bin_id"] == "bin-3" and capture["gps"] == {"lat": 51.68, "lon": 7.82}

    # Exporting again adds nothing (content hash), and the prepare stage accepts the result.
    again = export_reviewed(sessions, image_dir, data, TAXONOMY)
    assert again.result.images_added == 0 and again.result.already_present == 3 + len(extra)
    cfg = PrepareConfig(seed=1, val_share=0.2, test_share=0.2, drop_invalid=False, min_box_size=2.0, respect_source_splits=True)
    report = prepare(data, tmp_path / "splits", tmp_path / "report.json", cfg, TAXONOMY)
    assert report["problems"] == []
    assert sum(s["images"] for s in report["splits"].values()) == 3 + len(extra)
    split_of = {}
    for split in ("train", "val", "test"):
        for im in json.loads((tmp_path / "splits" / f"{split}.json").read_text())["images"]:
            split_of.setdefault(im["capture"]["bin_id"], set()).add(split)
    assert all(len(splits) == 1 for splits in split_of.values())  # photos of one bin stay in one split


def test_a_photo_deleted_by_retention_is_counted_not_exported(store, tmp_path):
    sessions, image_dir = store
    rita = accounts.create_user(sessions, "rita", "reviewer", "correct horse battery")
    item = add_photo(sessions, image_dir, 1, "contaminated", [can([10.0, 10.0, 40.0, 50.0])])
    review.claim(sessions, item, rita, timedelta(minutes=5))
    review.decide(sessions, item, rita, Decision("confirmed"), TAXONOMY.class_names)
    for f in image_dir.rglob("*.jpg"):
        f.unlink()
    outcome = export_reviewed(sessions, image_dir, tmp_path / "data", TAXONOMY)
    assert outcome.image_gone == 1 and outcome.result.images_added == 0
    assert not (tmp_path / "data" / "annotations.json").exists()  # nothing new: nothing written


def test_what_each_verdict_and_decision_teaches(store, tmp_path):
    """Rejected contaminated: the model's contaminants go, drawn boxes stay; rejected clean (a QC catch): the drawn
    contaminant is taught; confirmed inconclusive: nothing to learn; an unknown class: the whole image waits."""
    sessions, image_dir = store
    rita = accounts.create_user(sessions, "rita", "reviewer", "correct horse battery")
    flagged = add_photo(sessions, image_dir, 1, "contaminated", [can([10.0, 10.0, 40.0, 50.0])])
    missed = add_photo(sessions, image_dir, 2, "clean", [])
    foggy = add_photo(sessions, image_dir, 3, "inconclusive", [can([10.0, 10.0, 40.0, 50.0], 0.4)])
    odd = add_photo(sessions, image_dir, 4, "contaminated", [can([10.0, 10.0, 40.0, 50.0])])

    def decide(item, decision, classes=TAXONOMY.class_names):
        assert review.claim(sessions, item, rita, timedelta(minutes=5))
        review.decide(sessions, item, rita, decision, classes)

    decide(flagged, Decision("rejected", [Box("can", (10, 10, 40, 50), 0.8, origin=0), Box("glass", (60, 60, 90, 100))]))
    decide(missed, Decision("rejected", [Box("can", (70, 20, 110, 60))]))
    decide(foggy, Decision("confirmed"))
    decide(odd, Decision("confirmed", [Box("banana", (10, 10, 40, 50))]), classes=[*TAXONOMY.class_names, "banana"])

    outcome = export_reviewed(sessions, image_dir, tmp_path / "data", TAXONOMY)
    assert outcome.unusable == 1 and outcome.result.images_added == 2 and outcome.result.skipped == 1
    assert [p.kind for p in outcome.result.problems] == ["unknown_category"]
    doc = json.loads((tmp_path / "data" / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    by_source = {im["source"]["path"]: im["id"] for im in doc["images"]}
    labels = lambda item: sorted(names[a["category_id"]] for a in doc["annotations"] if a["image_id"] == by_source[f"inspections/{item}"])  # noqa: E731
    assert labels(flagged) == ["glass"] and labels(missed) == ["can"]
    assert f"inspections/{foggy}" not in by_source and f"inspections/{odd}" not in by_source


def test_each_copied_photo_is_logged_first_and_a_failing_log_copies_nothing(store, tmp_path, monkeypatch):
    sessions, image_dir = store
    rita = accounts.create_user(sessions, "rita", "reviewer", "correct horse battery")
    items = [add_photo(sessions, image_dir, n, "contaminated", [can([10.0, 10.0, 40.0, 50.0])]) for n in (1, 2)]
    add_photo(sessions, image_dir, 3, "contaminated", [can([10.0, 10.0, 40.0, 50.0])])  # not reviewed: not read, not logged
    for item in items:
        assert review.claim(sessions, item, rita, timedelta(minutes=5))
        review.decide(sessions, item, rita, Decision("confirmed"), TAXONOMY.class_names)

    def refuse(*args, **kwargs):
        raise RuntimeError("the access log is not writable")

    monkeypatch.setattr(access_log, "record_accesses", refuse)
    with pytest.raises(RuntimeError, match="the access log is not writable"):
        export_reviewed(sessions, image_dir, tmp_path / "data", TAXONOMY)
    assert not (tmp_path / "data").exists()  # nothing copied without its log entries
    monkeypatch.undo()

    outcome = export_reviewed(sessions, image_dir, tmp_path / "data", TAXONOMY)
    assert outcome.result.images_added == 2
    logged = sorted((e.actor_kind, e.actor, e.inspection_id, e.bin_id, e.what) for e in access_log.entries(sessions, access_log.AccessQuery()))
    assert logged == sorted(("cli", access_log.os_user(), i, f"bin-{n}", "export") for i, n in zip(items, (1, 2), strict=True))
