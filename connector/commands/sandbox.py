"""``sandbox`` commands: serve the emulated 1C, Evotor and CRM (``up``) or write their datasets (``generate``)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from connector.sandbox.generator import SandboxOptions

__all__ = ["app"]

app = typer.Typer(
    help="The built-in sandbox: emulated 1C (OData + SOAP), Evotor cloud and CRM with generated data.",
    no_args_is_help=True,
)

_SEED = typer.Option(7, "--seed", help="Seed of the generated data; same options, same data.")
_STORES = typer.Option(3, "--stores", min=1, help="Number of stores.")
_DAYS = typer.Option(7, "--days", min=1, help="Number of business days.")
_START = typer.Option("2026-11-01", "--start", help="First business date (YYYY-MM-DD).")
_CLEAN = typer.Option(
    False, "--clean", help="Only Evotor holds receipts; 1C and the CRM hold master data only."
)
_RECEIPTS = typer.Option(40, "--receipts", min=1, help="Till receipts per store and day.")
_OPENING = typer.Option(
    False,
    "--opening-balances",
    help="With --clean: the CRM keeps customers' opening balances (redemptions sync).",
)


def _options(
    seed: int, stores: int, days: int, start: str, clean: bool, receipts: int, opening: bool
) -> SandboxOptions:
    from connector.sandbox.generator import SandboxOptions

    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise typer.BadParameter(f"{start!r} is not a date (YYYY-MM-DD)", param_hint="--start") from None
    return SandboxOptions(
        seed=seed,
        stores=stores,
        days=days,
        start=first,
        clean=clean,
        receipts=receipts,
        opening_balances=opening,
    )


@app.command()
def up(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8800, "--port", min=0, max=65535, help="Port (0 picks a free one)."),
    seed: int = _SEED,
    stores: int = _STORES,
    days: int = _DAYS,
    start: str = _START,
    clean: bool = _CLEAN,
    receipts: int = _RECEIPTS,
    opening_balances: bool = _OPENING,
    faults: str = typer.Option(
        "", "--faults", help="Faults, e.g. 'evotor:429=0.1,crm:503=0.05,*:latency=20ms'."
    ),
    webhook: str = typer.Option(
        "", "--webhook", help="POST every receipt to this URL, as Evotor's webhook does."
    ),
    webhook_token: str = typer.Option("sandbox-webhook-token", "--webhook-token", help="Its bearer token."),
) -> None:
    """Serve every system from one HTTP server and print the base URLs and credentials; Ctrl-C stops it."""
    from connector.sandbox.faults import FaultSpec
    from connector.sandbox.generator import generate_world
    from connector.sandbox.server import serve

    FaultSpec.parse(faults)  # a bad spec fails before any data is generated
    options = _options(seed, stores, days, start, clean, receipts, opening_balances)
    world = generate_world(options)
    serve(
        world,
        host=host,
        port=port,
        faults=faults or None,
        webhook=webhook or None,
        webhook_token=webhook_token,
        announce=typer.echo,
    )


@app.command()
def generate(
    out: Path = typer.Option(..., "--out", help="Directory to write the datasets into."),
    seed: int = _SEED,
    stores: int = _STORES,
    days: int = _DAYS,
    start: str = _START,
    clean: bool = _CLEAN,
    receipts: int = _RECEIPTS,
    opening_balances: bool = _OPENING,
) -> None:
    """Write the raw datasets of every system and answer_key.json (the injected discrepancies)."""
    from connector.sandbox._export import export_world
    from connector.sandbox.generator import generate_world

    world = generate_world(_options(seed, stores, days, start, clean, receipts, opening_balances))
    written = export_world(world, out)
    typer.echo(
        f"wrote {len(written)} files to {out}: {len(world.receipts)} receipts, "
        f"{len(world.answer_key)} injected discrepancies (answer_key.json)"
    )
