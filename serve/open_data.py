"""Open data for the city's portal: contamination per district, ISO week and fraction, never per household.

    binsight export open-data --out DIR [--k 10] [--from DAY] [--to DAY] [--fraction F]

writes DIR/contamination_by_district_week.csv and DIR/metadata.json (DCAT-AP
style: title, description, licence, publisher, temporal and spatial coverage,
method, columns).

How no row can identify a household:
- a cell is (district, ISO week, fraction); nothing finer is published: no
  bin id, address, GPS position, truck, route, tour or time of day;
- the k rule on the group each figure describes: `usable`, `contaminated`,
  `confirmed` and the rates describe the usable photos only, so a cell is
  published only when its USABLE photos come from at least k DISTINCT bins
  (default 10, BINSIGHT_OPEN_DATA_MIN_BINS, --k); counting bins over all
  photos would publish 9 inconclusive bins and 1 contaminated one as "usable
  1, contaminated 1, rate 1": one household. `inspections` describes all
  photos, whose bins are at least as many. A suppressed row stays, its
  numbers blank and `suppressed` says why. Photos whose bin is unknown (no
  RFID read, or anonymised by `gdpr delete`) count as photos but add no bin,
  so the count errs on the safe side;
- dominance: a cell where one bin holds more than half of the contaminated
  photos (two or more) is suppressed too: its contamination would describe
  one household's repeated findings, however many bins were clean. A single
  contaminated photo is "one of at least k bins", what the k rule allows (and
  suppressing exactly those cells would itself flag them);
- no totals, no margins: a published district total (or week total, or
  all-fractions row) minus the published cells would give a suppressed cell
  back by subtraction. Instead of suppressing a second cell in every such
  group (complementary suppression), binsight publishes no sums at all; a
  user who adds up cells gets the sum of the published cells only;
- whole, settled weeks only: the range is widened to whole ISO weeks (Monday
  to Sunday) and ends with the last week that ended at least `grace_days`
  before today (BINSIGHT_OPEN_DATA_GRACE_DAYS, 28). A cell of a running week,
  or of a week cut by a --from in its middle, would differ between two
  exports by the bins of a few days. The grace period lets the changes that
  come after a week ends settle first: late uploads from a truck that was
  offline, reviews, relinks after a registry import;
- rounded counts: every count is rounded to a multiple of ROUNDING_BASE (5),
  the rates are computed from the true counts and rounded to RATE_STEP
  (0.05). A change that still reaches a published week after the grace
  period (a late review, a `gdpr delete` that removes a bin from the count, a
  relink moving a photo to another district) then mostly leaves the published
  figures as they were, and where it moves one across a rounding boundary the
  two exports differ by a step of 5 (or 0.05), which one bin and five look
  alike in.
Residual risk, said in the metadata too: a cell whose rate is 100 % says that
every bin inspected there that week was contaminated; someone who knows that a
given bin was emptied in that district that week learns its result. k bounds
how often that happens, not whether; the city can raise k. Rounding blurs
but does not forbid differencing: two exports of a cell straddling a rounding
boundary differ by one step, and an attacker who knows that exactly one
change happened learns its direction. The grace period makes such changes
rare, it does not freeze published cells.

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

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import sessionmaker

from pipeline.atomic import write_bytes_atomic
from serve.db import Inspection
from serve.exports import why_unwritable
from serve.statistics import CONFIRMED_FINDING, NOT_USABLE, REVIEWED, USABLE, Counts, StatsFilter, count_where
from serve.time_buckets import fetch_all, local_date, local_week, week_start

DATA_FILE = "contamination_by_district_week.csv"
METADATA_FILE = "metadata.json"
UNASSIGNED = "unassigned"
COLUMNS = {
    "district": "District (from the city's district outlines); 'unassigned' where the bin lies in none.",
    "iso_week": "ISO 8601 week, e.g. 2026-W47, on the local calendar.",
    "week_start": "Monday of that week.",
    "fraction": "Waste fraction (biowaste, paper, packaging, residual).",
    "inspections": "Photos of bins taken at emptying (every count is rounded to a multiple of 5).",
    "usable": "Photos good enough to judge (inspections less those too dark, blurred, covered, ...).",
    "contaminated": "Usable photos in which the model found a contaminant (Störstoff).",
    "confirmed": "Usable photos whose contamination a person confirmed (a lower bound: not every photo is reviewed).",
    "rate": "contaminated / usable, from the counts before rounding, rounded to 0.05.",
    "confirmed_rate": "confirmed / usable, from the counts before rounding, rounded to 0.05.",
    "suppressed": "Empty when published; else why the numbers of this row are withheld.",
}
ROUNDING_BASE = 5
"""Every published count is rounded to a multiple of this (module docstring: differencing)."""
RATE_STEP = 0.05
"""Published rates are rounded to multiples of this."""
GRACE_DAYS = 28
"""Default days after a week's end before it is published (BINSIGHT_OPEN_DATA_GRACE_DAYS)."""
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
    """Distinct bins among all the cell's photos: the group `inspections` describes. Never published."""
    usable_bins: int
    """Distinct bins among its usable photos: the group the other figures describe. Never published."""
    top_bin_contaminated: int
    """The most contaminated photos any one bin has in the cell (dominance). Never published."""
    counts: Counts


