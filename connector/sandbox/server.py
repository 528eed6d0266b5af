"""The sandbox server: every emulated system behind one HTTP port, for rehearsals, demo, tests, benchmarks.

Layout (one uvicorn server; each system app wrapped in its own fault middleware)::

    /1c/ut/odata/standard.odata/          1C УТ 11, OData v3          Basic exchange / exchange
    /1c/ut/ws/LoyaltyExchange.1cws?wsdl   1C SOAP service (WSDL)      Basic exchange / exchange
    /1c/retail/odata/standard.odata/      1C Розница 2, OData v3      Basic exchange / exchange
    /evotor/                              Evotor cloud v2             token sandbox-evotor-token
    /crm/api/v5/                          RetailCRM-style loyalty     X-API-KEY sandbox-crm-key
    /__sandbox/health                     GET: {"status": "ok", …}
    /__sandbox/faults                     GET: the spec in force; POST {"spec": "evotor:503=0.1,…"}: change it
    /__sandbox/info                       GET: base URLs and credentials (what ``init --sandbox URL`` reads)
    /__sandbox/program                    GET: the loyalty program the data was generated under (YAML)
    /__sandbox/answer-key                 GET: the injected discrepancies (JSON)

:class:`SandboxServer` runs it in a thread on a free port (the pytest fixture); :func:`serve` runs it in the
foreground until Ctrl-C or SIGTERM (``loyalty-connector sandbox up``).
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from connector.errors import ConnectorError, InputError
from connector.sandbox.crm import build_crm_app
from connector.sandbox.evotor import build_evotor_app
from connector.sandbox.faults import FaultInjector, faults_middleware
from connector.sandbox.generator import SandboxOptions, generate_world
from connector.sandbox.onec import build_onec_app
from connector.sandbox.webhooks import start_webhook_sender
from connector.sandbox.world import World

__all__ = [
    "CRM_API_KEY",
    "EVOTOR_TOKEN",
    "ONEC_PASSWORD",
    "ONEC_USER",
    "WEBHOOK_TOKEN",
    "Endpoint",
    "SandboxServer",
    "build_sandbox_app",
    "endpoints",
    "serve",
]

ONEC_USER = "exchange"
ONEC_PASSWORD = "exchange"  # noqa: S105 - the sandbox's documented default credential
EVOTOR_TOKEN = "sandbox-evotor-token"  # noqa: S105 - idem
CRM_API_KEY = "sandbox-crm-key"
WEBHOOK_TOKEN = "sandbox-webhook-token"  # noqa: S105 - idem


@dataclass(frozen=True)
class Endpoint:
    """One served system: its name, base URL and how to authenticate."""

    system: str
    title: str
    url: str
    credentials: dict[str, str]

    def line(self) -> str:
        """One aligned line for the terminal."""
        creds = "  ".join(f"{key} {value}" for key, value in self.credentials.items())
        return f"  {self.title:<20} {self.url}  {creds}".rstrip()


def endpoints(base_url: str) -> list[Endpoint]:
    """The served systems' base URLs and credentials for a server at ``base_url`` (``http://host:port``)."""
    base = base_url.rstrip("/")
    onec = {"user": ONEC_USER, "password": ONEC_PASSWORD}
    return [
        Endpoint("onec_ut", "1C УТ 11 (OData)", f"{base}/1c/ut/odata/standard.odata/", onec),
        Endpoint("onec_retail", "1C Розница 2 (OData)", f"{base}/1c/retail/odata/standard.odata/", onec),
        Endpoint("onec_soap", "1C SOAP (WSDL)", f"{base}/1c/ut/ws/LoyaltyExchange.1cws?wsdl", onec),
        Endpoint("evotor", "Evotor cloud", f"{base}/evotor", {"token": EVOTOR_TOKEN}),
        Endpoint("crm", "CRM (RetailCRM v5)", f"{base}/crm", {"api_key": CRM_API_KEY}),
    ]


def _summary(world: World) -> dict[str, Any]:
    return {
        "seed": world.seed,
        "stores": len(world.stores),
        "days": world.days,
        "start": world.start.isoformat(),
        "clean": world.clean,
        "receipts": len(world.receipts),
        "discrepancies": len(world.answer_key),
    }


