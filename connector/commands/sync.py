"""``sync``: pull the sources into the journal and push every configured route through the outbox.

Scopes: incremental (default: each stream from its watermark minus the lookback), ``--rerun-failed`` (every open
or retried failed item, no pull), ``--document ID`` (one document; with ``--store`` it is fetched again first),
``--from DATE --to DATE [--store S]`` (a backfill of those business dates; moves no watermark).

Exit codes: 0 everything in scope written, 1 failed items left (how many, and the command to see them), 2 error.
``--format json`` prints one object: ``{"run_id", "exit_code", "failed_open", "failed_now", "partitions",
"duration_s", "stages": {"pull", "map", "write"} (seconds), "totals": {count: n}, "counts": {system: {store:
{fetched, mapped, unchanged, written, skipped, failed}}}}``. ``map`` is summed over the threads (it runs inside the
write stage: what the pull landed is mapped by the first partition of each store's day).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from connector.commands.common import CONFIG_OPTION, load, open_state
from connector.errors import InputError
from connector.sync import COUNTS, SyncReport, SyncScope, run_sync

__all__ = ["report_json", "sync"]


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option} {value!r} is not a date like 2026-11-01", field=option) from None


def _scope(rerun_failed: bool, document: str | None, date_from: str | None, date_to: str | None,
           stores: list[str]) -> SyncScope:  # fmt: skip
    first, last = _date(date_from, "--from"), _date(date_to, "--to")
    if (first is None) != (last is None):
        raise InputError("a backfill needs both --from and --to", field="--from")
    if first and last and first > last:
        raise InputError(f"--from {first} is after --to {last}", field="--from")
    if sum((rerun_failed, document is not None, first is not None)) > 1:
        raise InputError("choose one scope: --rerun-failed, --document, or --from/--to", field="scope")
    return SyncScope(rerun_failed, document, first, last, tuple(stores) or None)


def report_json(report: SyncReport) -> dict[str, object]:
    """The stable JSON form of a sync report (see the module docstring)."""
    return {
        "run_id": report.run_id,
        "exit_code": report.exit_code,
        "failed_open": report.failed_open,
        "failed_now": report.failed_now,
        "partitions": report.partitions,
        "duration_s": report.duration_s,
        "stages": report.stages,
        "totals": {name: report.totals.get(name, 0) for name in COUNTS},
        "counts": report.counts,
    }


def _table(report: SyncReport) -> Table:
    stages = ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in report.stages.items())
    table = Table(title=f"sync run {report.run_id} ({report.duration_s:.1f} s: {stages})")
    table.add_column("system")
    table.add_column("store")
    for name in COUNTS:
        table.add_column(name, justify="right")
    for system, stores in sorted(report.counts.items()):
        for store, figures in sorted(stores.items()):
            table.add_row(system, store or "-", *(str(figures.get(name, 0)) for name in COUNTS))
    return table


def sync(
    config: Path | None = CONFIG_OPTION,
    workers: int | None = typer.Option(
        None, "--workers", "-w", min=1, help="Threads (default sync.workers, 4)."
    ),
    rerun_failed: bool = typer.Option(False, "--rerun-failed", help="Work again on every open failed item."),
    document: str | None = typer.Option(None, "--document", help="Only this document (source id)."),
    date_from: str | None = typer.Option(
        None, "--from", help="Backfill from this business date (YYYY-MM-DD)."
    ),
    date_to: str | None = typer.Option(None, "--to", help="Backfill to this business date, inclusive."),
    store: list[str] = typer.Option([], "--store", help="Only this store (repeatable)."),
    wait: float = typer.Option(0.0, "--wait", min=0, help="SQLite: seconds to wait for a running sync."),
    output: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Pull the sources and push every route; exit 1 when failed items are left."""
    if output not in ("table", "json"):
        raise InputError(f"--format {output!r}: choose table or json", field="--format")
    loaded = load(config)
    scope = _scope(rerun_failed, document, date_from, date_to, store)
    with open_state(loaded) as state:
        report = run_sync(loaded, store=state, workers=workers, scope=scope, wait=wait)
    if output == "json":
        typer.echo(json.dumps(report_json(report), ensure_ascii=False, indent=2))
    else:
        _console().print(_table(report))
    if report.failed_open:
        Console(stderr=True, highlight=False).print(
            f"{report.failed_open} failed item(s) left ({report.failed_now} from this run): "
            "see `loyalty-connector failures list`",
            markup=False,
        )
        raise typer.Exit(1)


def _console() -> Console:
    # Piped into a file or a ticket, a table is not cut to 80 columns.
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 200
    return console
