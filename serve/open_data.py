"""Open data for the city's portal: contamination per district, ISO week and fraction, never per household.

    binsight export open-data --out DIR [--k 10] [--from DAY] [--to DAY] [--fraction F]

writes DIR/contamination_by_district_week.csv and DIR/metadata.json (DCAT-AP
style: title, description, licence, publisher, temporal and spatial coverage,
method, columns).

How no row can identify a household:
- a cell is (district, ISO week, fraction); nothing finer is published: no
  bin id, address, GPS position, truck, route, tour or time of day;
- the k rule: a cell describing fewer than k DISTINCT bins (default 10,
  BINSIGHT_OPEN_DATA_MIN_BINS, --k) is suppressed: the row stays, its numbers
  are blank and `suppressed` says why. Photos whose bin is unknown (no RFID
  read, or anonymised by `gdpr delete`) count as inspections but add no bin,
  so the count errs on the safe side;
- no totals, no margins: a published district total (or week total, or
  all-fractions row) minus the published cells would give a suppressed cell
  back by subtraction. Instead of suppressing a second cell in every such
  group (complementary suppression), binsight publishes no sums at all; a
  user who adds up cells gets the sum of the published cells only;
- whole weeks only: the range is widened to whole ISO weeks (Monday to
  Sunday) and ends with the last week that is over. A cell of a running week,
  or a week cut by a --from in its middle, would differ between two exports by
  the bins of a few days, and that difference is a cell of fewer than k bins.
Residual risk, said in the metadata too: a cell whose rate is 100 % says that
every bin inspected there that week was contaminated; someone who knows that a
given bin was emptied in that district that week learns its result. k bounds
how often that happens, not whether; the city can raise k.

The numbers are model output (the verdict) and human review (`confirmed`):
serve/statistics.py defines them; the metadata states it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import and_, distinct, func, select
from sqlalchemy.orm import sessionmaker

from pipeline.atomic import write_bytes_atomic
from serve.db import Inspection
from serve.exports import why_unwritable
from serve.statistics import CONFIRMED_FINDING, NOT_USABLE, REVIEWED, USABLE, Counts, StatsFilter, count_where
from serve.time_buckets import local_date, local_week, prepare_connection, week_start

DATA_FILE = "contamination_by_district_week.csv"
METADATA_FILE = "metadata.json"
UNASSIGNED = "unassigned"
COLUMNS = {
    "district": "District (from the city's district outlines); 'unassigned' where the bin lies in none.",
    "iso_week": "ISO 8601 week, e.g. 2026-W47, on the local calendar.",
    "week_start": "Monday of that week.",
    "fraction": "Waste fraction (biowaste, paper, packaging, residual).",
    "inspections": "Photos of bins taken at emptying.",
    "usable": "Photos good enough to judge (inspections less those too dark, blurred, covered, ...).",
    "contaminated": "Usable photos in which the model found a contaminant (Störstoff).",
    "confirmed": "Usable photos whose contamination a person confirmed (a lower bound: not every photo is reviewed).",
    "rate": "contaminated / usable.",
    "confirmed_rate": "confirmed / usable.",
    "suppressed": "Empty when published; else why the numbers of this row are withheld.",
}
NUMBER_COLUMNS = ("inspections", "usable", "contaminated", "confirmed", "rate", "confirmed_rate")
LICENCES = {
    "dl-de/by-2-0": ("Datenlizenz Deutschland – Namensnennung – Version 2.0", "https://www.govdata.de/dl-de/by-2-0"),
    "dl-de/zero-2-0": ("Datenlizenz Deutschland – Zero – Version 2.0", "https://www.govdata.de/dl-de/zero-2-0"),
    "CC-BY-4.0": ("Creative Commons Attribution 4.0 International", "https://creativecommons.org/licenses/by/4.0/"),
    "CC0-1.0": ("Creative Commons Zero 1.0 Universal", "https://creativecommons.org/publicdomain/zero/1.0/"),
}


@dataclass(frozen=True)
class Cell:
    district: str
    week: str
    fraction: str
    bins: int
    """Distinct bins the cell describes: decides suppression, never published."""
    counts: Counts


@dataclass(frozen=True)
class OpenDataset:
    cells: list[Cell]
    k: int
    first_day: date | None
    last_day: date

    def suppressed(self, cell: Cell) -> str:
        return f"fewer than {self.k} bins" if cell.bins < self.k else ""


def whole_weeks(first: date | None, last: date | None, today: date) -> tuple[date | None, date]:
    """The range widened to whole ISO weeks, ending no later than the last Sunday before today."""
    last_over = today - timedelta(days=today.weekday() + 1)  # the Sunday that ended the last complete week
    end = last_over if last is None else min(last + timedelta(days=6 - last.weekday()), last_over)
    start = None if first is None else first - timedelta(days=first.weekday())
    return start, end


def collect(sessions: sessionmaker, flt: StatsFilter, tz: str, k: int, today: date | None = None) -> OpenDataset:
    if k < 2:
        raise ValueError(f"--k must be at least 2 (got {k}): a cell of one bin describes one household")
    today = today or local_date(datetime.now(timezone.utc), tz)
    first, last = whole_weeks(flt.first_day, flt.last_day, today)
    if first is not None and first > last:
        raise ValueError(f"no complete week lies in the range (weeks end on the Sunday before today, {last})")
    week = local_week(Inspection.captured_at, tz)
    keys = (Inspection.district, week, Inspection.fraction)
    query = (
        select(*keys, func.count(distinct(Inspection.bin_id)), func.count(), count_where(NOT_USABLE),
               count_where(and_(USABLE, Inspection.verdict == "contaminated")), count_where(REVIEWED), count_where(CONFIRMED_FINDING))
        .where(*StatsFilter(first, last, flt.fraction).conditions(tz))
        .group_by(*keys)
    )  # fmt: skip
    with sessions() as s:
        connection = s.connection()
        prepare_connection(connection)
        rows = connection.execute(query).all()
    cells = [Cell(district or UNASSIGNED, week_key, fraction, int(bins), Counts(*(int(n or 0) for n in numbers)))
             for district, week_key, fraction, bins, *numbers in rows]  # fmt: skip
    cells.sort(key=lambda c: (c.week, c.district, c.fraction))
    return OpenDataset(cells, k, first, last)


def row_of(dataset: OpenDataset, cell: Cell) -> dict:
    why = dataset.suppressed(cell)
    row = {"district": cell.district, "iso_week": cell.week, "week_start": week_start(cell.week).isoformat(), "fraction": cell.fraction}
    if why:
        return {**row, **{c: "" for c in NUMBER_COLUMNS}, "suppressed": why}
    c = cell.counts
    return {**row, "inspections": c.inspections, "usable": c.usable, "contaminated": c.contaminated, "confirmed": c.confirmed,
            "rate": "" if c.rate is None else round(c.rate, 4), "confirmed_rate": "" if c.confirmed_rate is None else round(c.confirmed_rate, 4),
            "suppressed": ""}  # fmt: skip


def data_csv(dataset: OpenDataset) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for cell in dataset.cells:
        writer.writerow(row_of(dataset, cell))
    return buf.getvalue()


def metadata(dataset: OpenDataset, licence: str, publisher: str | None, tz: str, generated: datetime) -> dict:
    """DCAT-AP style description of the dataset (JSON-LD keys), with binsight's method and the columns."""
    name, url = LICENCES[licence]
    published = [c for c in dataset.cells if not dataset.suppressed(c)]
    weeks = sorted({c.week for c in dataset.cells})
    start = dataset.first_day or (week_start(weeks[0]) if weeks else None)
    return {
        "@context": {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/", "foaf": "http://xmlns.com/foaf/0.1/"},
        "@type": "dcat:Dataset",
        "dct:title": "Contaminants (Störstoffe) in waste bins per district and week",
        "dct:description": (
            "Share of waste bins in which contaminants were found when emptied, per district, ISO calendar week and waste fraction. "
            "Each bin is photographed as the collection truck tips it; a detection model judges the photo and staff review findings. "
            "Aggregated: no row describes fewer than {k} bins, and no row describes a single household."
        ).format(k=dataset.k),
        "dct:license": {"@id": url, "dct:identifier": licence, "dct:title": name},
        **({"dct:publisher": {"@type": "foaf:Agent", "foaf:name": publisher}} if publisher else {}),
        "dct:issued": generated.isoformat(),
        "dct:temporal": {"@type": "dct:PeriodOfTime", "dcat:startDate": start.isoformat() if start else None,
                         "dcat:endDate": dataset.last_day.isoformat()},  # fmt: skip
        "dct:spatial": sorted({c.district for c in dataset.cells}),
        "dcat:keyword": ["waste", "biowaste", "contaminants", "Störstoffe", "Abfall", "Biotonne"],
        "dcat:distribution": [{
            "@type": "dcat:Distribution", "dcat:downloadURL": DATA_FILE, "dcat:mediaType": "text/csv",
            "dct:license": {"@id": url}, "dct:description": "One row per district, week and fraction; suppressed rows have no numbers.",
        }],  # fmt: skip
        "method": {
            "source": "Model output (a detection model's verdict per photo) and human review (staff confirm or reject findings). "
                      "Not a laboratory analysis; the model misses contaminants and sees only the top layer of a bin.",
            "usable": "Photos the quality gate judged inconclusive (too dark, blurred, covered, foggy) or staff marked unusable are "
                      "counted in inspections but not in usable, rate or confirmed_rate.",
            "time": f"ISO 8601 weeks on the local calendar ({tz}); only complete weeks are published.",
            "minimum_group_size": {
                "k": dataset.k,
                "rule": f"A row describing fewer than {dataset.k} distinct bins is suppressed: its numbers are left empty and the "
                        "column `suppressed` says why. Photos of unidentified bins add no bin to the count.",
                "cells": len(dataset.cells), "published": len(published), "suppressed": len(dataset.cells) - len(published),
            },
            "no_totals": "No sums over districts, weeks or fractions are published, so that no suppressed row can be recovered by "
                         "subtracting published rows from a total. Sums of published rows leave suppressed rows out.",
            "residual_risk": "A rate of 1 (100 %) says every bin inspected in that district and week was contaminated.",
        },
        "columns": [{"name": name_, "description": text} for name_, text in COLUMNS.items()],
    }


def export_open_data(sessions: sessionmaker, flt: StatsFilter, tz: str, k: int, out_dir: Path, licence: str, publisher: str | None,
                     today: date | None = None) -> OpenDataset:  # fmt: skip
    """Write DIR/contamination_by_district_week.csv and DIR/metadata.json (each atomically); the dataset written."""
    if licence not in LICENCES:
        raise ValueError(f"unknown licence {licence!r}; choose {', '.join(LICENCES)}")
    dataset = collect(sessions, flt, tz, k, today)
    generated = datetime.now(timezone.utc).replace(microsecond=0)
    document = json.dumps(metadata(dataset, licence, publisher, tz, generated), indent=2, ensure_ascii=False) + "\n"
    try:
        write_bytes_atomic(out_dir / DATA_FILE, data_csv(dataset).encode("utf-8"))
        write_bytes_atomic(out_dir / METADATA_FILE, document.encode("utf-8"))
    except OSError as err:
        raise ValueError(f"cannot write into {out_dir}: {why_unwritable(out_dir / DATA_FILE, err)}") from None
    return dataset
