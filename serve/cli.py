"""binsight service commands.

    python -m serve.cli serve                 start the HTTP service (BINSIGHT_HOST / BINSIGHT_PORT)
    python -m serve.cli create-key NAME (--truck ID | --fleet)   create an API key (printed once)
    python -m serve.cli revoke-key NAME
    python -m serve.cli retention [--days N]  delete the photos the retention policy no longer keeps (serve/retention.py)
    python -m serve.cli migrate               bring the database to the newest schema (once per release;
                                              with PostgreSQL the service does not migrate by itself)
    python -m serve.cli settings [--example]  list every setting with its description (--example: .env.example)
    python -m serve.cli create-user NAME --role reviewer|admin [--password-stdin]
    python -m serve.cli set-password NAME [--password-stdin] | disable-user NAME | enable-user NAME | list-users
    python -m serve.cli export-reviewed --out DIR   reviewed inspections into a dataset folder for `dvc repro`
    python -m serve.cli gdpr export BIN --out FILE.zip | gdpr delete BIN [--purge|--keep-copies] [--yes]   a household's data: hand out, erase
    python -m serve.cli notices list [--level N] | notices render ID --out FILE.pdf|.html   notices to residents
    python -m serve.cli registry import-bins CSV | import-districts GEOJSON | relink | show RFID   the bin registry
    python -m serve.cli access-log [--bin RFID] [--since DATE] [--user NAME]   who opened which photo (CSV)
    python -m serve.cli export inspections|loads|open-data ...   statistics for BI tools and the open-data portal

The same commands are `binsight serve`, `binsight create-key NAME`, ...
(binsight/cli.py), which share add_commands() and run() below.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from pathlib import Path

from serve import export_cli, notices_cli, operations_cli
from serve.settings import ServeSettings, env_example


def _sessions(settings: ServeSettings):
    """Sessions on a database at the newest schema: migrated here where BINSIGHT_AUTO_MIGRATE allows, else checked."""
    from serve.db import make_engine, make_sessionmaker
    from serve.migrate import prepare_schema

    engine = make_engine(settings.database_url)
    prepare_schema(engine, settings.migrates_itself)
    return make_sessionmaker(engine)


def _migrate(settings: ServeSettings) -> None:
    from serve.db import make_engine
    from serve.migrate import upgrade

    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def _check_schema(settings: ServeSettings) -> None:
    """SchemaNotCurrent before the server starts, where the service will not migrate by itself."""
    from serve.db import make_engine
    from serve.migrate import require_current_schema

    if settings.migrates_itself:
        return
    engine = make_engine(settings.database_url)
    try:
        require_current_schema(engine)
    finally:
        engine.dispose()


def add_commands(sub) -> None:
    """The service's subcommands, on this module's parser and on `binsight` (binsight/cli.py)."""
    settings_note = "Settings come from BINSIGHT_* environment variables or .env (`settings` lists them)."
    sub.add_parser("serve", help="start the HTTP service", description=f"Start the HTTP service on BINSIGHT_HOST:BINSIGHT_PORT. {settings_note}")
    create = sub.add_parser("create-key", help="create an API key for a truck or a fleet",
                            description=f"Create an API key; it is printed once. {settings_note}")
    create.add_argument("name", help="who the key is for, e.g. truck-17 (unique)")
    bound = create.add_mutually_exclusive_group(required=True)
    bound.add_argument("--truck", metavar="ID", help="the one truck_id this key may post as and read back")
    bound.add_argument("--fleet", action="store_true", help="a fleet key: posts for any truck and reads back all trucks' inspections")
    revoke = sub.add_parser("revoke-key", help="revoke an API key", description=f"Revoke the API key of that name. {settings_note}")
    revoke.add_argument("name", help="the name given to create-key")
    retention = sub.add_parser("retention", help="delete the photos the retention policy no longer keeps",
                               description="Delete stored photos by the retention policy (README: Retention): clean bins after "
                               "BINSIGHT_RETENTION_DAYS_CLEAN days, rejected and unusable ones after BINSIGHT_RETENTION_DAYS_REJECTED, "
                               "confirmed findings once their case is closed, what nobody reviewed after "
                               "BINSIGHT_RETENTION_DAYS_UNREVIEWED. The service also runs it every "
                               f"BINSIGHT_RETENTION_INTERVAL_MINUTES. {settings_note}")  # fmt: skip
    retention.add_argument("--days", type=int, default=None, help="days for clean bins' photos (default: BINSIGHT_RETENTION_DAYS_CLEAN)")
    sub.add_parser("migrate", help="apply database migrations",
                   description="Bring the database to the newest schema. Run it once per release before the service starts: "
                   "with PostgreSQL the service does not migrate by itself (BINSIGHT_AUTO_MIGRATE), since replicas starting "
                   f"together would race. {settings_note}")
    listing = sub.add_parser("settings", help="list the settings", description="List every BINSIGHT_* setting with its value and meaning.")
    listing.add_argument("--example", action="store_true", help="print .env.example (defaults) instead of the values in effect")

    password_note = "The password is asked for at a prompt (twice), or read as one line from standard input with --password-stdin; never give it as an argument."
    user = sub.add_parser("create-user", help="create a reviewer or admin account",
                          description=f"Create an account for the review pages. {password_note} {settings_note}")
    user.add_argument("name", help="the login name (letters, digits, '.', '_', '-')")
    user.add_argument("--role", required=True, choices=["reviewer", "admin"], help="reviewer: the review queue; admin: also manages accounts")
    user.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    reset = sub.add_parser("set-password", help="set a new password for an account (ends its sessions, lifts a lock)",
                           description=f"Set a new password. {password_note} {settings_note}")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    for command, what in (("disable-user", "disable an account (its sessions end at once)"), ("enable-user", "enable a disabled account")):
        sub.add_parser(command, help=what, description=f"{what[0].upper()}{what[1:]}. {settings_note}").add_argument("name")
    sub.add_parser("list-users", help="list the accounts", description=f"List the reviewer and admin accounts. {settings_note}")
    export = sub.add_parser("export-reviewed", help="write reviewed inspections into a dataset for retraining",
                            description="Write the reviewed inspections into a canonical dataset folder: confirmed ones with the "
                            "reviewer's boxes, rejected ones without their contaminant boxes, unusable ones left out. Merges "
                            "without duplicating images (content hash), all or nothing; then `dvc add DIR` and `dvc repro`. "
                            f"{settings_note}")
    export.add_argument("--out", required=True, type=Path, metavar="DIR", help="the dataset folder to create or merge into, e.g. data")
    export.add_argument("--classes", type=Path, default=Path("configs/classes.yaml"), help="the class list of that dataset (default: configs/classes.yaml)")
    export.add_argument("--strict", action="store_true", help="fail on any problem and write nothing")

    gdpr = sub.add_parser("gdpr", help="data-subject requests for one bin: export (Art. 15) or delete (Art. 17)",
                          description=f"Everything stored about one bin (its RFID identifies a household). {settings_note}")
    requests = gdpr.add_subparsers(dest="request", required=True, metavar="REQUEST")
    gdpr_export = requests.add_parser("export", help="every record and photo of the bin as one .zip archive (Art. 15)",
                                      description="Write every inspection, photo and review decision of the bin into one .zip archive.")
    gdpr_export.add_argument("bin_id", metavar="BIN", help="the bin's RFID, exactly as the trucks send it")
    gdpr_export.add_argument("--out", required=True, type=Path, metavar="FILE", help="the archive to write, e.g. bin-E2004711.zip")
    gdpr_delete = requests.add_parser("delete", help="erase the bin's personal data; its inspections stay, anonymous, for the statistics (Art. 17)",
                                      description="Erase the bin's photos, review trail, claims and notices, and replace its inspections "
                                      "by anonymous copies (no bin, position, ids or time of day; serve/gdpr.py says why), so the "
                                      "statistics stay. Asks to type the bin id again unless --yes.")
    gdpr_delete.add_argument("bin_id", metavar="BIN", help="the bin's RFID, exactly as the trucks send it")
    keep = gdpr_delete.add_mutually_exclusive_group()
    keep.add_argument("--purge", action="store_true",
                      help="delete the bin's inspections outright, keeping no anonymous copy: none of them stays, and the "
                           "published counts of their weeks drop")
    keep.add_argument("--keep-copies", action="store_true",
                      help="keep the anonymous copies even in weeks where no other bin was erased (there, someone with the "
                           "database and the bin registry can tie them to the bin); asked for only then")
    gdpr_delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    operations_cli.add_commands(sub, settings_note)
    export_cli.add_commands(sub, settings_note)
    notices_cli.add_commands(sub, settings_note)


def main(argv: list[str] | None = None) -> int:
    from serve.migrate import SchemaNotCurrent

    parser = argparse.ArgumentParser(prog="python -m serve.cli", description="binsight inference service")
    add_commands(parser.add_subparsers(dest="command", required=True))
    try:
        return run(parser.parse_args(argv))
    except (SchemaNotCurrent, ValueError) as err:  # ValueError: a user's mistake (AccountError, a bad file), said in one line
        print(err, file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """Carry out a command that add_commands() declared; the exit status (SchemaNotCurrent: `migrate` is due)."""
    settings = ServeSettings()
    if args.command == "settings" and args.example:
        print(env_example(), end="")
        return 0
    if args.command == "settings":
        for name, field in ServeSettings.model_fields.items():
            value = _masked(settings.database_url) if name == "database_url" else getattr(settings, name)
            print(f"BINSIGHT_{name.upper()}={value}\n    {field.description}")
        return 0
    if args.command == "serve":
        from serve.detector import MODEL_FILE

        if not (settings.model_dir / MODEL_FILE).is_file():
            print(
                f"no model at {settings.model_dir / MODEL_FILE}. Train and export one with `make run` "
                "(about 15 minutes on 2 cores), or point BINSIGHT_MODEL_DIR at a folder with model.onnx and model_card.json.",
                file=sys.stderr,
            )
            return 2
        _check_schema(settings)  # one clear line now rather than a traceback from the server's start-up
        from serve.notice_config import load_notice_config

        load_notice_config(settings.notices_config_path)  # likewise for a mistake in the notices' configuration
        import uvicorn

        from serve.app import create_app

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info", access_log=settings.access_log)
        return 0
    if args.command == "migrate":
        _migrate(settings)
        print(f"database {_masked(settings.database_url)} is at the newest schema")
        return 0
    sessions = _sessions(settings)
    if args.command == "create-key":
        from serve.auth import create_key

        try:
            print(create_key(sessions, args.name, truck_id=args.truck))
        except ValueError as err:
            print(err, file=sys.stderr)
            return 1
        return 0
    if args.command == "revoke-key":
        from serve.auth import revoke_key

        if not revoke_key(sessions, args.name):
            print(f"no API key named {args.name!r}", file=sys.stderr)
            return 1
        return 0
    if args.command in PEOPLE_COMMANDS:
        return _people(args, sessions)
    if args.command == "export-reviewed":
        return _export_reviewed(args, settings, sessions)
    if args.command == "gdpr":
        return _gdpr(args, settings, sessions)
    if args.command in operations_cli.COMMANDS:
        return operations_cli.run(args, settings, sessions)
    if args.command in export_cli.COMMANDS:
        return export_cli.run(args, settings, sessions)
    if args.command in notices_cli.COMMANDS:
        return notices_cli.run(args, settings, sessions)
    if args.command == "retention":
        from serve.notice_config import load_notice_config
        from serve.retention import apply_configured

        days = settings.retention_days_clean if args.days is None else args.days
        report = apply_configured(sessions, settings, load_notice_config(settings.notices_config_path), days)
        cap = f"after {settings.unreviewed_cap_days}" if settings.unreviewed_cap_days else "with no cap"
        print(f"{report.summary()} (clean after {days} days, rejected and unusable after {settings.retention_days_rejected}, unreviewed {cap})")
        return 0
    return 1


def _masked(url: str) -> str:
    from serve.db import masked_database_url, parse_database_url

    return masked_database_url(parse_database_url(url))


PEOPLE_COMMANDS = ("create-user", "set-password", "disable-user", "enable-user", "list-users")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("the same again: ") != first:
        raise ValueError("the two passwords differ; nothing was changed")
    return first


def _people(args: argparse.Namespace, sessions) -> int:
    """Accounts for the review pages; an AccountError (a ValueError) is the user's mistake, reported in one line."""
    from serve import accounts

    if args.command == "create-user":
        created = accounts.create_user(sessions, args.name, args.role, _password(args))
        print(f"created {created.role} {created.name}")
    elif args.command == "set-password":
        accounts.set_password(sessions, args.name, _password(args))
        print(f"password of {args.name} changed; their sessions ended")
    elif args.command in ("disable-user", "enable-user"):
        accounts.set_disabled(sessions, args.name, args.command == "disable-user")
        print(f"{args.name} {'disabled' if args.command == 'disable-user' else 'enabled'}")
    else:
        for u in accounts.list_users(sessions):
            state = "disabled" if u.disabled else "active"
            print(f"{u.name}\t{u.role}\t{state}\tlast login {u.last_login_at or 'never'}")
    return 0