@dataclass(frozen=True)
class Rounding:
    """How published figures are coarsened (module docstring); base 1 and step 0 publish them exactly (tests)."""

    base: int = ROUNDING_BASE
    rate_step: float = RATE_STEP

    def count(self, n: int) -> int:
        return n if self.base <= 1 else int(n / self.base + 0.5) * self.base  # half up: the same on every platform

    def rate(self, value: float | None):
        if value is None:
            return ""
        if not self.rate_step:
            return round(value, 4)
        return round(int(value / self.rate_step + 0.5) * self.rate_step, 4)


@dataclass(frozen=True)
class OpenDataset:
    cells: list[Cell]
    k: int
    first_day: date | None
    last_day: date
    grace_days: int = GRACE_DAYS
    rounding: Rounding = Rounding()

    def suppressed(self, cell: Cell) -> str:
        """Why the cell's numbers are withheld; empty when they are published."""
        if cell.usable_bins < self.k:
            return f"fewer than {self.k} bins with usable photos"
        if cell.counts.contaminated >= 2 and 2 * cell.top_bin_contaminated > cell.counts.contaminated:
            return "one bin holds most contaminated photos"
        return ""


def whole_weeks(first: date | None, last: date | None, today: date, grace_days: int = 0) -> tuple[date | None, date]:
    """The range widened to whole ISO weeks, ending with the last week that ended more than `grace_days` before today."""
    settled = today - timedelta(days=grace_days)
    last_over = settled - timedelta(days=settled.weekday() + 1)  # the Sunday that ended the last settled week
    end = last_over if last is None else min(last + timedelta(days=6 - last.weekday()), last_over)
    start = None if first is None else first - timedelta(days=first.weekday())
    return start, end


def collect(sessions: sessionmaker, flt: StatsFilter, tz: str, k: int, today: date | None = None, grace_days: int = GRACE_DAYS,
            rounding: Rounding = Rounding()) -> OpenDataset:  # fmt: skip
    if k < 2:
        raise ValueError(f"--k must be at least 2 (got {k}): a cell of one bin describes one household")
    if grace_days < 0:
        raise ValueError(f"the grace period must not be negative (got {grace_days} days)")
    today = today or local_date(datetime.now(timezone.utc), tz)
    first, last = whole_weeks(flt.first_day, flt.last_day, today, grace_days)
    if first is not None and first > last:
        raise ValueError(f"no complete week lies in the range (a week is published {grace_days} days after it ends: "
                         f"the last one ends on {last})")  # fmt: skip
    # Per bin first, then per cell: the bins among usable photos and the largest share of one bin need the bin's own sums.
    contaminated = and_(USABLE, Inspection.verdict == "contaminated")
    week = local_week(Inspection.captured_at, tz)  # one expression in SELECT and GROUP BY: PostgreSQL matches them by their parameters
    per_bin = (
        select(Inspection.district.label("district"), week.label("week"),
               Inspection.fraction.label("fraction"), Inspection.bin_id.label("bin_id"), func.count().label("photos"),
               count_where(NOT_USABLE).label("not_usable"), count_where(contaminated).label("contaminated"),
               count_where(REVIEWED).label("reviewed"), count_where(CONFIRMED_FINDING).label("confirmed"))
        .where(*StatsFilter(first, last, flt.fraction).conditions(tz))
        .group_by(Inspection.district, week, Inspection.fraction, Inspection.bin_id)
        .subquery()
    )  # fmt: skip
    known = per_bin.c.bin_id.is_not(None)  # the photos of unknown bins are one group here, not one bin
    keys = (per_bin.c.district, per_bin.c.week, per_bin.c.fraction)
    query = (
        select(*keys, count_where(known), count_where(and_(known, per_bin.c.photos > per_bin.c.not_usable)),
               func.max(case((known, per_bin.c.contaminated), else_=0)), func.sum(per_bin.c.photos), func.sum(per_bin.c.not_usable),
               func.sum(per_bin.c.contaminated), func.sum(per_bin.c.reviewed), func.sum(per_bin.c.confirmed))
        .group_by(*keys)
    )  # fmt: skip
    rows = fetch_all(sessions, query)
    cells = [Cell(district or UNASSIGNED, week_key, fraction, int(bins or 0), int(usable_bins or 0), int(top or 0),
                  Counts(*(int(n or 0) for n in numbers)))
             for district, week_key, fraction, bins, usable_bins, top, *numbers in rows]  # fmt: skip
    cells.sort(key=lambda c: (c.week, c.district, c.fraction))
    return OpenDataset(cells, k, first, last, grace_days, rounding)


