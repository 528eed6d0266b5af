"""The emulated 1C:Enterprise: standard OData interface (v3) and the ``LoyaltyExchange`` SOAP service.

Two flavours of one mechanism (reference/onec.md): ``ut`` — УТ 11 (mounted by the sandbox server at ``/1c/ut``,
with the SOAP service) and ``retail`` — Розница 2 (``/1c/retail``). :func:`build_onec_app` serves the 1C view of
a :class:`~connector.sandbox.world.World`; the infobase is rendered on first use (a base nobody asks for costs no
memory, and the server starts at once — like a real publication, the first request waits for it) and is
reachable as ``app.infobase`` (or ``app.state.infobase``) for seeding and inspection.

Example:
    >>> app = build_onec_app(world, flavour="ut")          # doctest: +SKIP
    >>> app.infobase.rows("Document_ЧекККМ")                # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.routing import BaseRoute

from connector.sandbox.onec.base import OneCInfobase
from connector.sandbox.onec.odata_app import BasicAuth, odata_routes
from connector.sandbox.onec.render import program_timezone, render_world
from connector.sandbox.onec.soap import soap_routes
from connector.sandbox.onec.wire import OneCServiceError
from connector.sandbox.world import World

__all__ = ["OneCApp", "OneCInfobase", "OneCServiceError", "build_onec_app", "render_world"]


class _Lazy:
    """Builds the infobase once, on first call, whichever thread asks first."""

    def __init__(self, build: Callable[[], OneCInfobase]) -> None:
        self._build = build
        self._base: OneCInfobase | None = None
        self._lock = threading.Lock()

    def __call__(self) -> OneCInfobase:
        if self._base is None:
            with self._lock:
                if self._base is None:
                    self._base = self._build()
        return self._base


class _State(State):
    """``app.state`` whose ``infobase`` is rendered on first access."""

    def __init__(self, infobase: Callable[[], OneCInfobase]) -> None:
        super().__init__()
        object.__setattr__(self, "_infobase", infobase)

    def __getattr__(self, key: Any) -> Any:
        if key == "infobase":
            return object.__getattribute__(self, "_infobase")()
        return super().__getattr__(key)


class OneCApp(Starlette):
    """The ASGI app of one emulated 1C base; :attr:`infobase` (also ``app.state.infobase``) renders on first use."""

    def __init__(self, infobase: Callable[[], OneCInfobase], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._infobase = infobase
        self.state = _State(infobase)

    @property
    def infobase(self) -> OneCInfobase:
        """The served infobase (rendered now if nobody has asked for it yet)."""
        return self._infobase()


def build_onec_app(
    world: World,
    *,
    flavour: Literal["ut", "retail"],
    user: str = "exchange",
    password: str = "exchange",  # noqa: S107 - the sandbox's documented default credential
    infobase: OneCInfobase | None = None,
) -> OneCApp:
    """An ASGI app serving the 1C view of ``world``: OData at ``/odata/standard.odata/``, SOAP (ut) at ``/ws/…``.

    Args:
        world: the sandbox world to render (on first use; ignored when ``infobase`` is given).
        flavour: ``ut`` (УТ 11) or ``retail`` (Розница 2).
        user: the infobase user for HTTP Basic auth.
        password: its password.
        infobase: a prebuilt infobase to serve instead of rendering ``world``.

    Returns:
        A Starlette app; mount it at ``/1c/ut`` or ``/1c/retail``. URLs it writes follow the mount point.
    """
    provider = _Lazy(lambda: infobase if infobase is not None else render_world(world, flavour))
    auth = BasicAuth(user, password)
    zone = ZoneInfo(program_timezone(world))

    def now() -> datetime:
        return datetime.now(zone).replace(tzinfo=None, microsecond=0)

    routes: list[BaseRoute] = [*odata_routes(provider, flavour, auth)]
    if flavour == "ut":
        routes += soap_routes(provider, auth, now)
    return OneCApp(provider, routes=routes)
