"""Bring a database to the newest schema with Alembic, or check that it is there.

`binsight migrate` (serve/cli.py) applies migrations; the service applies them
itself at start-up only where BINSIGHT_AUTO_MIGRATE allows it (by default:
the embedded SQLite database, which one process owns). Several replicas
starting at once against PostgreSQL would race each other through the same
migration, so there the service checks the schema instead and refuses to
start until `binsight migrate` has run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Alembic is imported where used: `binsight import ...` need not pay a quarter second for it
    from alembic.config import Config
    from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATE_COMMAND = "binsight migrate"


class SchemaNotCurrent(RuntimeError):
    """The database is not at the newest schema and this process may not migrate it."""


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def head_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current_revisions(engine: Engine) -> set[str]:
    """The revisions the database is at; empty for a database never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def require_current_schema(engine: Engine) -> None:
    """Return if the database is at the newest schema, else raise SchemaNotCurrent saying what to run."""
    current, heads = current_revisions(engine), head_revisions()
    if current == heads:
        return
    where = engine.url.render_as_string(hide_password=True)
    state = f"at revision {', '.join(sorted(current))}" if current else "without the binsight tables"
    raise SchemaNotCurrent(
        f"the database {where} is {state}, not at the newest schema ({', '.join(sorted(heads))}). "
        f"Run `{MIGRATE_COMMAND}` (or `python -m serve.cli migrate`) with the same BINSIGHT_DATABASE_URL once, "
        "then start the service; or set BINSIGHT_AUTO_MIGRATE=true where only one process starts at a time."
    )


def prepare_schema(engine: Engine, auto_migrate: bool) -> None:
    """Migrate the database (auto_migrate) or check that it needs no migration."""
    if auto_migrate:
        upgrade(engine)
    else:
        require_current_schema(engine)