def row_of(dataset: OpenDataset, cell: Cell) -> dict:
    why = dataset.suppressed(cell)
    row = {"district": cell.district, "iso_week": cell.week, "week_start": week_start(cell.week).isoformat(), "fraction": cell.fraction}
    if why:
        return {**row, **{c: "" for c in NUMBER_COLUMNS}, "suppressed": why}
    c, r = cell.counts, dataset.rounding
    return {**row, "inspections": r.count(c.inspections), "usable": r.count(c.usable), "contaminated": r.count(c.contaminated),
            "confirmed": r.count(c.confirmed), "rate": r.rate(c.rate), "confirmed_rate": r.rate(c.confirmed_rate), "suppressed": ""}  # fmt: skip


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
            "time": f"ISO 8601 weeks on the local calendar ({tz}); a week is published only {dataset.grace_days} days after it "
                    "ended, when late uploads and reviews have come in.",
            "minimum_group_size": {
                "k": dataset.k,
                "rule": f"A row whose usable photos come from fewer than {dataset.k} distinct bins is suppressed: its numbers are left "
                        "empty and the column `suppressed` says why. Photos of unidentified bins add no bin to the count. A row where "
                        "one bin holds more than half of two or more contaminated photos is suppressed too (dominance).",
                "cells": len(dataset.cells), "published": len(published), "suppressed": len(dataset.cells) - len(published),
            },
            "no_totals": "No sums over districts, weeks or fractions are published, so that no suppressed row can be recovered by "
                         "subtracting published rows from a total. Sums of published rows leave suppressed rows out.",
            "rounding": f"Counts are rounded to multiples of {dataset.rounding.base}; rates are computed from the unrounded counts "
                        f"and rounded to steps of {dataset.rounding.rate_step}. Rounded figures need not add up.",
            "residual_risk": "A rate of 1 (100 %) says every bin inspected in that district and week was contaminated. Published "
                             "weeks can still change after the grace period (a late review, an erasure request, a bin moved to "
                             "another district): two exports of the same week may then differ by one rounding step, which "
                             "bounds, but does not rule out, learning about the change of a single bin by comparing them.",
        },
        "columns": [{"name": name_, "description": text} for name_, text in COLUMNS.items()],
    }


def export_open_data(sessions: sessionmaker, flt: StatsFilter, tz: str, k: int, out_dir: Path, licence: str, publisher: str | None,
                     today: date | None = None, grace_days: int = GRACE_DAYS, rounding: Rounding = Rounding()) -> OpenDataset:  # fmt: skip
    """Write DIR/contamination_by_district_week.csv and DIR/metadata.json (each atomically); the dataset written."""
    if licence not in LICENCES:
        raise ValueError(f"unknown licence {licence!r}; choose {', '.join(LICENCES)}")
    dataset = collect(sessions, flt, tz, k, today, grace_days, rounding)
    generated = datetime.now(timezone.utc).replace(microsecond=0)
    document = json.dumps(metadata(dataset, licence, publisher, tz, generated), indent=2, ensure_ascii=False) + "\n"
    try:
        write_bytes_atomic(out_dir / DATA_FILE, data_csv(dataset).encode("utf-8"))
        write_bytes_atomic(out_dir / METADATA_FILE, document.encode("utf-8"))
    except OSError as err:
        raise ValueError(f"cannot write into {out_dir}: {why_unwritable(out_dir / DATA_FILE, err)}") from None
    return dataset
