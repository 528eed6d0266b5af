"""``reconcile``: compare the systems for a window of business dates, report every discrepancy, plan or apply fixes.

::

    loyalty-connector reconcile (--date D | --from A --to B) [--store S]... [--config connector.yaml]
                                [--format table|json|csv|html] [--output FILE] [--fix [--apply]]

The report goes to stdout (or ``--output``); a progress bar is drawn on stderr while the systems are read, when
stderr is a terminal. ``--fix`` prints the plan after the report; ``--fix --apply`` performs the automatic fixes
through the outbox (idempotent: applying twice writes once). Exit 0 when everything agrees, 1 when discrepancies
were found, 2 on error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from connector.commands.common import CONFIG_OPTION, load, open_state
from connector.discrepancies import ReconcileResult
from connector.errors import InputError
from connector.reconcile import ApplyReport, apply_fixes, plan_fixes, reconcile
from connector.report import FORMATS, render, write_report

__all__ = ["reconcile_command"]


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option} {text!r} is not a date like 2026-11-01", field=option) from None


def _window(day: str | None, start: str | None, end: str | None) -> tuple[date, date]:
    one, first, last = _day(day, "--date"), _day(start, "--from"), _day(end, "--to")
    if one is not None and (first or last):
        raise InputError("give --date, or --from and --to, not both", field="--date")
    if one is not None:
        return one, one
    if first is None or last is None:
        raise InputError("give --date D, or --from A and --to B", field="--from")
    if last < first:
        raise InputError(f"--to {last} is before --from {first}", field="--to")
    return first, last


@contextmanager
def _progress_bar() -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar on stderr while systems are read; nothing when stderr is not a terminal."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def advance(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)  # type: ignore[arg-type]

        yield advance


def _plan_text(result: ReconcileResult) -> str:
    plan = plan_fixes(result)
    manual = sum(1 for item in result.discrepancies if not item.fix.automatic)
    lines = [f"Fix plan: {len(plan)} automatic, {manual} for a person"]
    lines += [f"  {fix.action:<18} {fix.target or '':<8} {fix.key}  — {fix.description}" for _, fix in plan]
    return "\n".join(lines)


def _applied_text(report: ApplyReport) -> str:
    lines = [f"Applied: {len(report.written)} written, {len(report.already)} already there, "
             f"{len(report.failed)} failed"]  # fmt: skip
    lines += [f"  failed {key}: {reason}" for key, reason in report.failed.items()]
    return "\n".join(lines)


def reconcile_command(
    day: str | None = typer.Option(None, "--date", help="One business date (YYYY-MM-DD)."),
    start: str | None = typer.Option(None, "--from", help="First business date of the window."),
    end: str | None = typer.Option(None, "--to", help="Last business date of the window (inclusive)."),
    stores: list[str] | None = typer.Option(None, "--store", help="Only this store (repeatable)."),
    config: Path | None = CONFIG_OPTION,
    fmt: str = typer.Option("table", "--format", help=f"Report format: {', '.join(FORMATS)}."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the report to FILE."),
    fix: bool = typer.Option(False, "--fix", help="Print the fix plan."),
    apply: bool = typer.Option(False, "--apply", help="With --fix: perform the automatic fixes."),
) -> None:
    """Compare tills, accounting and the loyalty ledger for a window; exit 1 when they disagree."""
    if fmt not in FORMATS:
        raise InputError(f"unknown --format {fmt!r}; use one of {', '.join(FORMATS)}", field="--format")
    if apply and not fix:
        raise InputError("--apply needs --fix", field="--apply")
    date_from, date_to = _window(day, start, end)
    settings = load(config)
    with open_state(settings) as store:
        with _progress_bar() as progress:
            result = reconcile(
                settings, date_from=date_from, date_to=date_to, stores=stores or None, store=store,
                progress=progress,
            )  # fmt: skip
        if output is not None:
            write_report(result, fmt, output)  # type: ignore[arg-type]
            typer.echo(f"report written to {output}", err=True)
        else:
            typer.echo(render(result, fmt), nl=False)  # type: ignore[arg-type]
        if fix:
            typer.echo(_plan_text(result), err=fmt != "table" and output is None)
            if apply:
                report = apply_fixes(settings, result, store)
                typer.echo(_applied_text(report), err=fmt != "table" and output is None)
    raise typer.Exit(0 if result.agrees else 1)
