"""API keys for trucks: random tokens, stored only as SHA-256 hashes.

Keys are 256-bit random secrets, not passwords, so a fast hash is enough: no
dictionary to defend against, and checking a key on every request stays cheap.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from serve.db import ApiKey

KEY_PREFIX = "bsk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(sessions: sessionmaker, name: str, truck_id: str | None = None) -> str:
    """Create a key named `name` and return it; it is shown once and never stored in clear.

    With `truck_id` the key may post only as that truck and read back only its
    inspections; without, it is a fleet key (a depot gateway posting for many trucks).
    """
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    try:
        with sessions.begin() as s:
            s.add(ApiKey(name=name, key_hash=hash_key(key), created_at=datetime.now(timezone.utc), revoked=False,
                         truck_id=truck_id, fleet=truck_id is None))  # fmt: skip
    except IntegrityError:
        raise ValueError(f"an API key named {name!r} exists already") from None
    return key


def revoke_key(sessions: sessionmaker, name: str) -> bool:
    with sessions.begin() as s:
        key = s.scalars(select(ApiKey).where(ApiKey.name == name)).first()
        if key is None:
            return False
        key.revoked = True
        return True


@dataclass(frozen=True)
class KeyOwner:
    """Who a valid key belongs to: a truck's key posts and reads as that truck only; a fleet key (truck_id None) for all."""

    name: str
    truck_id: str | None

    def may_act_as(self, truck_id: str) -> bool:
        return self.truck_id is None or self.truck_id == truck_id


def key_owner(sessions: sessionmaker, key: str | None) -> KeyOwner | None:
    """The owner of a valid, unrevoked key, else None."""
    if not key:
        return None
    with sessions() as s:
        found = s.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked.is_(False))).first()
        return KeyOwner(found.name, None if found.fleet else found.truck_id) if found else None


class KeyVerifier:
    """Answers "is this key valid?" from memory for `ttl_s` seconds after the database said yes.

    A request then costs no database round trip for its key; the price is that
    a revoked key keeps working for at most `ttl_s` seconds. Refusals are never
    cached, so a newly created key works at once.
    """

    def __init__(self, sessions: sessionmaker, ttl_s: float):
        self.sessions, self.ttl_s = sessions, ttl_s
        self._valid: dict[str, tuple[KeyOwner, float]] = {}

    def cached(self, key: str | None) -> KeyOwner | None:
        if not key or self.ttl_s <= 0:
            return None
        hit = self._valid.get(hash_key(key))
        return hit[0] if hit and hit[1] > time.monotonic() else None

    def verify(self, key: str | None) -> KeyOwner | None:
        """The key's owner, asking the database (blocking)."""
        owner = key_owner(self.sessions, key)
        if owner is not None and self.ttl_s > 0:
            self._valid[hash_key(key)] = (owner, time.monotonic() + self.ttl_s)
        return owner
