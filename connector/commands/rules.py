"""``rules`` commands: what the loyalty program expects for given documents."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="Loyalty rules: the postings the program expects for documents.", no_args_is_help=True)
