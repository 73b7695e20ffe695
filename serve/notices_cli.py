"""The notices commands: the bins per escalation level, and one notice's letter written to a file.

    binsight notices list [--level N]                 bins with an open record, per level (tab-separated)
    binsight notices render ID --out FILE.pdf|.html   the letter of notice ID (an id's first 8 characters will do)

Declared on serve/cli.py's parser (and so on `binsight`'s) by add_commands();
serve/cli.py hands them to run(). A user's mistake (an unknown notice, a file
type other than .pdf or .html, a mistake in the notices' configuration) is a
ValueError, which both command lines print as one line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sqlalchemy import select

COMMANDS = ("notices",)
FORMATS = (".pdf", ".html")


def _level(value: str) -> int:
    try:
        level = int(value)
    except ValueError:
        level = 0
    if level < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a level (1, 2, ...)")
    return level


def add_commands(sub, settings_note: str) -> None:
    about = ("Notices to residents, one per confirmed finding of a bin linked to the registry; their levels follow the "
             f"escalation rules of BINSIGHT_NOTICES_CONFIG (serve/defaults/notices/escalation.yaml). {settings_note}")  # fmt: skip
    notices = sub.add_parser("notices", help="notices to residents: bins per escalation level, a letter as PDF or HTML", description=about)
    actions = notices.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="bins with an open escalation record, per level",
                                 description="List the bins whose escalation record is open (a notice within the window), per level: "
                                 "level, bin, fraction, last finding, notices in the record, reset date, address; tab-separated.")  # fmt: skip
    listing.add_argument("--level", type=_level, metavar="N", help="only bins at this level")
    render = actions.add_parser("render", help="write a notice's letter to a PDF or HTML file",
                                description="Write the letter of one notice (as the staff pages show it, with the evidence crop) to "
                                "FILE; its extension, .pdf or .html, chooses the format. The access log records it.")  # fmt: skip
    render.add_argument("notice_id", metavar="ID", help="the notice's id (or its first 8 characters, the letter's reference)")
    render.add_argument("--out", required=True, type=Path, metavar="FILE", help="the file to write, e.g. notice.pdf")


def run(args: argparse.Namespace, settings, sessions) -> int:
    from serve.notice_config import load_notice_config

    config = load_notice_config(settings.notices_config_path)
    if args.action == "list":
        return _list(sessions, config, args.level)
    return _render(args, settings, sessions, config)


def _list(sessions, config, only: int | None) -> int:
    from serve.notices import by_level

    levels = by_level(sessions, config)
    print("level\tbin\tfraction\tlast_finding\tnotices_in_record\tresets\taddress")
    for level, rows in levels.items():
        if only is not None and level != only:
            continue
        for r in rows:
            finding = r.last_finding_at.date().isoformat() if r.last_finding_at else ""
            print(f"{level}\t{r.bin_id}\t{r.fraction}\t{finding}\t{r.notices_in_record}\t{r.resets_at.date().isoformat()}\t{r.address or ''}")
    return 0


def _find(sessions, notice_id: str):
    """The notice with this id, or the one whose id starts with it (the letter's reference); ValueError otherwise."""
    from serve.db import Notice
    from serve.notices import NoSuchNotice

    wanted = notice_id.strip().lower()
    if len(wanted) < 8:
        raise NoSuchNotice(f"notice id {notice_id!r} is too short: give the id or at least its first 8 characters")
    with sessions() as s:
        found = list(s.scalars(select(Notice).where(Notice.id.startswith(wanted, autoescape=True)).limit(2)))
    if not found:
        raise NoSuchNotice(f"no notice {notice_id} (`binsight notices list` and the bin pages show them)")
    if len(found) > 1:
        raise NoSuchNotice(f"more than one notice starts with {notice_id}; give the whole id")
    return found[0]


def _render(args: argparse.Namespace, settings, sessions, config) -> int:
    from serve.access_log import os_user, record_access
    from serve.letters import compose

    suffix = args.out.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"--out {args.out}: the file must end in .pdf or .html (the format follows the extension)")
    if not args.out.parent.is_dir():
        raise ValueError(f"--out {args.out}: no folder {args.out.parent}")
    notice = _find(sessions, args.notice_id)
    letter = compose(sessions, settings.image_dir, config, notice)
    record_access(sessions, actor_kind="cli", actor=os_user(), inspection_id=notice.inspection_id, bin_id=notice.bin_id, what="notice")
    content = letter.pdf() if suffix == ".pdf" else letter.html.encode("utf-8")
    args.out.write_bytes(content)
    print(f"wrote {args.out}: notice {notice.id} of bin {notice.bin_id}, level {notice.level} ({config.level_title(notice.fraction, notice.action)})")
    return 0

