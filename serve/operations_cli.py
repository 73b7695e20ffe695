"""The operations commands (issue 10): the bin registry and the image access log.

    binsight registry import-bins CSV [--replace] [--classes FILE]
    binsight registry import-districts GEOJSON [--name-property name] [--replace]
    binsight registry relink [--since DATE] [--all]
    binsight registry show RFID
    binsight access-log [--bin RFID] [--since DATE] [--user NAME]   CSV on standard output

Declared on serve/cli.py's parser (and so on `binsight`'s) by add_commands();
serve/cli.py hands them to run(). A user's mistake is a ValueError, which both
command lines print as one line; a refused import prints its problem report
first.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, time, timezone
from pathlib import Path

COMMANDS = ("registry", "access-log")


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def add_commands(sub, settings_note: str) -> None:
    registry = sub.add_parser("registry", help="the city's bin registry: import bins and districts, relink inspections, show a bin",
                              description=f"The bin registry that links inspections to bins by RFID (README: Bin registry). {settings_note}")
    actions = registry.add_subparsers(dest="action", required=True, metavar="ACTION")
    bins = actions.add_parser(
        "import-bins", help="import bins from a CSV file (all or nothing)",
        description="Import bins from CSV with the header rfid, address, district, route, fraction, latitude, longitude "
        "(';' or ',' separated, UTF-8 with or without BOM; with ';' a decimal comma is read too). Every problem is reported "
        "with line and column, and any problem imports nothing. Bins are updated by RFID; a bin without a district but with "
        "a location gets the district it lies in.",
    )
    bins.add_argument("csv", type=Path, metavar="CSV", help="the registry export, e.g. bins.csv")
    bins.add_argument("--replace", action="store_true", help="also remove the bins the file does not list (default: keep them)")
    bins.add_argument("--classes", type=Path, metavar="FILE",
                      help="the class list whose fractions are valid (default: the model card in BINSIGHT_MODEL_DIR, "
                      "else configs/classes.yaml)")  # fmt: skip
    districts = actions.add_parser(
        "import-districts", help="import district outlines from GeoJSON (all or nothing)",
        description="Import district outlines: a GeoJSON FeatureCollection of Polygon or MultiPolygon features (WGS 84, "
        "longitude first), each named by a property. Every geometry is checked; any problem imports nothing. Bins with a "
        "location but no district then get the district they lie in.",
    )
    districts.add_argument("geojson", type=Path, metavar="GEOJSON", help="the outlines, e.g. districts.geojson")
    districts.add_argument("--name-property", default="name", metavar="P", help="the feature property holding the district's name (default: name)")
    districts.add_argument("--replace", action="store_true", help="also remove the districts the file does not name")
    relink = actions.add_parser(
        "relink", help="recompute the bin link, district and route of stored inspections",
        description="Recompute the link to its bin of each inspection not linked yet (uncertain, or stored before the registry) "
        "from the registry as it is now (e.g. after an import): linked, or uncertain (missing_rfid, unknown_rfid, far_from_bin "
        "beyond BINSIGHT_BIN_LINK_MAX_DISTANCE_M). Linked inspections keep the district and route of their capture time unless "
        f"--all; an erased bin's anonymous copies are never touched. {settings_note}",
    )
    relink.add_argument("--since", type=_day, metavar="DATE", help="only inspections captured on or after this day (UTC, YYYY-MM-DD)")
    relink.add_argument("--all", action="store_true", dest="everything",
                        help="recompute linked inspections too: their district and route become the registry's of today")  # fmt: skip
    show = actions.add_parser("show", help="one bin's registry entry and how its inspections are linked",
                              description="Print a bin's registry entry and its inspections' link states.")
    show.add_argument("rfid", metavar="RFID", help="the bin's RFID, exactly as registered")

    log = sub.add_parser("access-log", help="who opened which photo, as CSV (administrators)",
                         description="Print the image access log as CSV (at, actor_kind, actor, inspection_id, bin_id, what), "
                         f"oldest first. {settings_note}")  # fmt: skip
    log.add_argument("--bin", metavar="RFID", help="only the photos of this bin")
    log.add_argument("--since", type=_day, metavar="DATE", help="only entries on or after this day (UTC, YYYY-MM-DD)")
    log.add_argument("--user", metavar="NAME", help="only what this reviewer, API key or command user opened")


def run(args: argparse.Namespace, settings, sessions) -> int:
    if args.command == "access-log":
        from serve import access_log

        query = access_log.AccessQuery(bin_id=args.bin, since=args.since, actor=args.user)
        access_log.write_csv(access_log.entries(sessions, query), sys.stdout)
        return 0
    if args.action == "import-bins":
        return _import_bins(args, settings, sessions)
    if args.action == "import-districts":
        return _import_districts(args, sessions)
    if args.action == "relink":
        from serve.bin_link import relink

        since = datetime.combine(args.since, time.min, timezone.utc) if args.since else None
        done = relink(sessions, settings.bin_link_max_distance_m, since, everything=args.everything)
        states = ", ".join(f"{n} {state}" for state, n in done.by_link.items()) or "none"
        print(f"relinked {done.inspections} inspections ({done.changed} changed): {states}")
        return 0
    return _show(args, sessions)


def _rejected(err) -> ValueError:
    """The problem report on stderr; the one-line error for the command line to print."""
    print(err.report(), file=sys.stderr)
    return ValueError(str(err))


def _import_bins(args: argparse.Namespace, settings, sessions) -> int:
    from serve.registry import import_bins, read_bins
    from serve.registry_problems import RegistryRejected

    fractions = _known_fractions(args.classes, settings.model_dir)
    try:
        records = read_bins(args.csv, fractions)
    except FileNotFoundError:
        raise ValueError(f"no file {args.csv}") from None
    except RegistryRejected as err:
        raise _rejected(err) from None
    done = import_bins(sessions, records, replace=args.replace)
    print(f"imported {len(records)} bins from {args.csv}: {done.added} added, {done.updated} updated, {done.unchanged} unchanged, "
          f"{done.removed} removed; {done.placed} placed in a district by their location")  # fmt: skip
    print("next: `binsight registry relink` to link the inspections stored before")
    return 0


def _known_fractions(classes: Path | None, model_dir: Path) -> list[str]:
    """The fractions a bin may have: those the service accepts uploads for."""
    from pipeline.config import DEFAULT_CLASSES, load_taxonomy
    from pipeline.model_card import CARD_FILE, read_card

    if classes is None and (model_dir / CARD_FILE).is_file():
        return list(read_card(model_dir / CARD_FILE).fractions)
    path = classes or DEFAULT_CLASSES
    if not path.is_file():
        raise ValueError(f"no model card in {model_dir} and no class list {path}: give --classes FILE to say which fractions are valid")
    return list(load_taxonomy(path).fractions)


def _import_districts(args: argparse.Namespace, sessions) -> int:
    from serve.districts import import_districts, read_districts
    from serve.registry_problems import RegistryRejected

    try:
        outlines = read_districts(args.geojson, args.name_property)
    except FileNotFoundError:
        raise ValueError(f"no file {args.geojson}") from None
    except RegistryRejected as err:
        raise _rejected(err) from None
    done = import_districts(sessions, outlines, replace=args.replace)
    print(f"imported {len(outlines)} districts from {args.geojson}: {done.added} added, {done.updated} updated, {done.removed} removed; "
          f"{done.bins_placed} bins placed in a district by their location")  # fmt: skip
    return 0


def _show(args: argparse.Namespace, sessions) -> int:
    from serve.db import as_utc
    from serve.registry import show_bin

    found = show_bin(sessions, args.rfid)
    b = found.bin
    location = f"{b.latitude:.6f}, {b.longitude:.6f}" if b.latitude is not None else "-"
    for label, value in (("rfid", b.rfid), ("address", b.address), ("district", b.district or "-"), ("route", b.route or "-"),
                         ("fraction", b.fraction), ("location", location), ("updated", as_utc(b.updated_at).isoformat())):  # fmt: skip
        print(f"{label:<12}{value}")
    links = ", ".join(f"{n} {state or 'not linked yet'}" for state, n in sorted(found.inspections_by_link.items(), key=lambda kv: kv[0] or ""))
    print(f"{'inspections':<12}{links or 'none'}")
    return 0
