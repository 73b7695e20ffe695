"""Staff exports for BI tools: every inspection as CSV or GeoJSON, and the load grades as CSV.

    binsight export inspections --format csv|geojson --out FILE [--from DAY] [--to DAY] [--fraction F]
    binsight export loads --out FILE [--from DAY] [--to DAY] [--classes FILE]

PERSONAL DATA, for internal use only: a row of `inspections` names the bin
(its RFID identifies a household), where and when it was emptied (GPS, time)
and what was found in it. Hand these files only to staff who may see that,
keep them no longer than the analysis needs, and never publish them: the
aggregated, k-anonymous open data is `binsight export open-data`
(serve/open_data.py).

Files are written to a temporary file beside the target and renamed when
complete, so a failed export leaves no half file (and an earlier export of the
same name stays whole). Rows are streamed from the database, not held in memory.
Days are the city's local days (BINSIGHT_LOCAL_TIMEZONE); `captured_at` is UTC.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from serve.db import Inspection, as_utc
from serve.load_grade import INDICATOR_LABEL, LoadGrade
from serve.statistics import StatsFilter
from serve.time_buckets import local_date, week_label

FORMATS = ("csv", "geojson")
INSPECTION_COLUMNS = (
    "id", "captured_at", "local_day", "iso_week", "truck_id", "tour_id", "fraction", "district", "route", "bin_id", "bin_link",
    "verdict", "contamination_score", "quality_issue", "contaminants", "detections", "review_state", "model_version",
    "latitude", "longitude",
)  # fmt: skip
LOAD_COLUMNS = (
    "truck_id", "day", "tour", "fraction", "images", "excluded", "foreign_share_pct", "plastics_share_pct", "limit_foreign_pct",
    "limit_plastics_pct", "grade", "over", "unmapped_classes", "indicator",
)  # fmt: skip
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def why_unwritable(path: Path, err: OSError) -> str:
    """The reason in words: mkdir's "File exists" for a file in the way of a folder says nothing to a person."""
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    return f"{blocking} is a file, not a folder" if blocking is not None else (err.strerror or str(err))


@contextmanager
def atomic_text(out: Path) -> Iterator[TextIO]:
    """A text file that appears at `out` only when the block completes (fsync'd, renamed); ValueError when it cannot be written."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as err:
        raise ValueError(f"cannot write {out}: {why_unwritable(out, err)}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise ValueError(f"cannot write {out}: {why_unwritable(out, err)}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def spreadsheet_safe(value):
    """A text cell a spreadsheet would run as a formula (=, +, -, @) gets a leading apostrophe; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _inspection_rows(sessions: sessionmaker, flt: StatsFilter, tz: str) -> Iterator[Inspection]:
    query = select(Inspection).where(*flt.conditions(tz)).order_by(Inspection.captured_at, Inspection.id)
    with sessions() as s:
        for row in s.scalars(query.execution_options(yield_per=1000)):
            yield row
            s.expunge(row)  # keeps the identity map from growing with the export


def inspection_record(row: Inspection, tz: str) -> dict:
    captured = as_utc(row.captured_at)
    day = local_date(captured, tz)
    return {
        "id": row.id, "captured_at": captured.isoformat(), "local_day": day.isoformat(), "iso_week": week_label(day),
        "truck_id": row.truck_id, "tour_id": row.tour_id, "fraction": row.fraction, "district": row.district, "route": row.route,
        "bin_id": row.bin_id, "bin_link": row.bin_link, "verdict": row.verdict, "contamination_score": round(row.contamination_score, 4),
        "quality_issue": row.quality_issue,
        "contaminants": ";".join(sorted({d["label"] for d in row.detections or [] if d.get("contaminant")})),
        "detections": len(row.detections or []), "review_state": row.review_state, "model_version": row.model_version,
        "latitude": row.latitude, "longitude": row.longitude,
    }  # fmt: skip


def export_inspections(sessions: sessionmaker, flt: StatsFilter, tz: str, fmt: str, out: Path) -> int:
    """Write the filtered inspections to `out` as CSV or GeoJSON; the number written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose {' or '.join(FORMATS)}")
    count = 0
    with atomic_text(out) as f:
        if fmt == "csv":
            writer = csv.DictWriter(f, INSPECTION_COLUMNS)
            writer.writeheader()
            for row in _inspection_rows(sessions, flt, tz):
                writer.writerow({k: spreadsheet_safe(v) for k, v in inspection_record(row, tz).items()})
                count += 1
        else:
            f.write('{"type": "FeatureCollection", "features": [\n')
            for row in _inspection_rows(sessions, flt, tz):
                f.write(("" if count == 0 else ",\n") + json.dumps(geojson_feature(inspection_record(row, tz)), ensure_ascii=False))
                count += 1
            f.write("\n]}\n")
    return count


def geojson_feature(record: Mapping) -> dict:
    """A GeoJSON Feature (RFC 7946, WGS 84 lon/lat); without GPS its geometry is null, as the RFC allows."""
    lat, lon = record["latitude"], record["longitude"]
    geometry = {"type": "Point", "coordinates": [lon, lat]} if lat is not None and lon is not None else None
    properties = {k: v for k, v in record.items() if k not in ("latitude", "longitude")}
    return {"type": "Feature", "id": record["id"], "geometry": geometry, "properties": properties}


def _pct(share: float | None) -> float | None:
    return None if share is None else round(share * 100, 3)


def load_record(load: LoadGrade) -> dict:
    return {
        "truck_id": load.truck_id, "day": load.day.isoformat(), "tour": load.tour_label, "fraction": load.fraction,
        "images": load.images, "excluded": load.excluded, "foreign_share_pct": _pct(load.foreign_share),
        "plastics_share_pct": _pct(load.plastics_share), "limit_foreign_pct": load.limits.foreign_pct,
        "limit_plastics_pct": load.limits.plastics_pct, "grade": load.grade, "over": ";".join(load.over),
        "unmapped_classes": ";".join(sorted(load.unmapped_classes)), "indicator": INDICATOR_LABEL,
    }  # fmt: skip


def loads_csv(loads: list[LoadGrade]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, LOAD_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for load in loads:
        writer.writerow({k: spreadsheet_safe(v) for k, v in load_record(load).items()})
    return buf.getvalue()


def export_loads(loads: list[LoadGrade], out: Path) -> int:
    with atomic_text(out) as f:
        f.write(loads_csv(loads))
    return len(loads)
