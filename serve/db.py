"""The service's tables (SQLAlchemy 2 declarative); migrations in serve/migrations (Alembic).

An inspection is identified to the outside by a UUID, and to trucks by
(truck_id, capture_id): the unique constraint on that pair is what makes a
retried upload return the first inspection instead of creating a second.

People (reviewers, admins) are `users` with argon2 password hashes and
server-side `web_sessions`; trucks are `api_keys`. A review is a claim
(`review_claims`, one per inspection, expiring) and decisions appended to
`review_events`, the audit trail, which is never updated, only added to;
the inspection row carries the resulting state and corrected boxes.

Operations (issue 10): the city's `bins` registry and `districts`, the link
of each inspection to its bin (stored with the inspection: what was known at
capture time), `image_access` (who opened which photo), and `notices`, one
per confirmed finding, whose levels make a bin's escalation.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker


ROLES = ("reviewer", "admin")
REVIEW_STATES = ("confirmed", "rejected", "unusable")
"""An inspection's final review state: the model's verdict confirmed or rejected, or the photo unusable."""
ERASED = "erased"
"""The bin link (and truck) of an anonymous copy left by `gdpr delete` (serve/gdpr.py): no bin, no photo, never relinked or reviewed."""
BIN_LINKS = ("linked", "uncertain", ERASED)
"""An inspection's link to the bin registry: uncertain ones are shown to reviewers as such and never escalate; erased ones
are anonymous copies of an erased bin's inspections, kept for the statistics."""
BIN_LINK_REASONS = ("missing_rfid", "unknown_rfid", "far_from_bin")
QC_DRAW_RANGE = 10_000
"""Every inspection draws a number below this when stored; a clean one is sampled for quality control
when its draw is below rate x range, so the sample is random, fixed, and needs no scheduled job."""


