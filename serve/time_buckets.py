"""Stored UTC times into the city's local days and ISO weeks, in SQL, on SQLite and PostgreSQL alike.

    local_week(Inspection.captured_at, "Europe/Berlin")   -> '2026-W47'
    local_day(Inspection.captured_at, "Europe/Berlin")    -> '2026-11-16'

Why local time, not UTC: a collection week runs Monday to Sunday on the city's
clock, and so does a truck's working day. A tour that starts at 01:30 on a
Monday in summer (23:30 UTC on Sunday) belongs to Monday's load and to the new
week; bucketed in UTC it would land in the old one.

Why this module: PostgreSQL converts time zones itself (`AT TIME ZONE`, and
`to_char` knows ISO weeks: IYYY, IW); SQLite knows neither time zones nor,
before 3.46, ISO weeks. There the same expressions call a Python function
registered on the connection (`prepare_connection`), so GROUP BY and
COUNT(DISTINCT ...) stay in the database on both.

Dates typed by a person (a dashboard filter, --from/--to) are local days too;
`utc_bounds` turns them into the half-open UTC interval that the index on
captured_at serves.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import String
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

ZONE_NAME = re.compile(r"^[A-Za-z0-9_+\-/]{1,64}$")
SQLITE_WEEK, SQLITE_DAY = "binsight_local_week", "binsight_local_day"


@lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone of that name; ValueError with one line when there is none."""
    try:
        if not ZONE_NAME.match(name):
            raise ZoneInfoNotFoundError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin; install the tzdata package if the system has none)") from None


def week_label(day: date) -> str:
    iso = day.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def week_start(label: str) -> date:
    """Monday of an ISO week label ('2026-W47')."""
    year, week = label.split("-W")
    return date.fromisocalendar(int(year), int(week), 1)


def local_date(moment: datetime, tz: str) -> date:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)  # SQLite hands back naive UTC
    return aware.astimezone(zone(tz)).date()


def utc_bounds(first: date | None, last: date | None, tz: str) -> tuple[datetime | None, datetime | None]:
    """Local days first..last (inclusive) as [start, end) in UTC; None leaves that side open."""
    tzinfo = zone(tz)
    start = datetime.combine(first, time.min, tzinfo).astimezone(timezone.utc) if first else None
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo).astimezone(timezone.utc) if last else None
    return start, end


class _LocalBucket(FunctionElement):
    type = String()
    # The zone is part of the statement's cache key: a compiled statement for one zone must not serve another.
    _traverse_internals = [*FunctionElement._traverse_internals, ("tz", InternalTraversal.dp_string)]
    inherit_cache = True

    def __init__(self, column, tz: str):
        zone(tz)  # validated here: the name is written into the SQL as a literal (see _pg)
        self.tz = tz
        super().__init__(column)


class local_week(_LocalBucket):  # noqa: N801  (an SQL function, named like one)
    """The ISO week ('2026-W47') of a stored time, on the local calendar of `tz`."""

    name = "local_week"
    inherit_cache = True


class local_day(_LocalBucket):  # noqa: N801
    """The day ('2026-11-16') of a stored time, on the local calendar of `tz`."""

    name = "local_day"
    inherit_cache = True


def _literal(tz: str) -> str:
    # A literal, not a bound parameter: PostgreSQL matches a GROUP BY expression to the SELECT's by its text,
    # and two parameters ($1, $2) with the same value do not match. zone() allowed only [A-Za-z0-9_+-/].
    return "'" + tz.replace("'", "''") + "'"


@compiles(local_week, "postgresql")
def _pg_week(element, compiler, **kw):
    (column,) = element.clauses
    return f"to_char(({compiler.process(column, **kw)}) AT TIME ZONE {_literal(element.tz)}, 'IYYY-\"W\"IW')"


@compiles(local_day, "postgresql")
def _pg_day(element, compiler, **kw):
    (column,) = element.clauses
    return f"to_char(({compiler.process(column, **kw)}) AT TIME ZONE {_literal(element.tz)}, 'YYYY-MM-DD')"


@compiles(local_week, "sqlite")
def _sqlite_week(element, compiler, **kw):
    (column,) = element.clauses
    return f"{SQLITE_WEEK}({compiler.process(column, **kw)}, {_literal(element.tz)})"


@compiles(local_day, "sqlite")
def _sqlite_day(element, compiler, **kw):
    (column,) = element.clauses
    return f"{SQLITE_DAY}({compiler.process(column, **kw)}, {_literal(element.tz)})"


def _stored_local_date(stored: str, tz: str) -> date:
    # SQLite keeps a DateTime as text, 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC (serve/db.py as_utc).
    return local_date(datetime.fromisoformat(stored), tz)


def _sqlite_week_fn(stored: str | None, tz: str) -> str | None:
    return None if stored is None else week_label(_stored_local_date(stored, tz))


def _sqlite_day_fn(stored: str | None, tz: str) -> str | None:
    return None if stored is None else _stored_local_date(stored, tz).isoformat()


def prepare_connection(connection: Connection) -> None:
    """Give a SQLite connection the functions local_week/local_day compile to (idempotent; nothing on PostgreSQL)."""
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.driver_connection
    raw.create_function(SQLITE_WEEK, 2, _sqlite_week_fn, deterministic=True)
    raw.create_function(SQLITE_DAY, 2, _sqlite_day_fn, deterministic=True)


def fetch_all(sessions, query) -> list:
    """Run a query that may use local_week/local_day, on a connection prepared for them; all its rows."""
    with sessions() as s:
        connection = s.connection()
        prepare_connection(connection)
        return connection.execute(query).all()
