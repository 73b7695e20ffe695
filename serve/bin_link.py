"""Which registered bin an inspection's photo belongs to, decided when it is stored (and again by `binsight registry relink`).

The truck reads the bin's RFID tag as it lifts the bin; the registry
(serve/registry.py) says where that bin stands. The link is

    uncertain, missing_rfid   the truck sent no RFID (its reader failed)
    uncertain, unknown_rfid   the registry has no bin with that RFID
    uncertain, far_from_bin   the capture's GPS position lies farther than
                              BINSIGHT_BIN_LINK_MAX_DISTANCE_M from the bin's
                              registered location (bin_distance_m says how far)
    linked                    otherwise, including when the capture or the bin
                              has no position to compare

`binsight registry relink` recomputes links from the registry as it is now.
By default it touches only inspections that are not linked yet (uncertain,
or stored before the registry): a linked inspection keeps the district and
route of its capture time, so a bin that moves to another route, or a
re-drawn district, does not rewrite the history the statistics and the
open data already counted. `--all` recomputes every link (after correcting
a wrong registry import, say). Neither ever touches the anonymous copies of
an erased bin (link `erased`, serve/gdpr.py): they have no bin to link, and
recomputing would make them `missing_rfid` without a district, dropping them
from the statistics the erasure kept them for.

Reviewers see an uncertain link, and such inspections never escalate: a
notice must not reach a household for a bin that may not be theirs. The
bin's district and route are copied onto the inspection as they were at
capture time, also when the link is far_from_bin (the RFID still names
that bin); they stay None for a missing or unknown RFID.

A bin registered under another fraction than the truck posted is still
linked: RFID and position agree, and the verdict was judged under the
fraction the truck collects. The review page shows the difference (the
registry or the truck's setting may be wrong), the API reports the posted
fraction.

At upload the lookup is one primary-key read of `bins`, with no cache: the
registry is changed by the CLI, another process, which could not invalidate
one. Measured against a 20,000-bin registry (2 busy cores, interleaved
uploads through TestClient with the lookup and with a no-op in its place):
SQLite +0.7 ms of a 21 ms median upload (800 uploads), PostgreSQL within
the noise (-0.7 ms of 26 ms, 300 uploads); the lookup alone costs
0.4-0.5 ms on SQLite and 1.4-1.9 ms on PostgreSQL (pool ping included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from serve.db import ERASED, Bin, Inspection

EARTH_RADIUS_M = 6_371_008.8  # the mean radius (IUGG): haversine's error against WGS 84 stays under 0.5 %


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS 84 points."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi, d_lambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Link:
    state: str  # serve/db.py BIN_LINKS
    reason: str | None = None  # serve/db.py BIN_LINK_REASONS, when uncertain
    distance_m: float | None = None
    district: str | None = None
    route: str | None = None


def link_for(registered: Bin | None, bin_id: str | None, latitude: float | None, longitude: float | None, max_distance_m: float) -> Link:
    """The link of a capture to `registered`, the registry's bin of its RFID (None: no such bin)."""
    if bin_id is None:
        return Link("uncertain", "missing_rfid")
    if registered is None:
        return Link("uncertain", "unknown_rfid")
    distance = None
    if None not in (latitude, longitude, registered.latitude, registered.longitude):
        distance = round(haversine_m(latitude, longitude, registered.latitude, registered.longitude), 1)
    far = distance is not None and distance > max_distance_m
    return Link("uncertain" if far else "linked", "far_from_bin" if far else None, distance, registered.district, registered.route)


def apply_link(row: Inspection, link: Link) -> None:
    row.bin_link, row.bin_link_reason, row.bin_distance_m = link.state, link.reason, link.distance_m
    row.district, row.route = link.district, link.route


def link_to_registry(sessions: sessionmaker, row: Inspection, max_distance_m: float) -> None:
    """Set the row's bin link, district and route from the registry (one primary-key read)."""
    registered = None
    if row.bin_id is not None:
        with sessions() as s:
            registered = s.get(Bin, row.bin_id)
    apply_link(row, link_for(registered, row.bin_id, row.latitude, row.longitude, max_distance_m))


@dataclass(frozen=True)
class Relinked:
    inspections: int
    changed: int
    by_link: dict[str, int]  # "linked", "uncertain: <reason>" -> inspections


def relink(sessions: sessionmaker, max_distance_m: float, since: datetime | None = None, batch: int = 500,
           everything: bool = False) -> Relinked:  # fmt: skip
    """Recompute the links of the inspections captured at or after `since` (all without) that are not linked yet, or of
    all of them with `everything` (module docstring); never an erased bin's copies. In batches of one transaction each."""
    seen = changed = 0
    by_link: dict[str, int] = {}
    last_id = ""
    scope = [func.coalesce(Inspection.bin_link, "") != ERASED]
    if not everything:
        scope.append(or_(Inspection.bin_link.is_(None), Inspection.bin_link == "uncertain"))
    if since is not None:
        scope.append(Inspection.captured_at >= since)
    while True:
        with sessions.begin() as s:
            conditions = [Inspection.id > last_id, *scope]
            rows = s.scalars(select(Inspection).where(*conditions).order_by(Inspection.id).limit(batch)).all()
            if not rows:
                break
            registered = _bins(s, {r.bin_id for r in rows if r.bin_id is not None})
            for row in rows:
                link = link_for(registered.get(row.bin_id), row.bin_id, row.latitude, row.longitude, max_distance_m)
                before = (row.bin_link, row.bin_link_reason, row.bin_distance_m, row.district, row.route)
                apply_link(row, link)
                changed += before != (link.state, link.reason, link.distance_m, link.district, link.route)
                key = link.state if link.reason is None else f"{link.state}: {link.reason}"
                by_link[key] = by_link.get(key, 0) + 1
            seen += len(rows)
            last_id = rows[-1].id
    return Relinked(seen, changed, dict(sorted(by_link.items())))


def _bins(session: Session, rfids: set[str]) -> dict[str, Bin]:
    if not rfids:
        return {}
    return {b.rfid: b for b in session.scalars(select(Bin).where(Bin.rfid.in_(rfids)))}
