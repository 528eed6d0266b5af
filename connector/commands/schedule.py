"""``schedule`` commands: run the ``schedule:`` jobs of ``connector.yaml``, and list them.

``schedule run`` runs until SIGTERM or Ctrl-C; then a running job finishes its current item, its lease is
released and the command exits 0. Several ``schedule run`` processes may share one state database: each run
of a job takes the job's lease first, so a job never runs twice at once.

``schedule list --format json`` prints one object (times ISO 8601 with the schedule zone's offset)::

    {"timezone": "Europe/Moscow",
     "jobs": [{"name": "sync", "schedule": "every 5m", "run": ["sync"],
               "next_run": "2026-11-22T20:35:00+03:00", "next_run_stored": true,
               "misfire_grace_s": 300, "coalesce": true,
               "lease": null | {"holder": "host:pid:uuid", "acquired_at": "…", "heartbeat_at": "…",
                                "heartbeat_age_s": 1.2, "expires_at": "…", "expired": false}}]}
"""

from __future__ import annotations

import json
import signal
import threading
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType

import typer
from rich.console import Console
from rich.table import Table

from connector.commands.common import CONFIG_OPTION, load, open_state
from connector.config import ConnectorConfig
from connector.scheduler import JobStatus, ScheduleRunner, job_statuses

__all__ = ["ListFormat", "app", "list_jobs", "run"]

app = typer.Typer(help="Scheduled jobs: run them (interval sync, nightly reconcile) or list them.",
                  no_args_is_help=True)  # fmt: skip


class ListFormat(StrEnum):
    """Output of ``schedule list``."""

    table = "table"
    json = "json"


@app.command()
def run(
    config: Path | None = CONFIG_OPTION,
    lease_ttl: float = typer.Option(
        30.0,
        "--lease-ttl",
        min=1.0,
        help="Seconds a crashed process keeps a job's lease before another takes it.",
    ),
    heartbeat: float = typer.Option(
        5.0, "--heartbeat", min=0.1, help="Seconds between renewals of a running job's lease."
    ),
) -> None:
    """Run the configured jobs until SIGTERM or Ctrl-C (a running job finishes its current item; exit 0)."""
    settings = load(config)
    if not settings.schedule:
        typer.echo("no jobs under schedule: in the config; nothing to run", err=True)
        raise typer.Exit(1)
    stop = threading.Event()
    # Handlers first: a SIGTERM while the database is being opened still ends in an orderly stop.
    previous = _on_stop_signals(stop)
    try:
        _serve(settings, stop, lease_ttl=lease_ttl, heartbeat=heartbeat)
    finally:
        _restore(previous)
    typer.echo("scheduler stopped")


def _serve(settings: ConnectorConfig, stop: threading.Event, *, lease_ttl: float, heartbeat: float) -> None:
    with open_state(settings) as store:
        runner = ScheduleRunner(settings, store, lease_ttl=lease_ttl, heartbeat=heartbeat)
        try:
            runner.start()
            typer.echo(
                f"scheduler running {len(settings.schedule)} job(s) in {settings.timezone}; Ctrl-C stops"
            )
            # Short waits, so that the signal handlers run promptly in this (the main) thread.
            while not stop.wait(0.5):
                pass
            typer.echo("stopping: waiting for the running job to finish its current item")
        finally:
            runner.shutdown()


_Handler = signal.Handlers | int | None | object


def _on_stop_signals(stop: threading.Event) -> dict[int, _Handler]:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    return {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)}


def _restore(previous: dict[int, _Handler]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)  # type: ignore[arg-type]


@app.command("list")
def list_jobs(
    config: Path | None = CONFIG_OPTION,
    output: ListFormat = typer.Option(ListFormat.table, "--format", "-f", help="table or json."),
) -> None:
    """Show the jobs, their triggers, next run times (in the schedule's zone) and who holds each lease."""
    settings = load(config)
    now = datetime.now(UTC)
    with open_state(settings) as store:
        statuses = job_statuses(settings, store, now=now)
    if output is ListFormat.json:
        document = {"timezone": settings.timezone, "jobs": [status.as_json(now) for status in statuses]}
        typer.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    _print_table(statuses, settings.timezone, now)


def _print_table(statuses: list[JobStatus], zone: str, now: datetime) -> None:
    table = Table(title=f"Scheduled jobs ({zone})", title_justify="left")
    for column in ("job", "schedule", "runs", "next run", "lease holder", "heartbeat"):
        table.add_column(column)
    for status in statuses:
        next_run = status.next_run.strftime("%Y-%m-%d %H:%M:%S %Z") if status.next_run else "paused"
        holder, beat = "-", "-"
        if status.lease is not None:
            holder = status.lease.holder
            beat = f"{status.lease.heartbeat_age(now):.1f}s ago"
            if status.lease.expired(now):
                beat += " (expired)"
        table.add_row(status.name, status.schedule, ", ".join(status.run), next_run, holder, beat)
    if not statuses:
        typer.echo("no jobs under schedule: in the config")
        return
    Console(width=160, highlight=False, soft_wrap=True).print(table)
