"""``db`` commands: create or upgrade the state database by its migrations."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="State database: create or upgrade it by its Alembic migrations.", no_args_is_help=True)