def _export_reviewed(args: argparse.Namespace, settings: ServeSettings, sessions) -> int:
    from pipeline.config import load_taxonomy
    from pipeline.importers import ImportRejected
    from serve.export_reviewed import export_reviewed, next_steps

    try:
        outcome = export_reviewed(sessions, settings.image_dir, args.out, load_taxonomy(args.classes), strict=args.strict)
    except ImportRejected as err:
        print(err.result.summary(), file=sys.stderr)
        raise ValueError(str(err)) from None
    print(outcome.result.summary())
    print(f"  unusable (left out):      {outcome.unusable}")
    print(f"  photo already deleted:    {outcome.image_gone} (retention)")
    if outcome.result.images_added:
        print(next_steps(args.out))
    return 0


def _gdpr(args: argparse.Namespace, settings: ServeSettings, sessions) -> int:
    """NoSuchBin (a ValueError) is said in one line."""
    from serve import gdpr

    if args.request == "export":
        notice_config = None
        if settings.notices_config_path.is_file():  # the letters are included where the service could write them
            from serve.notice_config import load_notice_config

            notice_config = load_notice_config(settings.notices_config_path)
        done = gdpr.export_bin(sessions, settings.image_dir, args.bin_id, args.out, notice_config=notice_config)
        print(f"wrote {args.out}: {done.inspections} inspections, {done.images} photos, {done.review_events} review decisions, "
              f"{done.notices} notices of bin {args.bin_id}")  # fmt: skip
        if notice_config is None and done.notices:
            print(f"note: no letter configuration at {settings.notices_config_path} (BINSIGHT_NOTICES_CONFIG): the notices' letters are not included")
        return 0
    exposed = gdpr.exposed_weeks(sessions, args.bin_id, settings.local_timezone)  # also: NoSuchBin before any question
    if exposed and not (args.purge or args.keep_copies):
        raise ValueError(f"bin {args.bin_id} would be the only erased bin in {', '.join(map(str, exposed))}: with the database "
                         "and the bin registry its anonymous copies there are its verdicts. Choose --purge (delete its "
                         "inspections; published counts drop) or --keep-copies; nothing was erased")
    if not args.yes and input(f"erase everything stored about bin {args.bin_id}? type the bin id again: ").strip() != args.bin_id:
        raise ValueError("not confirmed; nothing was erased")
    done = gdpr.delete_bin(sessions, settings.image_dir, args.bin_id, settings.local_timezone, purge=args.purge)
    kept = "deleted outright (--purge)" if args.purge else "anonymised (kept for the statistics)"
    print(f"erased bin {args.bin_id}: {done.inspections} inspections {kept}, {done.images} photos, "
          f"{done.review_events} review decisions and {done.notices} notices deleted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
