"""The review queue (serve/review.py) on SQLite and PostgreSQL: what waits, claims, decisions and the audit trail."""

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from serve import accounts, review
from serve.db import Inspection, ReviewEvent, make_engine, make_sessionmaker
from serve.review import Box, Decision, NotClaimed, QueueFilter, QueuePolicy, ReviewError
from tests.serve_helpers import migrated

CLASSES = ["plastic_bag", "bottle", "can", "glass", "cardboard"]
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
POLICY = QueuePolicy(threshold=0.5, qc_sample_rate=0.1, claim_ttl=timedelta(minutes=10))


@pytest.fixture
def sessions(database_url):
    engine = make_engine(migrated(database_url))
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def rita(sessions):
    return accounts.create_user(sessions, "rita", "reviewer", "correct horse battery")


@pytest.fixture
def otto(sessions):
    return accounts.create_user(sessions, "otto", "reviewer", "correct horse battery")


def add(sessions, verdict: str, score: float, *, qc_draw: int = 9999, truck: str = "t1", fraction: str = "biowaste",
        when: datetime = T0, detections: list | None = None) -> str:  # fmt: skip
    inspection_id = str(uuid.uuid4())
    with sessions.begin() as s:
        s.add(Inspection(
            id=inspection_id, truck_id=truck, capture_id=inspection_id, bin_id="b1", fraction=fraction, captured_at=when,
            received_at=when, verdict=verdict, contamination_score=score, quality_issue="foggy" if verdict == "inconclusive" else None,
            detections=detections if detections is not None else [{"label": "can", "score": score, "box": [10.0, 10.0, 50.0, 60.0], "contaminant": True}],
            model_version="m1", image_path=None, image_sha256="0" * 64, image_width=200, image_height=100, qc_draw=qc_draw,
        ))  # fmt: skip
    return inspection_id


def test_the_queue_holds_flagged_and_sampled_clean_most_uncertain_first(sessions):
    sure = add(sessions, "contaminated", 0.98)
    borderline = add(sessions, "contaminated", 0.55)
    foggy = add(sessions, "inconclusive", 0.9)
    sampled = add(sessions, "clean", 0.3, qc_draw=5)  # under 10 % of the draw range: sampled
    add(sessions, "clean", 0.45, qc_draw=5000)  # not sampled
    assert [i.id for i in review.queue(sessions, POLICY)] == [foggy, borderline, sampled, sure]
    counts = review.counts(sessions, POLICY)
    assert counts.waiting == 4 and counts.by_verdict == {"contaminated": 2, "inconclusive": 1, "clean": 1}
    no_qc = QueuePolicy(threshold=0.5, qc_sample_rate=0.0)
    assert sampled not in [i.id for i in review.queue(sessions, no_qc)]


def test_the_queue_filters_by_fraction_truck_and_day(sessions):
    a = add(sessions, "contaminated", 0.9, truck="t1", fraction="biowaste", when=T0)
    b = add(sessions, "contaminated", 0.9, truck="t2", fraction="paper", when=T0 + timedelta(days=2))
    assert [i.id for i in review.queue(sessions, POLICY, QueueFilter(truck_id="t2"))] == [b]
    assert [i.id for i in review.queue(sessions, POLICY, QueueFilter(fraction="biowaste"))] == [a]
    day = (T0 + timedelta(days=2)).date()
    assert [i.id for i in review.queue(sessions, POLICY, QueueFilter(captured_from=day, captured_to=day))] == [b]
    assert review.queue(sessions, POLICY, QueueFilter(captured_to=date(2026, 11, 1))) == []


def test_two_reviewers_never_hold_the_same_item_until_the_claim_expires(sessions, rita, otto):
    first = add(sessions, "contaminated", 0.5)
    second = add(sessions, "contaminated", 0.9)
    now = datetime.now(timezone.utc)
    assert review.claim_next(sessions, rita, POLICY, now=now).id == first
    assert review.claim_next(sessions, rita, POLICY, now=now).id == first  # her own claim comes back, not a second item
    assert review.claim_next(sessions, otto, POLICY, now=now).id == second
    assert review.claim_next(sessions, otto, POLICY, now=now).id == second
    later = now + POLICY.claim_ttl + timedelta(seconds=1)
    assert not review.claim(sessions, first, otto, POLICY.claim_ttl, now)
    assert review.claim(sessions, first, otto, POLICY.claim_ttl, later)  # rita's claim expired
    with pytest.raises(NotClaimed):
        review.decide(sessions, first, rita, Decision("confirmed"), CLASSES, now=later)


