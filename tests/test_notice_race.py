"""Two confirmations of one bin at once get consecutive levels, also for a bin no longer in the registry (serve/bin_lock.py).

The race needs two connections that really run side by side: PostgreSQL only
(SQLite lets one writer in at a time, which serialises them by itself). The
first confirmation issues its notice and holds its transaction open; the
second, in another thread, must wait for it and then see its notice.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from pipeline.policy import FractionPolicy
from serve.bin_lock import lock_key
from serve.db import Bin, Notice, make_engine, make_sessionmaker
from serve.migrate import upgrade
from serve.notice_config import load_notice_config
from serve.notices import NoticeIssuer
from tests.stats_helpers import add_all, inspection

CONFIG = load_notice_config("serve/defaults/notices/escalation.yaml")
POLICY = FractionPolicy.from_mapping({"biowaste": ["can"]}, 0.5)
CAN = [{"label": "can", "box": [10, 10, 40, 40], "score": 0.9, "origin": 0}]
RFID = "E200-GONE-FROM-REGISTRY"


@pytest.fixture
def pg_sessions(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("the race needs two connections writing at once: PostgreSQL")
    engine = make_engine(database_url)
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def confirmed(day: int) -> inspection:
    return inspection(f"2026-03-0{day}T06:00:00+01:00", "contaminated", "confirmed", bin_id=RFID, detections=CAN, reviewed=CAN)


def test_two_confirmations_racing_for_a_bin_outside_the_registry_get_levels_one_and_two(pg_sessions):
    first, second = add_all(pg_sessions, [confirmed(1), confirmed(2)])
    with pg_sessions() as s:
        assert s.get(Bin, RFID) is None  # removed by `registry import-bins --replace`: no row to lock
    issue = NoticeIssuer(CONFIG, POLICY)
    first_issued, let_first_commit = threading.Event(), threading.Event()
    levels: dict[str, int] = {}
    failures: list[BaseException] = []

    def confirm(inspection_id: str, hold: bool) -> None:
        try:
            from serve.db import Inspection

            with pg_sessions.begin() as s:
                outcome = issue(s, s.get(Inspection, inspection_id))
                levels[inspection_id] = outcome.notice.level
                if hold:
                    first_issued.set()
                    assert let_first_commit.wait(10), "the test never let the first confirmation commit"
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            failures.append(err)
            first_issued.set()

    a = threading.Thread(target=confirm, args=(first, True))
    a.start()
    assert first_issued.wait(10)
    b = threading.Thread(target=confirm, args=(second, False))
    b.start()
    b.join(1.0)  # with the lock it waits for the first; without, it computes its level now from what it sees (no notice yet)
    second_waited = b.is_alive()
    let_first_commit.set()
    a.join(10)
    b.join(10)
    assert not failures, failures
    assert levels == {first: 1, second: 2} and second_waited
    with pg_sessions() as s:
        assert sorted(s.scalars(select(Notice.level).where(Notice.bin_id == RFID))) == [1, 2]


def test_the_lock_key_is_a_stable_bigint_per_bin():
    assert lock_key(RFID) == lock_key(RFID) != lock_key(RFID + "X")
    assert -(2**63) <= lock_key(RFID) < 2**63
