"""Reviewer and admin accounts: argon2 password hashes, logins that lock after repeated failures, web sessions.

People log in with passwords, so unlike truck keys (serve/auth.py, random
256-bit secrets behind a fast hash) their hash must be slow: argon2id with
argon2-cffi's defaults (RFC 9106's low-memory profile). A login fails the
same way and takes about as long for an unknown name as for a wrong password,
so the login form does not reveal which names exist; nor does a lock, which
answers a wrong password's words.

After `LockoutPolicy.max_failures` consecutive failures an account is locked
for `lock_s` seconds, doubling with each further failure up to `max_lock_s`:
password guessing becomes slow while a reviewer who mistyped waits a minute.

A web session is a random token in an HttpOnly cookie; the database keeps
only its SHA-256 (a stolen database yields no usable session) and the
session's CSRF token, which every form must send back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from serve.db import ROLES, User, WebSession, as_utc

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; a bound keeps a megabyte "password" from costing a request
NAME_PATTERN = "letters, digits, '.', '_', '-' (1-64)"

_hasher = PasswordHasher()
# Verified against when the name is unknown, so that such a login costs what a wrong password costs.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message says why and is safe to show."""


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    lock_s: float = 60.0
    max_lock_s: float = 3600.0

    def lock_for(self, failures: int) -> timedelta | None:
        if failures < self.max_failures:
            return None
        doublings = min(failures - self.max_failures, 32)  # 2**32 minutes is past any cap; a larger power would overflow
        return timedelta(seconds=min(self.lock_s * 2**doublings, self.max_lock_s))


@dataclass(frozen=True)
class Account:
    """What the pages need to know about the person logged in."""

    id: str
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class LoginRefused:
    reason: str  # shown to the person: never says whether the name exists


REFUSED = LoginRefused(
    "wrong user name or password, or too many failed attempts (then the account waits a few minutes before it accepts a login)"
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def check_name(name: str) -> str:
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "._-" for c in name):
        raise AccountError(f"invalid user name {name!r}: use {NAME_PATTERN}")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password is too short: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"the password is too long: at most {MAX_PASSWORD_LENGTH} characters")
    return password


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: choose {' or '.join(ROLES)}")
    return role


def create_user(sessions: sessionmaker, name: str, role: str, password: str) -> Account:
    check_name(name), check_role(role), check_password(password)
    now = _now()
    user = User(name=name, role=role, password_hash=_hasher.hash(password), disabled=False, created_at=now,
                password_changed_at=now, failed_logins=0)  # fmt: skip
    try:
        with sessions.begin() as s:
            s.add(user)
    except IntegrityError:
        raise AccountError(f"a user named {name!r} exists already") from None
    return Account(user.id, user.name, user.role)


def _user(s, name: str) -> User:
    user = s.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise AccountError(f"no user named {name!r}")
    return user


def set_password(sessions: sessionmaker, name: str, password: str) -> None:
    """A new password; the user's sessions end and a lock is lifted (an admin's reset, or the user's own change)."""
    check_password(password)
    with sessions.begin() as s:
        user = _user(s, name)
        user.password_hash = _hasher.hash(password)
        user.password_changed_at = _now()
        user.failed_logins, user.locked_until = 0, None
        s.execute(delete(WebSession).where(WebSession.user_id == user.id))


def set_disabled(sessions: sessionmaker, name: str, disabled: bool) -> None:
    """Disable (sessions end at once) or enable an account. The last enabled admin cannot be disabled."""
    with sessions.begin() as s:
        user = _user(s, name)
        if disabled and user.role == "admin" and not user.disabled:
            admins = s.scalars(select(User).where(User.role == "admin", User.disabled.is_(False))).all()
            if len(admins) == 1:
                raise AccountError(f"{name!r} is the last enabled admin; create or enable another admin first")
        user.disabled = disabled
        if disabled:
            s.execute(delete(WebSession).where(WebSession.user_id == user.id))


def list_users(sessions: sessionmaker) -> list[User]:
    with sessions() as s:
        return list(s.scalars(select(User).order_by(User.role, User.name)))


def authenticate(sessions: sessionmaker, name: str, password: str, policy: LockoutPolicy, now: datetime | None = None) -> Account | LoginRefused:
    """Check a login; counts failures, locks after too many, unlocks on success.

    The attempt is counted by the transaction's first statement, an UPDATE of
    the user's row: concurrent logins for one account wait for each other
    there (a row lock on PostgreSQL, the write lock on SQLite), so a burst of
    guesses sent in parallel is counted and locked out like guesses in turn.
    """
    now = now or _now()
    if len(password) > MAX_PASSWORD_LENGTH:
        return REFUSED
    with sessions.begin() as s:
        counted = s.execute(update(User).where(User.name == name).values(failed_logins=User.failed_logins + 1).returning(User.id)).first()
        if counted is None:
            _verify(_DUMMY_HASH, password)  # an unknown name costs what a wrong password costs
            return REFUSED
        user = s.get(User, counted.id)
        locked_until = as_utc(user.locked_until)
        if locked_until is not None and locked_until > now:
            # Same answer and about the same time as a wrong password: a lock says nothing about whether the name exists.
            _verify(_DUMMY_HASH, password)
            user.failed_logins -= 1  # attempts during a lock do not lengthen it
            return REFUSED
        if not _verify(user.password_hash, password):
            lock = policy.lock_for(user.failed_logins)
            user.locked_until = now + lock if lock else None
            return REFUSED
        if user.disabled:
            user.failed_logins -= 1
            return LoginRefused("this account is disabled; ask an administrator")
        user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
        if _hasher.check_needs_rehash(user.password_hash):  # parameters raised since it was hashed
            user.password_hash = _hasher.hash(password)
        return Account(user.id, user.name, user.role)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionInfo:
    account: Account
    csrf_token: str
    expires_at: datetime


def start_session(sessions: sessionmaker, account: Account, ttl: timedelta) -> tuple[str, SessionInfo]:
    """A new session: (the cookie's token, its info). The token is never stored in clear."""
    token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), _now()
    with sessions.begin() as s:
        s.execute(delete(WebSession).where(WebSession.expires_at < now))  # housekeeping, cheap at login time
        s.add(WebSession(token_hash=_token_hash(token), user_id=account.id, csrf_token=csrf, created_at=now, expires_at=now + ttl))
    return token, SessionInfo(account, csrf, now + ttl)


def session_for(sessions: sessionmaker, token: str | None, now: datetime | None = None) -> SessionInfo | None:
    """The live session of a cookie token, or None (unknown, expired, or its user disabled)."""
    if not token:
        return None
    now = now or _now()
    with sessions() as s:
        row = s.execute(
            select(WebSession, User).join(User, User.id == WebSession.user_id).where(WebSession.token_hash == _token_hash(token))
        ).first()
        if row is None:
            return None
        web, user = row
        if as_utc(web.expires_at) <= now or user.disabled:
            return None
        return SessionInfo(Account(user.id, user.name, user.role), web.csrf_token, as_utc(web.expires_at))


def end_session(sessions: sessionmaker, token: str | None) -> None:
    if token:
        with sessions.begin() as s:
            s.execute(delete(WebSession).where(WebSession.token_hash == _token_hash(token)))


def csrf_matches(expected: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(expected.encode(), sent.encode())