def test_a_released_item_goes_to_the_next_reviewer(sessions, rita, otto):
    only = add(sessions, "contaminated", 0.7)
    assert review.claim_next(sessions, rita, POLICY).id == only
    assert review.claim_next(sessions, otto, POLICY) is None
    review.release(sessions, only, rita)
    assert review.claim_next(sessions, otto, POLICY).id == only


def test_a_decision_stores_state_boxes_and_one_audit_event_with_what_changed(sessions, rita):
    model = [
        {"label": "can", "score": 0.8, "box": [10.0, 10.0, 50.0, 60.0], "contaminant": True},
        {"label": "bottle", "score": 0.6, "box": [100.0, 20.0, 150.0, 90.0], "contaminant": True},
        {"label": "glass", "score": 0.4, "box": [0.0, 0.0, 20.0, 20.0], "contaminant": True},
    ]
    item = add(sessions, "contaminated", 0.8, detections=model)
    review.claim_next(sessions, rita, POLICY)
    boxes = [
        Box("glass", (10, 10, 50, 60), 0.8, origin=0),  # relabelled
        Box("bottle", (105, 20, 150, 95), 0.6, origin=1),  # moved
        Box("plastic_bag", (120, 5, 190, 60)),  # drawn; detection 2 deleted
    ]
    decided = review.decide(sessions, item, rita, Decision("confirmed", boxes, note="bag under the lid"), CLASSES)
    assert {c["change"] for c in decided.changes} == {"relabelled", "moved", "deleted", "added"}
    with sessions() as s:
        row = s.get(Inspection, item)
        events = s.scalars(select(ReviewEvent)).all()
    assert row.review_state == "confirmed" and row.reviewed_by == "rita" and row.reviewed_at is not None
    assert [d["label"] for d in row.reviewed_detections] == ["glass", "bottle", "plastic_bag"]
    assert row.detections == model  # the model's own output stays as it was
    assert len(events) == 1
    event = events[0]
    assert (event.user_name, event.decision, event.state_before, event.note) == ("rita", "confirmed", None, "bag under the lid")
    assert event.detections_before == model and [d["label"] for d in event.detections_after] == ["glass", "bottle", "plastic_bag"]
    assert review.queue(sessions, POLICY) == []  # decided: no longer waiting
    with pytest.raises(NotClaimed):  # and the claim ended with the decision
        review.decide(sessions, item, rita, Decision("rejected"), CLASSES)


def test_reject_and_unusable_keep_the_boxes_when_none_are_sent(sessions, rita):
    a = add(sessions, "contaminated", 0.7)
    b = add(sessions, "inconclusive", 0.2)
    review.claim(sessions, a, rita, POLICY.claim_ttl)
    review.claim(sessions, b, rita, POLICY.claim_ttl)
    review.decide(sessions, a, rita, Decision("rejected", boxes=[]), CLASSES)
    review.decide(sessions, b, rita, Decision("unusable"), CLASSES)
    with sessions() as s:
        assert s.get(Inspection, a).review_state == "rejected" and s.get(Inspection, a).reviewed_detections == []
        assert s.get(Inspection, b).review_state == "unusable" and len(s.get(Inspection, b).reviewed_detections) == 1
    assert [e.decision for e in review.trail(sessions, a)] == ["rejected"]


@pytest.mark.parametrize(
    "boxes, message",
    [
        ([Box("banana", (1, 1, 5, 5))], "unknown class 'banana'"),
        ([Box("can", (50, 10, 40, 20))], "not a box inside the 200 x 100 image"),
        ([Box("can", (0, 0, 201, 20))], "not a box inside"),
        ([Box("can", (0, 0, float("nan"), 20))], "not a box inside"),
        ([Box("can", (1, 1, 5, 5), origin=3)], "origin 3 names no detection"),
        ([Box("can", (1, 1, 5, 5), origin=0), Box("can", (1, 1, 6, 6), origin=0)], "same detection"),
    ],
)
def test_bad_boxes_are_refused_and_nothing_is_stored(sessions, rita, boxes, message):
    item = add(sessions, "contaminated", 0.7)
    review.claim(sessions, item, rita, POLICY.claim_ttl)
    with pytest.raises(ReviewError, match=message):
        review.decide(sessions, item, rita, Decision("confirmed", boxes), CLASSES)
    with sessions() as s:
        assert s.get(Inspection, item).review_state is None and s.scalars(select(ReviewEvent)).all() == []
    with pytest.raises(ReviewError, match="unknown decision 'maybe'"):
        review.decide(sessions, item, rita, Decision("maybe"), CLASSES)


