"""``failures list|show|retry|skip``: documents and writes that failed, and what a person does about them.

``failures list --format json`` prints an array, oldest first, of::

    {"id", "run_id", "system", "route" ("evotor->crm:postings", "pull:evotor", "webhook:evotor"), "store",
     "business_date", "document": {"system", "kind", "id"} | null, "error_kind" (transient | permanent),
     "error", "payload_excerpt", "attempts", "state" (open | retried | skipped | resolved),
     "next_attempt_at", "skipped_by", "skip_reason", "created_at", "updated_at"}

``failures show ID --format json`` prints one such object. ``retry`` queues items for the next ``sync`` (or run
``sync --rerun-failed`` now); ``skip`` gives up on them on purpose and records who (``--by``, else ``$USER``) and
why (``--reason``, required). Nothing is ever deleted.
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from connector.commands.common import CONFIG_OPTION, load, open_state
from connector.commands.runs import FORMAT_OPTION, check_format
from connector.errors import InputError
from connector.store.failures import FailedItems, FailedRecord

__all__ = ["app", "list_failures", "retry", "show", "skip"]

app = typer.Typer(help="Failed items: list, show, retry or skip them.", no_args_is_help=True)
_STATES = ("open", "retried", "skipped", "resolved", "all")


def _row(item: FailedRecord) -> list[str]:
    document = item.document.id if item.document else "-"
    return [str(item.id), item.state, item.error_kind, item.system, item.route or "-", item.store or "-",
            document, str(item.attempts), item.error[:80]]  # fmt: skip


@app.command("list")
def list_failures(
    config: Path | None = CONFIG_OPTION,
    system: str | None = typer.Option(None, "--system", help="Only this system."),
    route: str | None = typer.Option(
        None, "--route", help="Only this route (evotor->crm:postings, pull:evotor…)."
    ),
    store: str | None = typer.Option(None, "--store", help="Only this store."),
    state: str = typer.Option("open", "--state", help="open, retried, skipped, resolved or all."),
    output: str = FORMAT_OPTION,
) -> None:
    """Failed items, oldest first (open ones by default)."""
    check_format(output)
    if state not in _STATES:
        raise InputError(f"--state {state!r}: choose one of {', '.join(_STATES)}", field="--state")
    with open_state(load(config)) as opened:
        items = FailedItems(opened.sessions).list(
            system=system, route=route, store=store, states=None if state == "all" else (state,)
        )
    if output == "json":
        typer.echo(json.dumps([item.as_json() for item in items], ensure_ascii=False, indent=2))
        return
    table = Table()
    for column in ("id", "state", "kind", "system", "route", "store", "document", "attempts", "error"):
        table.add_column(column)
    for item in items:
        table.add_row(*_row(item))
    _console().print(table)


@app.command()
def show(
    item_id: int = typer.Argument(..., help="The failed item id (see `failures list`)."),
    config: Path | None = CONFIG_OPTION,
    output: str = FORMAT_OPTION,
) -> None:
    """One failed item with its error, payload excerpt and attempts."""
    check_format(output)
    with open_state(load(config)) as opened:
        item = FailedItems(opened.sessions).get(item_id)
    data = item.as_json()
    if output == "json":
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    console = _console()
    for key, value in data.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value
        console.print(f"{key:>16}: {shown if shown is not None else '-'}", markup=False)


@app.command()
def retry(
    item_ids: list[int] = typer.Argument(..., help="Failed item ids."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Queue open items for the next sync (run `sync --rerun-failed` to do it now)."""
    with open_state(load(config)) as opened:
        items = FailedItems(opened.sessions)
        for item_id in item_ids:
            items.retry(item_id)
    typer.echo(f"{len(item_ids)} item(s) queued: the next `loyalty-connector sync` works on them again")


@app.command()
def skip(
    item_ids: list[int] = typer.Argument(..., help="Failed item ids."),
    reason: str = typer.Option(..., "--reason", help="Why the item is given up (required, recorded)."),
    by: str | None = typer.Option(None, "--by", help="Who skips it (default: $USER)."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Give up on items on purpose: recorded with who and why; their documents are left alone from now on."""
    who = by or os.environ.get("USER") or getpass.getuser()
    with open_state(load(config)) as opened:
        items = FailedItems(opened.sessions)
        for item_id in item_ids:
            items.skip(item_id, by=who, reason=reason)
    typer.echo(f"{len(item_ids)} item(s) skipped by {who}: {reason}")


def _console() -> Console:
    # Piped into a file or a ticket, a table is not cut to 80 columns.
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 200
    return console
