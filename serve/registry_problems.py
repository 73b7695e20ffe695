"""What is wrong with a registry file (bins CSV, districts GeoJSON), by place, and how a refused import fails.

The report reads like the dataset importers' (pipeline/validate.py
format_report): problems grouped by kind, each kind explained once, each
problem with its place, `bins.csv:7: latitude: ...`. A registry import is
all or nothing, so any problem refuses the whole file (`RegistryRejected`).
"""

from __future__ import annotations

from dataclasses import dataclass

PROBLEM_KINDS = {
    "not_utf8": "the file is not UTF-8 text (in Excel: save as 'CSV UTF-8')",
    "missing_column": "a required column is not in the header",
    "field_count": "a line has more or fewer fields than the header",
    "unreadable": "the CSV reader cannot go on from this line (a value over 128 KiB: often a quote never closed, which runs on to the end of the file); lines after it are not checked",
    "control_character": "a value holds a control character (NUL, ESC, ...): no address or name has one",
    "empty_value": "a required value is empty",
    "invalid_rfid": "an RFID trucks could never send (letters, digits and . _ : - only, starting with a letter or digit)",
    "too_long": "a value longer than the database column holds",
    "duplicate": "the same key appears twice in the file",
    "invalid_number": "latitude or longitude is not a number",
    "out_of_range": "latitude outside -90..90 or longitude outside -180..180",
    "incomplete_location": "latitude without longitude or the other way round",
    "unknown_fraction": "a waste fraction the service does not know",
    "not_a_feature": "an entry of the FeatureCollection that is no GeoJSON Feature",
    "missing_name": "a feature without the name property",
    "wrong_geometry": "a geometry that is not a Polygon or MultiPolygon",
    "invalid_geometry": "a polygon that does not describe an area (self-intersecting, too few points, ...)",
}


@dataclass(frozen=True)
class Problem:
    kind: str  # one of PROBLEM_KINDS
    file: str
    detail: str
    line: int | None = None  # 1-based line of the CSV file
    column: str | None = None
    feature: int | None = None  # 0-based index into the GeoJSON's features

    def where(self) -> str:
        place = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.feature is not None:
            place += f": features[{self.feature}]"
        return place if self.column is None else f"{place}: {self.column}"


def format_problems(problems: list[Problem], limit_per_kind: int = 20) -> str:
    by_kind: dict[str, list[Problem]] = {}
    for p in problems:
        by_kind.setdefault(p.kind, []).append(p)
    lines = [f"{len(problems)} problem(s):"]
    for kind, items in sorted(by_kind.items()):
        lines.append(f"  {kind} ({len(items)}): {PROBLEM_KINDS[kind]}")
        lines += [f"    {p.where()}: {p.detail}" for p in items[:limit_per_kind]]
        if len(items) > limit_per_kind:
            lines.append(f"    ... and {len(items) - limit_per_kind} more")
    return "\n".join(lines)


class RegistryRejected(ValueError):
    """The file has problems: nothing was imported. `report()` lists every one."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in {source}; nothing was imported")

    def report(self) -> str:
        return format_problems(self.problems)