def as_utc(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime: SQLite hands back naive ones for timezone-aware columns, stored in UTC."""
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _qc_draw() -> int:
    return secrets.randbelow(QC_DRAW_RANGE)


class Base(DeclarativeBase):
    pass


class Inspection(Base):
    __tablename__ = "inspections"
    __table_args__ = (
        UniqueConstraint("truck_id", "capture_id", name="uq_inspections_truck_capture"),
        Index("ix_inspections_bin_captured", "bin_id", "captured_at"),
        Index("ix_inspections_captured", "captured_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    truck_id: Mapped[str] = mapped_column(String(64))
    capture_id: Mapped[str] = mapped_column(String(128))
    bin_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: the truck could not read the RFID tag
    fraction: Mapped[str] = mapped_column(String(32), index=True)
    captured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    verdict: Mapped[str] = mapped_column(String(16), index=True)
    contamination_score: Mapped[float] = mapped_column(Float)
    quality_issue: Mapped[str | None] = mapped_column(String(32), nullable=True)
    detections: Mapped[list] = mapped_column(JSON)
    model_version: Mapped[str] = mapped_column(String(64))
    image_path: Mapped[str | None] = mapped_column(String(255), nullable=True)
    image_sha256: Mapped[str] = mapped_column(String(64))
    image_width: Mapped[int] = mapped_column()
    image_height: Mapped[int] = mapped_column()
    image_deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    qc_draw: Mapped[int | None] = mapped_column(Integer, nullable=True, default=_qc_draw)
    review_state: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)  # None: not reviewed
    reviewed_detections: Mapped[list | None] = mapped_column(JSON, nullable=True)
    """The boxes as the reviewer left them: the truth for training (`binsight export-reviewed`)."""
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tour_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The truck's tour (one load to the plant) as the truck reports it; None: the load is the truck's day."""
    bin_link: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    """One of BIN_LINKS: whether the photo belongs to the registered bin; None for rows stored before the registry."""
    bin_link_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)  # one of BIN_LINK_REASONS when uncertain
    bin_distance_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Metres between the capture's GPS position and the bin's registered location, when both are known."""
    district: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    route: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    privacy_regions: Mapped[list | None] = mapped_column(JSON, nullable=True)
    """What was blurred or blanked before the image was written: [{"kind": ..., "box": [x1, y1, x2, y2]}]."""
    visible_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Share of the frame that shows the hopper (inside the truck's mask; 1.0 without one): the waste area of a load grade."""


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    name: Mapped[str] = mapped_column(String(128), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    truck_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The one truck this key may post as and read back; None with `fleet` for a fleet-wide key."""
    fleet: Mapped[bool] = mapped_column(Boolean, default=False)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # one of ROLES
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    password_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    """Consecutive failed logins since the last successful one."""
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebSession(Base):
    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie's token
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReviewClaim(Base):
    __tablename__ = "review_claims"

    inspection_id: Mapped[str] = mapped_column(String(36), ForeignKey("inspections.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReviewEvent(Base):
    __tablename__ = "review_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inspection_id: Mapped[str] = mapped_column(String(36), index=True)  # no foreign key: the trail outlives a deleted inspection
    user_name: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decision: Mapped[str] = mapped_column(String(16))  # one of REVIEW_STATES
    state_before: Mapped[str | None] = mapped_column(String(16), nullable=True)
    detections_before: Mapped[list] = mapped_column(JSON)
    detections_after: Mapped[list] = mapped_column(JSON)
    changes: Mapped[list] = mapped_column(JSON)
    """What the reviewer changed, one entry per box: relabelled, deleted, added, moved."""
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class Bin(Base):
    """A bin of the city's registry (`binsight registry import-bins CSV`)."""

    __tablename__ = "bins"

    rfid: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(Text)
    district: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    route: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    fraction: Mapped[str] = mapped_column(String(32))
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class District(Base):
    """A district's outline (`binsight registry import-districts GEOJSON`)."""

    __tablename__ = "districts"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    geometry: Mapped[dict] = mapped_column(JSON)  # a GeoJSON Polygon or MultiPolygon, WGS 84
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ImageAccess(Base):
    """One row per photo, evidence image, crop or notice someone opened: the access log data protection asks for."""

    __tablename__ = "image_access"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor_kind: Mapped[str] = mapped_column(String(16))  # user | api_key | cli
    actor: Mapped[str] = mapped_column(String(128))  # the user's or key's name
    inspection_id: Mapped[str] = mapped_column(String(36), index=True)  # no foreign key: the log outlives a deleted inspection
    bin_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    what: Mapped[str] = mapped_column(String(16))  # image | evidence | crop | notice | export


class Notice(Base):
    """A letter to a household about one confirmed finding; its level is the bin's escalation at the time."""

    __tablename__ = "notices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    inspection_id: Mapped[str] = mapped_column(String(36), unique=True)  # one notice per confirmed finding
    bin_id: Mapped[str] = mapped_column(String(64), index=True)
    fraction: Mapped[str] = mapped_column(String(32))
    level: Mapped[int] = mapped_column(Integer)  # 1 = first rule of the fraction's escalation
    action: Mapped[str] = mapped_column(String(64))  # the rule's name, e.g. information letter, warning, not emptied
    contaminants: Mapped[list] = mapped_column(JSON)  # class names found
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    issued_by: Mapped[str] = mapped_column(String(64))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    withdrawn_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


DATABASE_URL_EXAMPLE = "e.g. sqlite:///var/binsight.db or postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"


class DatabaseUrlError(ValueError):
    """BINSIGHT_DATABASE_URL does not parse; the message never quotes it (which part is the password is what is unclear)."""


def parse_database_url(url: str) -> URL:
    """The parsed URL, or DatabaseUrlError in one line that holds no part of it.

    SQLAlchemy's own errors quote what they could not read: without '@HOST' it takes the password for the
    port ("invalid literal for int(): 's3cret'"), with two '@' part of the password for the host, and with a
    '/' too many the password parses as part of the database name, which is then shown. A numeric password
    without '@HOST' (`postgresql://admin:1234/db`) is a valid host and port, and no check can tell."""
    if url.count("@") > 1:
        raise DatabaseUrlError(f"BINSIGHT_DATABASE_URL has more than one @: write each @ in the password or query as %40; {DATABASE_URL_EXAMPLE}")
    try:
        parsed = make_url(url)
    except ValueError:
        hint = "the port after HOST: is not a number" if "@" in url else "what follows a ':' is not a port number (is '@HOST' missing?)"
        raise DatabaseUrlError(f"BINSIGHT_DATABASE_URL does not parse: {hint}; {DATABASE_URL_EXAMPLE}") from None
    except ArgumentError:
        raise DatabaseUrlError(f"BINSIGHT_DATABASE_URL is not a database URL; {DATABASE_URL_EXAMPLE}") from None
    if "@" in url.split("?", 1)[0] and parsed.username is None and parsed.get_backend_name() != "sqlite":  # a SQLite path may hold an @
        raise DatabaseUrlError(
            f"BINSIGHT_DATABASE_URL has an @ that does not follow USER:PASSWORD (a '/' too many after '://'?); {DATABASE_URL_EXAMPLE}"
        )
    return parsed


def _is_secret(query_key: str) -> bool:
    return "password" in query_key.lower()  # `?password=`, `?sslpassword=`: a password given in the query


def masked_database_url(parsed: URL) -> str:
    """The URL to show: its password, and any query value whose key names a password (`?password=`), as ***."""
    query = {key: "***" if _is_secret(key) else value for key, value in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


def database_url_secrets(parsed: URL) -> list[str]:
    """Every password the URL holds, to be scrubbed from a driver's message that may quote one."""
    found = [str(parsed.password)] if parsed.password else []
    for key, value in parsed.query.items():
        if _is_secret(key):
            found += [str(v) for v in (value if isinstance(value, tuple) else (value,))]
    return found


def make_engine(url: str) -> Engine:
    parsed = parse_database_url(url)
    if url.startswith("sqlite"):
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)  # a fresh install has no var/ yet
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # WAL lets readers run during a write; synchronous=FULL makes a
            # committed inspection survive a power cut, not only a crash.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