def test_a_second_review_appends_and_records_the_state_before(sessions, rita, otto):
    item = add(sessions, "contaminated", 0.7)
    review.claim(sessions, item, rita, POLICY.claim_ttl)
    review.decide(sessions, item, rita, Decision("confirmed"), CLASSES)
    review.claim(sessions, item, otto, POLICY.claim_ttl)
    review.decide(sessions, item, otto, Decision("rejected", boxes=[]), CLASSES)
    events = review.trail(sessions, item)
    assert [(e.user_name, e.decision, e.state_before) for e in events] == [("rita", "confirmed", None), ("otto", "rejected", "confirmed")]


def test_the_sample_rate_bounds_use_the_draw(sessions):
    with sessions.begin() as s:
        s.execute(update(Inspection).values(qc_draw=0))
    add(sessions, "clean", 0.1, qc_draw=0)
    assert len(review.queue(sessions, QueuePolicy(threshold=0.5, qc_sample_rate=0.0001))) == 1
    assert review.queue(sessions, QueuePolicy(threshold=0.5, qc_sample_rate=0.0)) == []


def test_two_decisions_racing_under_one_claim_store_one(sessions, rita):
    """A double click sends the decision twice at once: exactly one is stored, the other is told it holds no claim."""
    import threading

    item = add(sessions, "contaminated", 0.7)
    review.claim(sessions, item, rita, POLICY.claim_ttl)
    barrier, outcomes = threading.Barrier(2), []

    def send(state):
        barrier.wait()
        try:
            review.decide(sessions, item, rita, Decision(state), ["can"])
            outcomes.append("stored")
        except NotClaimed:
            outcomes.append("refused")

    threads = [threading.Thread(target=send, args=(state,)) for state in ("confirmed", "rejected")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused", "stored"]
    assert len(review.trail(sessions, item)) == 1


def test_a_slow_reviewer_keeps_an_expired_claim_nobody_took(sessions, rita):
    item = add(sessions, "contaminated", 0.7)
    now = datetime.now(timezone.utc)
    review.claim(sessions, item, rita, POLICY.claim_ttl, now)
    later = now + POLICY.claim_ttl * 3
    review.decide(sessions, item, rita, Decision("confirmed"), CLASSES, now=later)
    assert [e.decision for e in review.trail(sessions, item)] == ["confirmed"]


def test_a_decision_on_what_someone_decided_meanwhile_is_refused(sessions, rita, otto):
    item = add(sessions, "contaminated", 0.7)
    review.claim(sessions, item, rita, POLICY.claim_ttl)
    review.decide(sessions, item, rita, Decision("confirmed", expected_state=None), CLASSES)
    # otto's page showed the item unreviewed; he claims it afterwards and decides.
    review.claim(sessions, item, otto, POLICY.claim_ttl)
    with pytest.raises(review.ChangedMeanwhile, match="decided meanwhile \\(confirmed by rita\\)"):
        review.decide(sessions, item, otto, Decision("rejected", expected_state=None), CLASSES)
    assert [e.user_name for e in review.trail(sessions, item)] == ["rita"]


def test_an_erased_bins_copies_and_photos_already_deleted_never_wait(sessions, rita, tmp_path):
    """`gdpr delete` leaves anonymous copies without a photo (serve/gdpr.py); retention deletes photos: nothing to look at."""
    from serve import gdpr

    waiting = add(sessions, "contaminated", 0.7)
    erased = add(sessions, "contaminated", 0.6)  # bin b1 too: its copy keeps verdict and (no) review state
    with sessions.begin() as s:
        s.execute(update(Inspection).where(Inspection.id == waiting).values(bin_id="b2"))
    gdpr.delete_bin(sessions, tmp_path, "b1", "Europe/Berlin")
    gone = add(sessions, "contaminated", 0.55)
    with sessions.begin() as s:
        s.execute(update(Inspection).where(Inspection.id == gone).values(bin_id="b3", image_deleted_at=T0))
        copy = s.scalar(select(Inspection).where(Inspection.bin_link == "erased"))
    assert copy is not None and copy.review_state is None and copy.verdict == "contaminated"  # would qualify by verdict alone
    assert [i.id for i in review.queue(sessions, POLICY)] == [waiting]
    assert review.counts(sessions, POLICY).waiting == 1
    assert review.claim_next(sessions, rita, POLICY).id == waiting
    assert review.claim_next(sessions, rita, POLICY, exclude=[waiting]) is None
    assert erased not in {i.id for i in review.queue(sessions, POLICY)}
