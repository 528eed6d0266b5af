"""The service app ``loyalty-connector serve`` runs: webhook receivers, and the support console beside them.

:func:`create_app` builds it; other parts add their routers to it (``app.include_router(...)``). The webhook
intake's worker thread runs while the app is served (its lifespan).

Example::

    app = create_app(load_config())
    uvicorn.run(app, host="127.0.0.1", port=8080)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from connector import __version__
from connector.config import ConnectorConfig
from connector.store import Store, open_store
from connector.web.webhooks import WebhookIntake
from connector.web.webhooks import router as webhooks_router

__all__ = ["create_app"]


def create_app(
    config: ConnectorConfig,
    *,
    store: Store | None = None,
    console: bool = True,
    process_webhooks: bool = True,
    poll_seconds: float = 5.0,
) -> FastAPI:
    """The service app: ``/webhooks/evotor/*`` and, with ``console``, ``/console`` and ``/api/v1``.

    Args:
        config: the connector configuration.
        store: the open state database (opened from ``config.state`` when None).
        console: mount the support console and its JSON API.
        process_webhooks: run the worker that syncs journaled deliveries (off: the next ``sync`` reads them).
        poll_seconds: how often the worker looks for journaled deliveries when none woke it.
    """
    opened = store or open_store(config.state)
    intake = WebhookIntake(config, opened, poll_seconds=poll_seconds)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if process_webhooks:
            intake.start()
        try:
            yield
        finally:
            intake.stop()

    app = FastAPI(
        title="loyalty-connector", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.config, app.state.store, app.state.webhooks = config, opened, intake
    app.include_router(webhooks_router)
    if console:
        from connector.web.console import install_console

        install_console(app, config, opened)
    return app
