"""``users`` commands: console accounts in the state database.

``users add NAME --role viewer|operator|admin`` reads the password from ``$LC_PASSWORD``, else from standard
input (one line; typed without echo on a terminal). ``users token NAME`` issues the API token of a user for
automation (shown once; only its hash is stored; issuing again revokes the previous one). ``users list`` and
``users role NAME ROLE`` do what they say. Every change is written to the audit log as done by ``cli``.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

import typer

from connector.commands.common import CONFIG_OPTION, STATE_OPTION, state_url
from connector.errors import InputError
from connector.store import Store, open_store
from connector.web.auth import create_user, issue_token, list_users, set_role
from connector.web.console.actions import audit

__all__ = ["add", "app", "list_command", "role", "token"]

app = typer.Typer(help="Console users: add them, give roles, issue API tokens.", no_args_is_help=True)

_ROLE_OPTION = typer.Option(
    "viewer", "--role", "-r", help="viewer (reads), operator (acts), admin (manages users)."
)
_WHO = "cli"


def _read_password() -> str:
    if os.environ.get("LC_PASSWORD"):
        return os.environ["LC_PASSWORD"]
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    line = sys.stdin.readline()
    if not line:
        raise InputError("give the password in $LC_PASSWORD or on standard input", field="password")
    return line.rstrip("\r\n")


def _store(state: str | None, config: Path | None) -> Store:
    return open_store(state_url(state, config))


@app.command()
def add(
    name: str = typer.Argument(..., help="The user name to sign in with."),
    role: str = _ROLE_OPTION,
    locale: str = typer.Option("ru", "--locale", help="Console language: ru or en."),
    state: str | None = STATE_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Add a console user; the password comes from $LC_PASSWORD or standard input."""
    password = _read_password()
    with _store(state, config) as store:
        try:
            user = create_user(store, name, role, password, locale)
        except InputError as exc:
            audit(store, _WHO, "user.add", name, f"refused: {exc}", role=role)
            raise
        audit(store, _WHO, "user.add", name, "ok", role=role)
    typer.echo(f"added {user.name} ({user.role})")


@app.command()
def role(
    name: str = typer.Argument(..., help="The user."),
    new_role: str = typer.Argument(..., metavar="ROLE", help="viewer, operator or admin."),
    state: str | None = STATE_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Change a user's role."""
    with _store(state, config) as store:
        user = set_role(store, name, new_role)
        audit(store, _WHO, "user.role", name, "ok", role=new_role)
    typer.echo(f"{user.name} is now {user.role}")


@app.command()
def token(
    name: str = typer.Argument(..., help="The user the token acts as (with that user's role)."),
    state: str | None = STATE_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Issue the API token of a user (printed once; send it as `Authorization: Bearer …`)."""
    with _store(state, config) as store:
        issued = issue_token(store, name)
        audit(store, _WHO, "user.token", name, "ok")
    typer.echo(issued)


@app.command("list")
def list_command(
    output: str = typer.Option("table", "--format", help="table or json."),
    state: str | None = STATE_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """List users and API tokens with their roles."""
    with _store(state, config) as store:
        users = list_users(store)
    if output == "json":
        rows = [{"name": u.name, "role": u.role, "locale": u.locale, "token": u.is_token} for u in users]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for user in users:
        typer.echo(f"{user.name:<32} {user.role:<9} {user.locale}")
