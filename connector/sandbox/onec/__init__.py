"""The emulated 1C:Enterprise: standard OData interface (v3) and the ``LoyaltyExchange`` SOAP service.

Two flavours of one mechanism (reference/onec.md): ``ut`` — УТ 11 (mounted by the sandbox server at ``/1c/ut``,
with the SOAP service) and ``retail`` — Розница 2 (``/1c/retail``). :func:`build_onec_app` renders a
:class:`~connector.sandbox.world.World` into an :class:`OneCInfobase` and serves it; the infobase stays reachable
as ``app.state.infobase`` for seeding and inspection.

Example:
    >>> app = build_onec_app(world, flavour="ut")          # doctest: +SKIP
    >>> app.state.infobase.rows("Document_ЧекККМ")          # doctest: +SKIP
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from connector.sandbox.onec.base import OneCInfobase
from connector.sandbox.onec.odata_app import BasicAuth, odata_routes
from connector.sandbox.onec.render import program_timezone, render_world
from connector.sandbox.onec.soap import soap_routes
from connector.sandbox.onec.wire import OneCServiceError
from connector.sandbox.world import World

__all__ = ["OneCInfobase", "OneCServiceError", "build_onec_app", "render_world"]


def build_onec_app(
    world: World,
    *,
    flavour: Literal["ut", "retail"],
    user: str = "exchange",
    password: str = "exchange",  # noqa: S107 - the sandbox's documented default credential
    infobase: OneCInfobase | None = None,
) -> Starlette:
    """An ASGI app serving the 1C view of ``world``: OData at ``/odata/standard.odata/``, SOAP (ut) at ``/ws/…``.

    Args:
        world: the sandbox world to render (ignored when ``infobase`` is given).
        flavour: ``ut`` (УТ 11) or ``retail`` (Розница 2).
        user: the infobase user for HTTP Basic auth.
        password: its password.
        infobase: a prebuilt infobase to serve instead of rendering ``world``.

    Returns:
        A Starlette app; mount it at ``/1c/ut`` or ``/1c/retail``. URLs it writes follow the mount point.
    """
    base = infobase if infobase is not None else render_world(world, flavour)
    auth = BasicAuth(user, password)
    zone = ZoneInfo(program_timezone(world))

    def now() -> datetime:
        return datetime.now(zone).replace(tzinfo=None, microsecond=0)

    routes: list[BaseRoute] = [*odata_routes(base, auth)]
    if flavour == "ut":
        routes += soap_routes(base, auth, now)
    app = Starlette(routes=routes)
    app.state.infobase = base
    return app
