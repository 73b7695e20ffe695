"""binsight service commands.

    python -m serve.cli serve                 start the HTTP service (BINSIGHT_HOST / BINSIGHT_PORT)
    python -m serve.cli create-key NAME       create a truck's API key (printed once)
    python -m serve.cli revoke-key NAME
    python -m serve.cli retention [--days N]  delete images of clean bins older than N days
    python -m serve.cli migrate               bring the database to the newest schema (once per release;
                                              with PostgreSQL the service does not migrate by itself)
    python -m serve.cli settings [--example]  list every setting with its description (--example: .env.example)

The same commands are `binsight serve`, `binsight create-key NAME`, ...
(binsight/cli.py), which share add_commands() and run() below.
"""

from __future__ import annotations

import argparse
import sys

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
    create = sub.add_parser("create-key", help="create an API key", description=f"Create a truck's API key; it is printed once. {settings_note}")
    create.add_argument("name", help="who the key is for, e.g. truck-17 (unique)")
    revoke = sub.add_parser("revoke-key", help="revoke an API key", description=f"Revoke the API key of that name. {settings_note}")
    revoke.add_argument("name", help="the name given to create-key")
    retention = sub.add_parser("retention", help="delete images of clean bins after the retention period",
                               description=f"Delete stored images of clean bins older than the retention period. {settings_note}")
    retention.add_argument("--days", type=int, default=None, help="retention in days (default: BINSIGHT_RETENTION_DAYS_CLEAN)")
    sub.add_parser("migrate", help="apply database migrations",
                   description="Bring the database to the newest schema. Run it once per release before the service starts: "
                   "with PostgreSQL the service does not migrate by itself (BINSIGHT_AUTO_MIGRATE), since replicas starting "
                   f"together would race. {settings_note}")
    listing = sub.add_parser("settings", help="list the settings", description="List every BINSIGHT_* setting with its value and meaning.")
    listing.add_argument("--example", action="store_true", help="print .env.example (defaults) instead of the values in effect")


def main(argv: list[str] | None = None) -> int:
    from serve.migrate import SchemaNotCurrent

    parser = argparse.ArgumentParser(prog="python -m serve.cli", description="binsight inference service")
    add_commands(parser.add_subparsers(dest="command", required=True))
    try:
        return run(parser.parse_args(argv))
    except SchemaNotCurrent as err:
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
            print(f"BINSIGHT_{name.upper()}={getattr(settings, name)}\n    {field.description}")
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
        import uvicorn

        from serve.app import create_app

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info", access_log=settings.access_log)
        return 0
    if args.command == "migrate":
        _migrate(settings)
        print(f"database at {settings.database_url.split('@')[-1]} is at the newest schema")
        return 0
    sessions = _sessions(settings)
    if args.command == "create-key":
        from serve.auth import create_key

        try:
            print(create_key(sessions, args.name))
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
    if args.command == "retention":
        from serve.retention import delete_clean_images

        days = settings.retention_days_clean if args.days is None else args.days
        print(f"deleted {delete_clean_images(sessions, settings.image_dir, days)} images of clean bins older than {days} days")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
