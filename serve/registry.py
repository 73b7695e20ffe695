"""The city's bin registry, imported from CSV: which bin an RFID tag belongs to, where it stands, whose route it is on.

    binsight registry import-bins bins.csv [--replace]

The file has a header line naming (in any order; other columns are ignored)

    rfid;address;district;route;fraction;latitude;longitude
    E2004711;Hauptstr. 1;Mitte;R-12;biowaste;51,6739;7,8159

UTF-8 with or without a byte order mark; `;` (what German Excel writes, and
then a decimal comma in the coordinates is read too) or `,` as delimiter,
told apart from the header. rfid, address and fraction are required;
district and route may be empty; latitude and longitude come together or
not at all. A bin without a district but with a location gets the district
it lies in (serve/districts.py).

Every problem is reported with its line and column, and any problem refuses
the whole file: nothing is changed. A good file upserts the bins by RFID;
`replace` also removes the bins the file no longer lists. Inspections keep
the district and route they were stored with; `binsight registry relink`
recomputes them (serve/bin_link.py).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import sessionmaker

from serve.db import Bin, Inspection
from serve.districts import DistrictLocator
from serve.registry_problems import Problem, RegistryRejected
from serve.schemas import ID_PATTERN

COLUMNS = ("rfid", "address", "district", "route", "fraction", "latitude", "longitude")
REQUIRED_VALUES = ("rfid", "address", "fraction")
DELIMITERS = ";,"
MAX_LENGTH = {name: Bin.__table__.c[name].type.length for name in ("rfid", "district", "route", "fraction")}
RFID = re.compile(ID_PATTERN)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # tab, line feed and carriage return may sit inside a quoted value


@dataclass(frozen=True)
class BinRecord:
    """One line of the file, checked."""

    line: int
    rfid: str
    address: str
    district: str | None
    route: str | None
    fraction: str
    latitude: float | None
    longitude: float | None


@dataclass(frozen=True)
class BinImport:
    added: int
    updated: int
    unchanged: int
    removed: int
    placed: int  # bins whose district came from the district outlines


def read_bins(path: Path, fractions: Collection[str] | None = None) -> list[BinRecord]:
    """Every bin of the CSV file; RegistryRejected listing every problem. `fractions`: the known ones (None: not checked)."""
    file = path.name
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise RegistryRejected(str(path), [Problem("not_utf8", file, f"byte {err.start} is not UTF-8", line=line)]) from None
    header_line = text.split("\n", 1)[0]
    if not header_line.strip():
        raise ValueError(f"{path} has no header line; the first line must name the columns: {', '.join(COLUMNS)}")
    delimiter = _delimiter(header_line)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, restkey="\0extra")
    try:
        reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or []]
    except csv.Error as err:  # a header with a value over 128 KiB
        raise RegistryRejected(str(path), [Problem("unreadable", file, f"the CSV reader stops here: {err}", line=1)]) from None
    missing = [c for c in COLUMNS if c not in reader.fieldnames]
    if missing:
        raise RegistryRejected(str(path), [
            Problem("missing_column", file, f"the header names {', '.join(reader.fieldnames)}; {', '.join(missing)} missing", line=1, column=c)
            for c in missing
        ])  # fmt: skip
    problems: list[Problem] = []
    records: list[BinRecord] = []
    first_line: dict[str, int] = {}
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as err:  # a value over csv.field_size_limit() (128 KiB)
            problems.append(Problem("unreadable", file, f"the CSV reader stops here: {err}", line=reader.reader.line_num))  # DictReader's own count lags a failed row
            break
        line = reader.line_num  # the line the record ends on: its own, unless a quoted value spans lines
        if "\0extra" in row or any(v is None for v in row.values()):
            count = len(reader.fieldnames) + len(row.get("\0extra", [])) - sum(v is None for v in row.values())
            problems.append(Problem("field_count", file, f"{count} fields; the header has {len(reader.fieldnames)} (delimiter {delimiter!r})", line=line))
            continue
        rfid = row["rfid"].strip()
        if rfid and rfid in first_line:
            problems.append(Problem("duplicate", file, f"RFID {rfid!r} is also on line {first_line[rfid]}", line=line, column="rfid"))
            continue
        first_line.setdefault(rfid, line)
        record, found = _checked(row, line, file, delimiter, fractions)
        problems += found
        if record is not None:
            records.append(record)
    if problems:
        raise RegistryRejected(str(path), problems)
    return records


def _delimiter(header_line: str) -> str:
    try:
        return csv.Sniffer().sniff(header_line, delimiters=DELIMITERS).delimiter
    except csv.Error:
        raise ValueError(f"cannot tell the delimiter from the header {header_line.strip()!r}: separate the columns with ';' or ','") from None


def _checked(row: dict[str, str], line: int, file: str, delimiter: str, fractions: Collection[str] | None) -> tuple[BinRecord | None, list[Problem]]:
    values = {c: row[c].strip() for c in COLUMNS}
    problems = [Problem("empty_value", file, f"{c} is required", line=line, column=c) for c in REQUIRED_VALUES if not values[c]]
    # A NUL or other control character is no part of an address: PostgreSQL refuses NUL in text, and letters would print the rest.
    for column in COLUMNS:
        if found := CONTROL.search(values[column]):
            problems.append(Problem("control_character", file, f"character {ord(found.group()):#04x} in {values[column][:40]!r}", line=line, column=column))
    for column, limit in MAX_LENGTH.items():
        if len(values[column]) > limit:
            problems.append(Problem("too_long", file, f"{len(values[column])} characters; at most {limit}", line=line, column=column))
    if values["rfid"] and not RFID.fullmatch(values["rfid"]):
        problems.append(Problem("invalid_rfid", file, f"{values['rfid']!r}", line=line, column="rfid"))
    if values["fraction"] and fractions is not None and values["fraction"] not in fractions:
        problems.append(Problem("unknown_fraction", file, f"{values['fraction']!r}; known: {', '.join(sorted(fractions))}", line=line, column="fraction"))
    latitude = _coordinate(values, "latitude", 90, delimiter, line, file, problems)
    longitude = _coordinate(values, "longitude", 180, delimiter, line, file, problems)
    if bool(values["latitude"]) != bool(values["longitude"]):
        given, absent = ("latitude", "longitude") if values["latitude"] else ("longitude", "latitude")
        problems.append(Problem("incomplete_location", file, f"{given} without {absent}", line=line, column=absent))
    if problems:
        return None, problems
    return BinRecord(line, values["rfid"], values["address"], values["district"] or None, values["route"] or None, values["fraction"],
                     latitude, longitude), []  # fmt: skip


def _coordinate(values: dict[str, str], column: str, limit: float, delimiter: str, line: int, file: str, problems: list[Problem]) -> float | None:
    text = values[column]
    if not text:
        return None
    if delimiter == ";":  # German Excel: 51,6739
        text = text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        problems.append(Problem("invalid_number", file, f"{values[column]!r} is not a number", line=line, column=column))
        return None
    if not math.isfinite(value) or not -limit <= value <= limit:
        problems.append(Problem("out_of_range", file, f"{values[column]} is outside -{limit}..{limit}", line=line, column=column))
        return None
    return value


def import_bins(sessions: sessionmaker, records: list[BinRecord], replace: bool = False) -> BinImport:
    """Upsert the bins (replace: and remove the others), in one transaction; districts from the outlines where the file has none."""
    now = datetime.now(timezone.utc)
    added = updated = unchanged = removed = placed = 0
    with sessions.begin() as s:
        locator = DistrictLocator.stored(s)
        stored = {b.rfid: b for b in s.scalars(select(Bin))}
        for r in records:
            district = r.district
            if district is None and locator and r.latitude is not None:
                district = locator.district_of(r.latitude, r.longitude)
                placed += district is not None
            fields = {"address": r.address, "district": district, "route": r.route, "fraction": r.fraction,
                      "latitude": r.latitude, "longitude": r.longitude}  # fmt: skip
            existing = stored.get(r.rfid)
            if existing is None:
                s.add(Bin(rfid=r.rfid, updated_at=now, **fields))
                added += 1
            elif any(getattr(existing, k) != v for k, v in fields.items()):
                for k, v in fields.items():
                    setattr(existing, k, v)
                existing.updated_at = now
                updated += 1
            else:
                unchanged += 1
        if replace:
            listed = {r.rfid for r in records}
            gone = [rfid for rfid in stored if rfid not in listed]
            for start in range(0, len(gone), 1000):  # bounded IN lists
                s.execute(delete(Bin).where(Bin.rfid.in_(gone[start:start + 1000])))
            removed = len(gone)
    return BinImport(added, updated, unchanged, removed, placed)


@dataclass(frozen=True)
class BinReport:
    bin: Bin
    inspections_by_link: dict[str | None, int]  # bin_link (None: stored before the registry) -> inspections


def show_bin(sessions: sessionmaker, rfid: str) -> BinReport:
    """The bin's registry entry and how its inspections are linked; ValueError when the registry has no such bin."""
    with sessions() as s:
        found = s.get(Bin, rfid)
        if found is None:
            raise ValueError(f"no bin {rfid!r} in the registry (RFIDs are compared exactly; import them with `binsight registry import-bins`)")
        counts = dict(s.execute(select(Inspection.bin_link, func.count()).where(Inspection.bin_id == rfid).group_by(Inspection.bin_link)).all())
    return BinReport(found, counts)


def districts_and_routes(sessions: sessionmaker) -> tuple[list[str], list[str]]:
    """The registry's district and route names, sorted: what the review queue's filters offer."""
    with sessions() as s:
        districts = s.scalars(select(Bin.district).where(Bin.district.is_not(None)).distinct().order_by(Bin.district)).all()
        routes = s.scalars(select(Bin.route).where(Bin.route.is_not(None)).distinct().order_by(Bin.route)).all()
    return list(districts), list(routes)
