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
from typing import Any

import typer
import typer.main
from rich.console import Console
from typer.core import TyperGroup

from connector import __version__
from connector.errors import ConnectorError
from connector.logs import configure_logging, mask_phones

__all__ = ["app", "main"]


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


def _load(name: str) -> Any:
    """Import one command's module only when that command is run or listed (keeps start-up fast)."""
    if name in _GROUPS:
        group = typer.main.get_group(importlib.import_module(_GROUPS[name]).app)
        group.name = name
        return group
    if name in _COMMANDS:
        module_name, function = _COMMANDS[name].split(":")
        single = typer.Typer(add_completion=False)
        single.command(name)(getattr(importlib.import_module(module_name), function))
        return typer.main.get_command(single)
    return None


class _LazyGroup(TyperGroup):
    """The root group: commands come from the two registries above, imported on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *_COMMANDS, *_GROUPS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return super().get_command(ctx, cmd_name) or _load(cmd_name)


app = typer.Typer(
    name="loyalty-connector",
    cls=_LazyGroup,
    help="Join 1C, Evotor tills and a CRM loyalty ledger; sync them and reconcile them every night.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


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
        shown = mask_phones(str(exc))  # the evidence may quote a row or a body: no full phone on the terminal
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {shown}", markup=False)
        sys.exit(2)
