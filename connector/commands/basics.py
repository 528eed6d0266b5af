"""Small top-level commands: ``schema``, ``init`` and ``demo``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from connector.model import canonical_json_schema

__all__ = ["demo", "init", "schema"]


def schema() -> None:
    """Print the JSON Schema of canonical documents (sale | return) and postings."""
    typer.echo(json.dumps(canonical_json_schema(), ensure_ascii=False, indent=2))


def init(
    path: Path = typer.Option(Path("connector.yaml"), "--path", help="Where to write the config."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented sample connector.yaml to start from."""
    from connector.config import write_sample_config

    write_sample_config(path, force=force)
    typer.echo(f"wrote {path}")


def demo() -> None:
    """Run the main job on embedded defaults (sandbox systems, sync, nightly reconciliation, report)."""
    typer.echo(
        "demo: not yet available - it needs the sandbox, sync and reconciliation, which are still being built."
    )
