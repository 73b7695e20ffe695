"""One decision about a bin at a time: the lock that serialises a bin's escalation level.

Two confirmations of one bin racing would both read the bin's earlier
notices and both issue level n. Locking the bin's registry row does not do:
a bin removed from the registry (`registry import-bins --replace`) keeps its
inspections and notices but has no row to lock. So the lock is keyed by the
bin id alone:

- PostgreSQL: a transaction-scoped advisory lock (`pg_advisory_xact_lock`) on
  a 64-bit hash of the bin id, released at commit or rollback; the second
  transaction waits there, then reads the first one's notice (READ COMMITTED
  reads what was committed before each statement);
- SQLite: nothing to do, it has one writer at a time and the decision's
  transaction holds the write lock already (serve/review.py `decide` writes
  first, deleting the claim).

A hash collision of two bins only makes them wait for each other.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select
from sqlalchemy.orm import Session

NAMESPACE = b"binsight.notices.bin:"  # keeps these keys apart from any other advisory lock in the database


def lock_key(bin_id: str) -> int:
    """A stable signed 64-bit key (PostgreSQL's bigint) for the bin: Python's hash() changes between processes."""
    return int.from_bytes(hashlib.blake2b(NAMESPACE + bin_id.encode("utf-8"), digest_size=8).digest(), "big", signed=True)


def lock_bin(s: Session, bin_id: str) -> None:
    """Wait until no other transaction holds bin `bin_id`, then hold it until this transaction ends."""
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        s.execute(select(func.pg_advisory_xact_lock(lock_key(bin_id))))
    elif dialect != "sqlite":
        raise NotImplementedError(f"no bin lock for the {dialect} database; binsight runs on SQLite and PostgreSQL")
