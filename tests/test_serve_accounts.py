"""Reviewer and admin accounts (serve/accounts.py) on SQLite and PostgreSQL, and the schema the migrations build."""

from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from serve import accounts
from serve.accounts import AccountError, LockoutPolicy, LoginRefused
from serve.db import Base, User, WebSession, make_engine, make_sessionmaker
from tests.serve_helpers import migrated

PASSWORD = "correct horse battery"


@pytest.fixture
def sessions(database_url):
    engine = make_engine(migrated(database_url))
    yield make_sessionmaker(engine)
    engine.dispose()


def test_the_migrations_build_exactly_the_tables_the_code_declares(database_url):
    engine = make_engine(migrated(database_url))
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_passwords_are_stored_as_argon2_hashes_only(sessions):
    accounts.create_user(sessions, "rita", "reviewer", PASSWORD)
    with sessions() as s:
        stored = s.scalars(select(User.password_hash)).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


@pytest.mark.parametrize(
    "name, role, password, message",
    [
        ("rita", "reviewer", "short", "too short"),
        ("rita", "boss", PASSWORD, "unknown role 'boss'"),
        ("rita smith", "reviewer", PASSWORD, "invalid user name"),
        ("", "admin", PASSWORD, "invalid user name"),
    ],
)
def test_bad_accounts_are_refused_with_the_reason(sessions, name, role, password, message):
    with pytest.raises(AccountError, match=message):
        accounts.create_user(sessions, name, role, password)


def test_a_name_is_taken_once(sessions):
    accounts.create_user(sessions, "rita", "reviewer", PASSWORD)
    with pytest.raises(AccountError, match="exists already"):
        accounts.create_user(sessions, "rita", "admin", PASSWORD + "!")


def test_login_succeeds_only_with_the_right_password_and_says_nothing_about_names(sessions):
    accounts.create_user(sessions, "rita", "reviewer", PASSWORD)
    ok = accounts.authenticate(sessions, "rita", PASSWORD, LockoutPolicy())
    assert ok.name == "rita" and ok.role == "reviewer" and not ok.is_admin
    wrong = accounts.authenticate(sessions, "rita", PASSWORD + "x", LockoutPolicy())
    unknown = accounts.authenticate(sessions, "nobody", PASSWORD, LockoutPolicy())
    assert isinstance(wrong, LoginRefused) and wrong == unknown


def test_repeated_failures_lock_the_account_even_against_the_right_password(sessions):
    accounts.create_user(sessions, "rita", "reviewer", PASSWORD)
    policy = LockoutPolicy(max_failures=3, lock_s=60, max_lock_s=600)
    now = datetime.now(timezone.utc)
    for _ in range(3):
        assert isinstance(accounts.authenticate(sessions, "rita", "guess-guess-guess", policy, now), LoginRefused)
    locked = accounts.authenticate(sessions, "rita", PASSWORD, policy, now + timedelta(seconds=30))
    # The right password is refused with a wrong password's words: a lock does not tell that the name exists.
    assert locked == accounts.authenticate(sessions, "nobody", PASSWORD, policy, now) and "too many failed attempts" in locked.reason
    # After the lock the right password works and the count starts again.
    assert accounts.authenticate(sessions, "rita", PASSWORD, policy, now + timedelta(seconds=61)).name == "rita"
    with sessions() as s:
        assert s.scalars(select(User.failed_logins)).one() == 0


def test_each_further_failure_doubles_the_lock_up_to_the_cap():
    policy = LockoutPolicy(max_failures=5, lock_s=60, max_lock_s=600)
    assert policy.lock_for(4) is None
    assert [policy.lock_for(n).total_seconds() for n in (5, 6, 7, 9)] == [60, 120, 240, 600]


def test_a_disabled_account_cannot_log_in_and_loses_its_sessions(sessions):
    admin = accounts.create_user(sessions, "ada", "admin", PASSWORD)
    rita = accounts.create_user(sessions, "rita", "reviewer", PASSWORD)
    token, _ = accounts.start_session(sessions, rita, timedelta(hours=1))
    assert accounts.session_for(sessions, token).account.name == "rita"
    accounts.set_disabled(sessions, "rita", True)
    assert accounts.session_for(sessions, token) is None
    refused = accounts.authenticate(sessions, "rita", PASSWORD, LockoutPolicy())
    assert isinstance(refused, LoginRefused) and "disabled" in refused.reason
    accounts.set_disabled(sessions, "rita", False)
    assert accounts.authenticate(sessions, "rita", PASSWORD, LockoutPolicy()).name == "rita"
    with pytest.raises(AccountError, match="last enabled admin"):
        accounts.set_disabled(sessions, admin.name, True)


def test_a_password_reset_ends_sessions_and_lifts_a_lock(sessions):
    rita = accounts.create_user(sessions, "rita", "reviewer", PASSWORD)
    token, _ = accounts.start_session(sessions, rita, timedelta(hours=1))
    policy = LockoutPolicy(max_failures=1)
    accounts.authenticate(sessions, "rita", "wrong-password-1", policy)
    accounts.set_password(sessions, "rita", "a new long password")
    assert accounts.session_for(sessions, token) is None
    assert accounts.authenticate(sessions, "rita", "a new long password", policy).name == "rita"
    with pytest.raises(AccountError, match="no user named 'nobody'"):
        accounts.set_password(sessions, "nobody", "a new long password")


def test_sessions_store_only_a_hash_expire_and_end(sessions):
    rita = accounts.create_user(sessions, "rita", "reviewer", PASSWORD)
    token, info = accounts.start_session(sessions, rita, timedelta(minutes=10))
    with sessions() as s:
        row = s.scalars(select(WebSession)).one()
    assert row.token_hash != token and token not in row.token_hash
    assert accounts.session_for(sessions, token).csrf_token == info.csrf_token
    assert accounts.session_for(sessions, token, info.expires_at + timedelta(seconds=1)) is None
    assert accounts.session_for(sessions, "forged") is None and accounts.session_for(sessions, None) is None
    accounts.end_session(sessions, token)
    assert accounts.session_for(sessions, token) is None


def test_csrf_tokens_must_match_exactly():
    assert accounts.csrf_matches("abc", "abc")
    assert not accounts.csrf_matches("abc", "abd") and not accounts.csrf_matches("abc", None) and not accounts.csrf_matches("abc", "")


def test_guesses_sent_in_parallel_are_all_counted(sessions):
    """A burst of concurrent wrong passwords locks the account as the same guesses in turn would."""
    import threading

    accounts.create_user(sessions, "rita", "reviewer", PASSWORD)
    policy = LockoutPolicy(max_failures=5, lock_s=60)
    barrier = threading.Barrier(8)

    def guess(n):
        barrier.wait()
        accounts.authenticate(sessions, "rita", f"wrong guess {n:04d}", policy)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with sessions() as s:
        user = s.scalars(select(User)).one()
    # Counted one after another: five failures lock, the three that came after met the lock (and do not lengthen it).
    assert user.failed_logins == 5 and user.locked_until is not None
    assert isinstance(accounts.authenticate(sessions, "rita", PASSWORD, policy), LoginRefused)


def test_the_lock_does_not_overflow_after_very_many_failures():
    assert LockoutPolicy(max_failures=5, lock_s=60, max_lock_s=3600).lock_for(100_000).total_seconds() == 3600
