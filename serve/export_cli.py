"""The `export` commands: inspections and load grades for BI tools (staff), aggregated open data (the public).

    binsight export inspections --format csv|geojson --out FILE [--from DAY] [--to DAY] [--fraction F]
    binsight export loads --out FILE [--from DAY] [--to DAY] [--classes FILE]
    binsight export open-data --out DIR [--k 10] [--from DAY] [--to DAY] [--fraction F]

Days are YYYY-MM-DD on the city's calendar (BINSIGHT_LOCAL_TIMEZONE), both
ends included. A mistake (a bad date, --k below 2, an unwritable path) is a
ValueError: serve/cli.py and binsight/cli.py print it as one line, exit 2.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from serve.settings import ServeSettings
from serve.statistics import StatsFilter

COMMANDS = ("export",)


@dataclass(frozen=True)
class ExportKind:
    """One `export` subcommand: all take --out and a day range; `options` are its own arguments (flags, add_argument's keywords)."""

    name: str
    help: str
    description: str
    out: tuple[str, str]  # --out's metavar and help
    fraction: bool = True  # whether --fraction applies
    options: tuple[tuple[tuple[str, ...], dict], ...] = ()


KINDS = (
    ExportKind(
        "inspections", "one row (CSV) or feature (GeoJSON) per inspection: PERSONAL DATA, for internal use",
        "Every inspection with its verdict, review state, district, route, truck, week, fraction, score, bin and GPS "
        "position, for BI tools. Personal data: for staff only, never to be published (open data: `export open-data`).",
        ("FILE", "the file to write"),
        options=((("--format",), {"required": True, "choices": ["csv", "geojson"], "help": "csv, or geojson (points at the capture's GPS)"}),),
    ),
    ExportKind(
        "loads", "the per-load grade against the biowaste ordinance, as CSV (an image-based indicator, not a lab analysis)",
        "One row per truck load (truck, local day, tour) of BINSIGHT_LOAD_GRADE_FRACTION: estimated foreign-matter and "
        "plastics shares and the grade against the limits. An image-based indicator, not a lab analysis (serve/load_grade.py).",
        ("FILE", "the CSV file to write"), fraction=False,
        options=((("--classes",), {"type": Path, "default": None,
                                   "help": "class list with the fraction policy (default: the model card in BINSIGHT_MODEL_DIR)"}),),
    ),
    ExportKind(
        "open-data", "contamination per district, ISO week and fraction for the open-data portal, with metadata.json",
        "Aggregated, k-anonymous open data: DIR/contamination_by_district_week.csv and DIR/metadata.json. A cell "
        "whose usable photos come from fewer than K distinct bins is suppressed; no totals are published; only weeks that ended "
        "BINSIGHT_OPEN_DATA_GRACE_DAYS (28) days ago; counts rounded to 5 (serve/open_data.py).",
        ("DIR", "the folder to write the two files into"),
        options=((("--k",), {"type": int, "default": None, "help": "least distinct bins per published cell (default: BINSIGHT_OPEN_DATA_MIN_BINS, 10)"}),),
    ),
)  # fmt: skip


def add_commands(sub, settings_note: str) -> None:
    export = sub.add_parser("export", help="statistics exports: inspections and load grades (staff), open data (public)",
                            description=f"Export inspections, load grades or aggregated open data. {settings_note}")
    kinds = export.add_subparsers(dest="export_kind", required=True, metavar="WHAT")
    for kind in KINDS:
        parser = kinds.add_parser(kind.name, help=kind.help, description=kind.description)
        for flags, options in kind.options:
            parser.add_argument(*flags, **options)
        parser.add_argument("--out", required=True, type=Path, metavar=kind.out[0], help=kind.out[1])
        parser.add_argument("--from", dest="first_day", metavar="DAY", help="first local day included, YYYY-MM-DD (default: the earliest)")
        parser.add_argument("--to", dest="last_day", metavar="DAY", help="last local day included, YYYY-MM-DD (default: the latest)")
        if kind.fraction:
            parser.add_argument("--fraction", help="one waste fraction only, e.g. biowaste (default: all)")


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


def _filter(args: argparse.Namespace) -> StatsFilter:
    return StatsFilter(_day(args.first_day, "--from"), _day(args.last_day, "--to"), getattr(args, "fraction", None) or None)


def run(args: argparse.Namespace, settings: ServeSettings, sessions) -> int:
    flt = _filter(args)
    tz = settings.local_timezone
    if args.export_kind == "inspections":
        from serve.exports import export_inspections

        count = export_inspections(sessions, flt, tz, args.format, args.out)
        print(f"wrote {args.out}: {count} inspections (personal data: for internal use only)")
        return 0
    if args.export_kind == "loads":
        from serve.exports import export_loads
        from serve.load_grade import INDICATOR_LABEL, Limits, grade_loads, load_materials, policy_from_files

        policy = policy_from_files(args.classes, settings.model_dir)
        limits = Limits(settings.load_limit_foreign_pct, settings.load_limit_plastics_pct)
        loads = grade_loads(sessions, flt, tz, settings.load_grade_fraction, policy, load_materials(settings.materials_path), limits)
        export_loads(loads, args.out)
        over = sum(1 for g in loads if g.grade == "over limit")
        print(f"wrote {args.out}: {len(loads)} loads, {over} over a limit ({INDICATOR_LABEL})")
        return 0
    from serve.open_data import export_open_data

    k = settings.open_data_min_bins if args.k is None else args.k
    dataset = export_open_data(sessions, flt, tz, k, args.out, settings.open_data_licence, settings.open_data_publisher,
                               grace_days=settings.open_data_grace_days)  # fmt: skip
    suppressed = sum(1 for c in dataset.cells if dataset.suppressed(c))
    print(f"wrote {args.out}: {len(dataset.cells)} district-week cells, {suppressed} suppressed (fewer than {k} bins, or one bin "
          f"dominant); weeks up to {dataset.last_day} ({dataset.grace_days} days' grace)")  # fmt: skip
    if not settings.open_data_publisher:
        print("note: metadata.json names no publisher; set BINSIGHT_OPEN_DATA_PUBLISHER")
    return 0
