"""District outlines from GeoJSON, and the district a point lies in.

    binsight registry import-districts districts.geojson [--name-property name] [--replace]

The file is a GeoJSON FeatureCollection (RFC 7946: WGS 84, longitude before
latitude) of Polygon or MultiPolygon features, each named by one of its
properties. Every geometry is checked with shapely (a self-intersecting
outline would answer "which district?" wrongly); any problem refuses the
whole file. A good file upserts the districts by name; `replace` also
removes districts the file no longer names. Bins that have a location but no
district then get the district they lie in (serve/registry.py does the same
for bins imported later).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from shapely.geometry import Point, shape
from shapely.prepared import prep
from shapely.validation import explain_validity
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from serve.db import Bin, District
from serve.registry_problems import Problem, RegistryRejected

AREA_TYPES = ("Polygon", "MultiPolygon")
NAME_MAX = District.__table__.c.name.type.length


@dataclass(frozen=True)
class DistrictImport:
    added: int
    updated: int
    removed: int
    bins_placed: int  # bins without a district that got one from the outlines


class DistrictLocator:
    """Which district a WGS 84 point lies in, for a set of outlines (the first by name where two overlap)."""

    def __init__(self, outlines: dict[str, dict]):
        self._areas = [(name, prep(shape(geometry))) for name, geometry in sorted(outlines.items())]

    @classmethod
    def stored(cls, session: Session) -> DistrictLocator:
        return cls({d.name: d.geometry for d in session.scalars(select(District))})

    def __bool__(self) -> bool:
        return bool(self._areas)

    def district_of(self, latitude: float, longitude: float) -> str | None:
        point = Point(longitude, latitude)  # GeoJSON order: x is longitude
        # covers, not contains: a bin on the boundary line belongs to a district too.
        return next((name for name, area in self._areas if area.covers(point)), None)


def read_districts(path: Path, name_property: str = "name") -> dict[str, dict]:
    """Name -> GeoJSON geometry of every feature; RegistryRejected listing every problem, ValueError for no JSON."""
    file = path.name
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as err:
        raise RegistryRejected(str(path), [Problem("not_utf8", file, f"byte {err.start} is not UTF-8")]) from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection" or not isinstance(document.get("features"), list):
        raise ValueError(f"{path} is not a GeoJSON FeatureCollection (an object with \"type\": \"FeatureCollection\" and a \"features\" list)")
    problems: list[Problem] = []
    outlines: dict[str, dict] = {}
    first_index: dict[str, int] = {}
    for index, feature in enumerate(document["features"]):
        checked = _checked_feature(feature, name_property, first_index)
        if isinstance(checked, tuple):
            kind, detail, column = checked
            problems.append(Problem(kind, file, detail, column=column, feature=index))
            continue
        name = checked
        first_index[name] = index
        outlines[name] = feature["geometry"]
    if problems:
        raise RegistryRejected(str(path), problems)
    return outlines


def _checked_feature(feature, name_property: str, first_index: dict[str, int]) -> str | tuple[str, str, str | None]:
    """The feature's district name, or its problem as (kind, detail, column)."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return "not_a_feature", "expected an object with \"type\": \"Feature\"", None
    properties = feature.get("properties") if isinstance(feature.get("properties"), dict) else {}
    name = properties.get(name_property)
    name = str(name).strip() if isinstance(name, (str, int)) and not isinstance(name, bool) else ""
    column = f"properties.{name_property}"
    if not name:
        known = ", ".join(sorted(properties)) or "none"
        return "missing_name", f"no property {name_property!r} with a name (its properties: {known}; choose one with --name-property)", column
    if len(name) > NAME_MAX:
        return "too_long", f"the name is {len(name)} characters; at most {NAME_MAX}", column
    if name in first_index:
        return "duplicate", f"district {name!r} is also features[{first_index[name]}]", column
    geometry = feature.get("geometry")
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind not in AREA_TYPES:
        return "wrong_geometry", f"district {name!r}: the geometry is {kind or 'missing'}; expected Polygon or MultiPolygon", "geometry"
    problem = _area_problem(geometry)
    if problem is not None:
        return problem[0], f"district {name!r}: {problem[1]}", "geometry"
    return name


def _area_problem(geometry: dict) -> tuple[str, str] | None:
    """Why the geometry is no usable WGS 84 area, as (kind, detail), or None."""
    try:
        area = shape(geometry)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as err:  # shapely's answers to malformed coordinate lists
        return "invalid_geometry", f"the coordinates do not form a {geometry.get('type')} ({err})"
    if area.is_empty:
        return "invalid_geometry", "the geometry is empty"
    min_x, min_y, max_x, max_y = area.bounds
    if not all(math.isfinite(v) for v in area.bounds) or min_x < -180 or max_x > 180 or min_y < -90 or max_y > 90:
        return "out_of_range", f"coordinates outside WGS 84 (longitude {min_x}..{max_x}, latitude {min_y}..{max_y}); GeoJSON puts longitude first"
    if not area.is_valid:
        return "invalid_geometry", explain_validity(area)
    return None


def import_districts(sessions: sessionmaker, outlines: dict[str, dict], replace: bool = False) -> DistrictImport:
    """Upsert the districts (replace: and remove the others), then place the bins that lack a district; one transaction."""
    now = datetime.now(timezone.utc)
    added = updated = removed = 0
    with sessions.begin() as s:
        stored = {d.name: d for d in s.scalars(select(District))}
        for name, geometry in outlines.items():
            if name in stored:
                if stored[name].geometry != geometry:
                    stored[name].geometry, stored[name].updated_at = geometry, now
                    updated += 1
            else:
                s.add(District(name=name, geometry=geometry, updated_at=now))
                added += 1
        if replace:
            gone = [name for name in stored if name not in outlines]
            if gone:
                s.execute(delete(District).where(District.name.in_(gone)))
            removed = len(gone)
        locator = DistrictLocator(outlines if replace else {**{n: d.geometry for n, d in stored.items()}, **outlines})
        placed = 0
        for b in s.scalars(select(Bin).where(Bin.district.is_(None), Bin.latitude.is_not(None), Bin.longitude.is_not(None))):
            district = locator.district_of(b.latitude, b.longitude)
            if district is not None:
                b.district, b.updated_at = district, now
                placed += 1
    return DistrictImport(added, updated, removed, placed)
