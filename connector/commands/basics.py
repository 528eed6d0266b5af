"""Small top-level commands: ``schema``, ``init`` and ``demo``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from connector.errors import ConfigError
from connector.model import canonical_json_schema

__all__ = ["demo", "init", "schema"]


def schema() -> None:
    """Print the JSON Schema of canonical documents (sale | return) and postings."""
    typer.echo(json.dumps(canonical_json_schema(), ensure_ascii=False, indent=2))


def init(
    path: Path = typer.Option(Path("connector.yaml"), "--path", help="Where to write the config."),
    sandbox: str | None = typer.Option(
        None,
        "--sandbox",
        help="URL of a running `sandbox up` (http://127.0.0.1:8800): configure all its systems.",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented sample connector.yaml, or one for a running sandbox (--sandbox URL)."""
    if sandbox is None:
        from connector.config import write_sample_config

        write_sample_config(path, force=force)
        typer.echo(f"wrote {path}")
        return
    from connector.config import load_config
    from connector.sandbox.rehearsal import write_sandbox_config

    if path.name != "connector.yaml":
        raise ConfigError(
            f"--sandbox writes connector.yaml into a directory; give --path DIR/connector.yaml, not {path}"
        )
    written = write_sandbox_config(sandbox, path.parent, force=force)
    config = load_config(written)
    typer.echo(f"wrote {written} for the sandbox at {sandbox}: systems {', '.join(config.systems)}")
    typer.echo(f"state: {config.state}")


def demo(
    directory: Path = typer.Option(
        Path("demo"), "--dir", help="Where the demo writes its config, state and report."
    ),
    seed: int = typer.Option(7, "--seed", help="Sandbox seed: same seed, same week of receipts."),
    stores: int = typer.Option(3, "--stores", help="Sandbox stores."),
    days: int = typer.Option(7, "--days", help="Business days, from 2026-11-01."),
    workers: int = typer.Option(4, "--workers", help="Sync threads."),
) -> None:
    """Run the main job on embedded defaults: sandbox systems in-process, sync, nightly reconciliation, report."""
    from rich.console import Console

    from connector.demo import run_demo
    from connector.logs import configure_logging
    from connector.report import render_table
    from connector.sandbox.generator import SandboxOptions

    console = Console()
    configure_logging("ERROR")  # failed items are counted below and listed by `failures list`
    console.print(f"demo: sandbox (seed {seed}, {stores} stores, {days} days), sync, reconciliation…")
    outcome = run_demo(directory, SandboxOptions(seed=seed, stores=stores, days=days), workers=workers)
    totals = ", ".join(f"{name} {count}" for name, count in outcome.sync.totals.items() if count) or "nothing"
    console.print(f"sync: {totals}; failed items open: {outcome.sync.failed_open}")
    render_table(outcome.result, console, title="Nightly reconciliation", max_rows=10)
    console.print(f"config: {outcome.config}")
    console.print(f"HTML report: {outcome.report.resolve()}")
    console.print(f"done in {outcome.seconds:.1f} s")
