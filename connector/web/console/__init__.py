"""The support console: server-rendered pages (Jinja2) for support and ops staff, and the JSON API beside it.

Mounted into the service app by :func:`install_console`::

    install_console(app, config)            # /console (pages, static files) and /api/v1 (JSON, OpenAPI)

The pages are in Russian by default, English per user (:mod:`connector.web.i18n`); accounts, sessions, CSRF and
roles are in :mod:`connector.web.auth`; reads in :mod:`.queries`, actions (audited) in :mod:`.actions`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from connector.config import ConnectorConfig
from connector.store import Store, open_store

from . import forms, routes
from .web import STATIC_DIR, ConsoleState, LoginRequired, render, session_user

__all__ = ["CONSOLE_PATH", "ConsoleState", "create_console_app", "install_console"]

CONSOLE_PATH = "/console"
API_PATH = "/api/v1"


async def _to_login(request: Request, _exc: Exception) -> Response:
    root = request.scope.get("root_path", "")
    target = request.url.path
    suffix = (
        f"?next={quote(target, safe='/')}"
        if request.method == "GET" and target.startswith(f"{root}/")
        else ""
    )
    return RedirectResponse(f"{root}/login{suffix}", status_code=303)


async def _error_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code not in (403, 404):
        return await http_exception_handler(request, exc)
    return render(request, "error.html", session_user(request), exc.status_code, status=exc.status_code)


def create_console_app(state: ConsoleState) -> FastAPI:
    """The console pages as an app of their own, to be mounted at :data:`CONSOLE_PATH`."""
    app = FastAPI(title="loyalty-connector console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = state
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.include_router(forms.router)
    app.include_router(routes.router)
    app.add_exception_handler(LoginRequired, _to_login)
    app.add_exception_handler(StarletteHTTPException, _error_page)
    return app


def install_console(
    app: FastAPI,
    config: ConnectorConfig,
    store: Store | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    probe_systems: bool = True,
) -> ConsoleState:
    """Mount the console at ``/console`` and the JSON API at ``/api/v1`` on ``app``; ``/`` leads to the console.

    Args:
        app: the service app (the one that also receives webhooks).
        config: the connector configuration.
        store: the open state database (opened from ``config.state`` when not given).
        clock: the current time (tests pin it).
        probe_systems: whether the health page calls the configured systems.
    """
    from ..api import create_api_app

    state = ConsoleState(config=config, store=store or open_store(config.state), probe_systems=probe_systems)
    if clock is not None:
        state.clock = clock
    app.mount(API_PATH, create_api_app(state))
    app.mount(CONSOLE_PATH, create_console_app(state))
    if not any(getattr(route, "path", None) == "/" for route in app.routes):
        app.add_api_route("/", lambda: RedirectResponse(f"{CONSOLE_PATH}/"), include_in_schema=False)
    return state
