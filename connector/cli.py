"""The ``loyalty-connector`` command line (typer).

Commands live in :mod:`connector.commands`, one module per command or group, and are registered here in one
explicit table. Any :class:`~connector.errors.ConnectorError` becomes a one-line message on stderr and exit 2;
``--debug`` shows the traceback instead. Exit codes: 0 success / all agree, 1 done with failed items or
discrepancies, 2 error.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import typer
from rich.console import Console

from connector import __version__
from connector.errors import ConnectorError
from connector.logs import configure_logging

__all__ = ["app", "main"]

app = typer.Typer(
    name="loyalty-connector",
    help="Join 1C, Evotor tills and a CRM loyalty ledger; sync them and reconcile them every night.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Command groups: name -> module exposing ``app: typer.Typer``.
_GROUPS: dict[str, str] = {
    "db": "connector.commands.db",
    "rules": "connector.commands.rules",
    "sandbox": "connector.commands.sandbox",
    "schedule": "connector.commands.schedule",
    "runs": "connector.commands.runs",
    "failures": "connector.commands.failures",
    "users": "connector.commands.users",
    "bench": "connector.commands.bench",
}
# Single commands: name -> "module:function".
_COMMANDS: dict[str, str] = {
    "schema": "connector.commands.basics:schema",
    "init": "connector.commands.basics:init",
    "demo": "connector.commands.basics:demo",
    "map": "connector.commands.map:map_command",
    "reconcile": "connector.commands.reconcile:reconcile_command",
    "sync": "connector.commands.sync:sync",
    "serve": "connector.commands.serve:serve",
}


def _register() -> None:
    for name, module_name in _GROUPS.items():
        module = importlib.import_module(module_name)
        app.add_typer(module.app, name=name)
    for name, target in _COMMANDS.items():
        module_name, function = target.split(":")
        app.command(name)(getattr(importlib.import_module(module_name), function))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"loyalty-connector {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each request and step (masked)."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    configure_logging("DEBUG" if debug else "INFO" if verbose else "WARNING")


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the app, turning connector errors into one line and exit 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        app(args=args, prog_name="loyalty-connector")
    except ConnectorError as exc:
        if "--debug" in args:
            raise
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {exc}", markup=False)
        sys.exit(2)


_register()
