"""``runs list|show``: what each sync (and reconciliation) run did, per system and store.

``runs list --format json`` prints an array, newest first, of ``{"id", "kind", "status" (running | ok |
failed_items | discrepancies | error | interrupted), "started_at", "finished_at", "duration_s", "args",
"totals": {fetched, mapped, unchanged, written, skipped, failed}, "error"}``; ``runs show ID --format json``
prints one such object with ``"counts": {system: {store: {…the same counts…}}}`` added. Times are ISO 8601 with offset (UTC).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from connector.commands.common import CONFIG_OPTION, load, open_state
from connector.errors import InputError
from connector.store.runs import RunRecord, Runs
from connector.sync import COUNTS

__all__ = ["FORMAT_OPTION", "app", "check_format", "list_runs", "run_json", "show"]

app = typer.Typer(help="Sync and reconciliation runs: counts per system and store.", no_args_is_help=True)
FORMAT_OPTION = typer.Option("table", "--format", help="table or json.")


def check_format(output: str) -> str:
    """``table`` or ``json``, else an InputError."""
    if output not in ("table", "json"):
        raise InputError(f"--format {output!r}: choose table or json", field="--format")
    return output


def _totals(counts: dict[str, Any]) -> dict[str, int]:
    totals = dict.fromkeys(COUNTS, 0)
    for stores in counts.values():
        for figures in stores.values():
            for name in COUNTS:
                totals[name] += int(figures.get(name, 0))
    return totals


def run_json(run: RunRecord, *, counts: bool = False) -> dict[str, Any]:
    """The stable JSON form of a run (see the module docstring)."""
    data: dict[str, Any] = {
        "id": run.id,
        "kind": run.kind,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_s": run.duration_s,
        "args": run.args,
        "totals": _totals(run.counts),
        "error": run.error,
    }
    if counts:
        data["counts"] = run.counts
    return data


@app.command("list")
def list_runs(
    config: Path | None = CONFIG_OPTION,
    limit: int = typer.Option(20, "--limit", min=1, help="How many of the latest runs."),
    kind: str | None = typer.Option(None, "--kind", help="sync or reconcile."),
    output: str = FORMAT_OPTION,
) -> None:
    """The latest runs, newest first."""
    check_format(output)
    with open_state(load(config)) as state:
        runs = Runs(state.sessions).recent(limit, kind)
    if output == "json":
        typer.echo(json.dumps([run_json(run) for run in runs], ensure_ascii=False, indent=2))
        return
    table = Table()
    for column in ("id", "kind", "status", "started", "duration s", *COUNTS):
        table.add_column(column, justify="right" if column not in ("kind", "status", "started") else "left")
    for run in runs:
        totals = _totals(run.counts)
        duration = f"{run.duration_s:.1f}" if run.duration_s is not None else "-"
        table.add_row(str(run.id), run.kind, run.status, run.started_at.strftime("%Y-%m-%d %H:%M:%S"), duration,
                      *(str(totals[name]) for name in COUNTS))  # fmt: skip
    _console().print(table)


@app.command()
def show(
    run_id: int = typer.Argument(..., help="The run id (see `runs list`)."),
    config: Path | None = CONFIG_OPTION,
    output: str = FORMAT_OPTION,
) -> None:
    """One run: its arguments and counts per system and store."""
    check_format(output)
    with open_state(load(config)) as state:
        run = Runs(state.sessions).get(run_id)
    if output == "json":
        typer.echo(json.dumps(run_json(run, counts=True), ensure_ascii=False, indent=2))
        return
    console = _console()
    duration = f"{run.duration_s:.1f} s" if run.duration_s is not None else "running"
    console.print(f"run {run.id} ({run.kind}): {run.status}, {duration}, started {run.started_at.isoformat()}",
                  markup=False)  # fmt: skip
    console.print(f"args: {json.dumps(run.args, ensure_ascii=False)}", markup=False)
    if run.error:
        console.print(f"error: {run.error}", markup=False)
    table = Table()
    for column in ("system", "store", *COUNTS):
        table.add_column(column, justify="left" if column in ("system", "store") else "right")
    for system, stores in sorted(run.counts.items()):
        for store, figures in sorted(stores.items()):
            table.add_row(system, store or "-", *(str(figures.get(name, 0)) for name in COUNTS))
    console.print(table)


def _console() -> Console:
    # Piped into a file or a ticket, a table is not cut to 80 columns.
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 200
    return console