def _control_routes(world: World, injector: FaultInjector) -> list[BaseRoute]:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", **_summary(world)})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = json.loads(await request.body() or b"{}")
                spec = body["spec"] if isinstance(body, dict) else None
                if not isinstance(spec, str):
                    raise InputError('expected a JSON object {"spec": "system:fault=rate,…"}', field="spec")
                injector.update(spec)
            except (ValueError, KeyError, ConnectorError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        injected = {
            f"{system}:{fault}": count for (system, fault), count in sorted(injector.injected.items())
        }
        return JSONResponse({"spec": str(injector.spec), "injected": injected})

    async def info(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        systems = {e.system: {"url": e.url, **e.credentials} for e in endpoints(base)}
        # How 1C knows each till store: the canonical (Evotor) store id -> its Склад Ref_Key.
        onec_stores = {store.id: store.onec_store_ref for store in world.stores}
        return JSONResponse(
            {**_summary(world), "systems": systems, "onec_stores": onec_stores, "faults": str(injector.spec)}
        )

    async def program(request: Request) -> Response:
        return Response(world.program_yaml, media_type="application/yaml; charset=utf-8")

    async def answer_key(request: Request) -> Response:
        return JSONResponse([entry.as_json() for entry in world.answer_key])

    return [
        Route("/__sandbox/health", health),
        Route("/__sandbox/faults", faults, methods=["GET", "POST"]),
        Route("/__sandbox/info", info),
        Route("/__sandbox/program", program),
        Route("/__sandbox/answer-key", answer_key),
    ]


def build_sandbox_app(
    world: World,
    *,
    faults: FaultInjector | None = None,
    rate_per_second: float | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Starlette:
    """The one ASGI app serving every emulated system of ``world`` and the ``/__sandbox/`` controls.

    Args:
        world: the generated world.
        faults: the injector shared by every system (a fault-free one by default).
        rate_per_second: the Evotor and CRM request budgets (their own defaults when None; 0 disables them).
        clock: the CRM's "now" (balances, new operations); the wall clock by default.
    """
    injector = faults or FaultInjector()
    limits: dict[str, Any] = {} if rate_per_second is None else {"rate_per_second": rate_per_second}
    systems = [
        ("/1c/ut", "onec", build_onec_app(world, flavour="ut", user=ONEC_USER, password=ONEC_PASSWORD)),
        (
            "/1c/retail",
            "onec",
            build_onec_app(world, flavour="retail", user=ONEC_USER, password=ONEC_PASSWORD),
        ),
        ("/evotor", "evotor", build_evotor_app(world, token=EVOTOR_TOKEN, **limits)),
        ("/crm", "crm", build_crm_app(world, api_key=CRM_API_KEY, clock=clock, **limits)),
    ]
    routes = _control_routes(world, injector)
    routes += [Mount(path, app=faults_middleware(app, injector, system)) for path, system, app in systems]
    app = Starlette(routes=routes)
    app.state.world = world
    app.state.faults = injector
    return app


def _world(source: World | SandboxOptions | None) -> World:
    return source if isinstance(source, World) else generate_world(source)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it Nagle holds each small keep-alive response ~40 ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}", field="port") from None
    sock.listen(2048)
    return sock


def _uvicorn(app: Starlette) -> uvicorn.Server:
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
    )
    return uvicorn.Server(config)


def _base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class SandboxServer:
    """The sandbox in a background thread, for tests and the demo.

    Args:
        source: a world, or options to generate one (defaults when None).
        host: the interface to listen on.
        port: the port; 0 picks a free one.
        faults: an initial fault spec (``"evotor:503=0.2"``); change it later with ``server.faults.update``.
        fault_seed: the seed of fault draws.
        rate_per_second: the Evotor and CRM request budgets (emulator defaults when None; 0 = unlimited).
        clock: the CRM's "now"; the wall clock by default.

    Example:
        >>> with SandboxServer(SandboxOptions(stores=1, days=1), port=0) as sandbox:  # doctest: +SKIP
        ...     requests.get(f"{sandbox.base_url}/__sandbox/health").json()["status"]
        'ok'
    """

    def __init__(
        self,
        source: World | SandboxOptions | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: str | None = None,
        fault_seed: int = 0,
        rate_per_second: float | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.world = _world(source)
        self.faults = FaultInjector(faults, seed=fault_seed)
        self.app = build_sandbox_app(
            self.world, faults=self.faults, rate_per_second=rate_per_second, clock=clock
        )
        self._host, self._port = host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def start(self, timeout: float = 10.0) -> SandboxServer:
        """Listen and serve in a daemon thread; return once requests are answered."""
        sock = _bind(self._host, self._port)
        self.base_url = _base_url(sock)
        self._server = server = _uvicorn(self.app)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="sandbox-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConnectorError("the sandbox server did not start", system="sandbox", url=self.base_url)
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread (open slow requests are cut after 2 s)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._server = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def serve(
    world: World,
    *,
    host: str = "127.0.0.1",
    port: int = 8800,
    faults: str | None = None,
    webhook: str | None = None,
    webhook_token: str = WEBHOOK_TOKEN,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve ``world`` in the foreground until Ctrl-C or SIGTERM, then return (a clean stop).

    Args:
        world: the generated world.
        host: the interface to listen on.
        port: the port (0 picks a free one; the printed URLs say which).
        faults: an initial fault spec.
        webhook: a URL to POST every receipt to, as Evotor's receipt webhook does (re-sent until a 200).
        webhook_token: the bearer token the webhook sends.
        announce: where the endpoint lines go once the port listens.
    """
    injector = FaultInjector(faults)
    app = build_sandbox_app(world, faults=injector)
    sock = _bind(host, port)
    base = _base_url(sock)
    for line in _announcement(world, base, injector):
        announce(line)
    sender = start_webhook_sender(world, webhook, webhook_token) if webhook else None
    if sender is not None:
        announce(f"webhook: POSTing {len(sender.receipts)} receipts to {webhook} (Bearer {webhook_token})")
    server = _uvicorn(app)
    # uvicorn re-raises the signal that stopped it once it has shut down, through the handlers it found
    # installed; quiet ones make that re-raise a no-op, so a stop by Ctrl-C or SIGTERM is a normal return.
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        if sender is not None:
            sender.stop(timeout=5)


def _ignore(signum: int, frame: object) -> None:
    """A stop signal arriving after uvicorn has shut down: nothing left to do."""


def _announcement(world: World, base: str, injector: FaultInjector) -> list[str]:
    summary = _summary(world)
    head = (
        f"sandbox: seed {summary['seed']}, {summary['stores']} stores, {summary['days']} days from "
        f"{summary['start']}{' (clean)' if world.clean else ''}: {summary['receipts']} receipts, "
        f"{summary['discrepancies']} injected discrepancies"
    )
    lines = [head, *(endpoint.line() for endpoint in endpoints(base))]
    lines.append(f"  {'control':<20} {base}/__sandbox/  (health, faults, info, program, answer-key)")
    if str(injector.spec):
        lines.append(f"  faults: {injector.spec}")
    lines.append("ready; Ctrl-C stops")
    return lines
