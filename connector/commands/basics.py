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


def demo() -> None:
    """Run the main job on embedded defaults (sandbox systems, sync, nightly reconciliation, report)."""
    typer.echo(
        "demo: not yet available - it needs the sandbox, sync and reconciliation, which are still being built."
    )
