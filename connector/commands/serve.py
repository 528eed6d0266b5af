"""``serve``: the webhook receivers and the support console over HTTP (uvicorn), until Ctrl-C or SIGTERM.

Evotor's receipts webhook goes to ``POST /webhooks/evotor/receipts`` (Bearer ``options.webhook_token`` of the
Evotor system, or ``$EVOTOR_WEBHOOK_TOKEN``), Hookshot events to ``POST /webhooks/evotor/events``
(``X-Hub-Signature`` with ``options.webhook_secret`` or ``$EVOTOR_WEBHOOK_SECRET``); see
:mod:`connector.web.webhooks`.
"""

from __future__ import annotations

from pathlib import Path

import typer
import uvicorn

from connector.commands.common import CONFIG_OPTION, load, open_state
from connector.web.app import create_app

__all__ = ["serve"]


def serve(
    config: Path | None = CONFIG_OPTION,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: every one)."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port to listen on."),
    console: bool = typer.Option(True, "--console/--no-console", help="Serve the support console too."),
) -> None:
    """Receive Evotor webhooks (and serve the console) until stopped."""
    loaded = load(config)
    with open_state(loaded) as state:
        app = create_app(loaded, store=state, console=console)
        typer.echo(f"serving on http://{host}:{port} (webhooks at /webhooks/evotor/receipts and /events)")
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
