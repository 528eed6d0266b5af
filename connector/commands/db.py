"""``db`` commands: create or upgrade the state database by its migrations, and show its revision.

The database is ``--state``, else ``$LC_STATE``, else the ``state:`` of the config (``--config``, ``$LC_CONFIG``
or ./connector.yaml, when one exists), else ``sqlite:///connector.db``. Every other command upgrades the database on first use too; ``db upgrade`` is for
doing it deliberately (before a deployment, or with a PostgreSQL user allowed to change the schema).
"""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy.engine import make_url

from connector.commands.common import CONFIG_OPTION, STATE_OPTION, state_url
from connector.store import current_revision, make_engine, masked_url
from connector.store import upgrade as upgrade_schema
from connector.store.engine import SCHEMA_REVISION, dispose_engine

__all__ = ["app", "current", "upgrade"]

app = typer.Typer(
    help="State database: create or upgrade it by its Alembic migrations.", no_args_is_help=True
)


@app.command()
def upgrade(state: str | None = STATE_OPTION, config: Path | None = CONFIG_OPTION) -> None:
    """Create the state database, or bring its schema to the newest revision."""
    state = state_url(state, config)
    engine = make_engine(state)
    try:
        before = current_revision(engine)
        after = upgrade_schema(engine)
    finally:
        dispose_engine(engine)
    where = masked_url(state)
    if before == after:
        typer.echo(f"{where}: already at revision {after} (newest)")
    else:
        typer.echo(f"{where}: upgraded from {before or 'an empty database'} to revision {after} (newest)")


def _missing_sqlite_file(state: str) -> bool:
    url = make_url(state)
    database = url.database or ""
    return (
        url.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not Path(database).exists()
    )


@app.command()
def current(state: str | None = STATE_OPTION, config: Path | None = CONFIG_OPTION) -> None:
    """Print the schema revision of the state database, and whether it is the newest."""
    state = state_url(state, config)
    if _missing_sqlite_file(state):
        # Looking must not create the file.
        typer.echo("none (no database yet: run `loyalty-connector db upgrade`)")
        return
    engine = make_engine(state)
    try:
        revision = current_revision(engine)
    finally:
        dispose_engine(engine)
    if revision is None:
        typer.echo("none (empty database: run `loyalty-connector db upgrade`)")
    elif revision == SCHEMA_REVISION:
        typer.echo(f"{revision} (newest)")
    else:
        typer.echo(f"{revision} (the newest is {SCHEMA_REVISION}: run `loyalty-connector db upgrade`)")
