"""``bench`` commands: the sync and reconciliation benchmarks, with their baselines measured in the same run.

Each prints its measures beside the issue's targets (PASS / MISS) and the machine's load average, or with
``--json`` one JSON object. The exit code is 0 either way: a missed target is a finding, not an error.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import typer

from connector.logs import configure_logging

__all__ = ["app"]

app = typer.Typer(
    help="Benchmarks: sync against a sandbox with latency, reconciliation compare against DuckDB and datacompy.",
    no_args_is_help=True,
)


def _quiet() -> None:
    """Warnings of each failed item would drown the summary; --verbose and --debug keep their own level."""
    if logging.getLogger().getEffectiveLevel() == logging.WARNING:
        configure_logging("ERROR")


def _emit(result: dict[str, Any], lines: list[str], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
    else:
        for line in lines:
            typer.echo(line)


@app.command("sync")
def sync_command(
    receipts: int = typer.Option(100_000, "--receipts", min=1, help="Till receipts (over 7 days)."),
    stores: int = typer.Option(50, "--stores", min=1, help="Stores."),
    latency_ms: float = typer.Option(
        20, "--latency-ms", min=0, help="Latency the sandbox adds per response."
    ),
    workers: int = typer.Option(4, "--workers", min=1, max=64, help="Threads of the sync and the baseline."),
    seed: int = typer.Option(7, "--seed", help="Seed of the generated world."),
    rounds: int = typer.Option(
        3, "--rounds", min=1, help="Rounds of baseline then pull; the ratio is the median round's."
    ),
    profile: Path | None = typer.Option(None, "--profile", help="Write a cProfile of the sync stage here."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Sync N receipts tills → CRM and tills → 1C; time the pull stage against plain requests."""
    from connector.bench.sync_bench import format_sync, run_sync_bench

    _quiet()
    result = run_sync_bench(receipts=receipts, stores=stores, latency_ms=latency_ms, workers=workers, seed=seed,
                            rounds=rounds, profile=profile)  # fmt: skip
    _emit(result, format_sync(result), as_json)


@app.command("reconcile")
def reconcile_command(
    rows: int = typer.Option(1_000_000, "--rows", min=10, help="Receipts per side in the state store."),
    end_to_end: bool = typer.Option(
        False,
        "--end-to-end",
        help="Instead: the nightly reconcile against a sandbox, against plain requests.",
    ),
    receipts: int = typer.Option(200_000, "--receipts", min=1, help="With --end-to-end: sandbox receipts."),
    stores: int = typer.Option(50, "--stores", min=1, help="With --end-to-end: stores."),
    workers: int = typer.Option(4, "--workers", min=1, max=64, help="With --end-to-end: threads."),
    latency_ms: float = typer.Option(0, "--latency-ms", min=0, help="With --end-to-end: sandbox latency."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Compare N receipts per side from the state store against DuckDB and datacompy (or --end-to-end)."""
    _quiet()
    if end_to_end:
        from connector.bench.reconcile_e2e import format_end_to_end, run_end_to_end_bench

        result = run_end_to_end_bench(
            receipts=receipts, stores=stores, workers=workers, latency_ms=latency_ms
        )
        _emit(result, format_end_to_end(result), as_json)
        return
    from connector.bench.reconcile_bench import format_reconcile, run_reconcile_bench

    result = run_reconcile_bench(rows=rows)
    _emit(result, format_reconcile(result), as_json)
