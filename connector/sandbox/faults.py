"""Fault injection for the sandbox: the failures real 1C, Evotor and CRM servers produce, at chosen rates.

A spec is a comma-separated list of ``system:fault=value`` items::

    evotor:429=0.1, crm:drop=0.05, *:latency=20ms, onec:malformed=0.02, evotor:dup=1

* systems: ``onec``, ``evotor``, ``crm`` or ``*`` (every system; a named system's own item wins);
* faults, each with a probability in ``[0, 1]`` (``0.1`` or ``10%``):

  ``429``        refused for rate, with ``Retry-After`` (seconds);
  ``500``/``503`` a server error in the system's own error body;
  ``drop``       the TCP connection is reset before any byte of a response (``requests`` raises
                 ``ConnectionError``);
  ``slow``       the response comes after 31 s, past any sane client timeout;
  ``malformed``  the real response, its body cut in half (truncated JSON);
  ``dup``        paginated endpoints repeat the last item of the previous page at the start of the next one;

* ``latency=20ms`` (or ``0.5s``) is a delay added to every response of the system.

Rates are drawn from a seeded RNG, so a run with the same seed and the same request order sees the same faults.
:meth:`FaultInjector.update` changes the spec while the server runs (``POST /__sandbox/faults``).

Paginated endpoints cooperate for ``dup``: the middleware marks the ASGI scope with :data:`DUP_SCOPE_KEY` and
the endpoint, when it serves a page after the first, starts one item early.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from connector.errors import InputError

__all__ = [
    "DUP_SCOPE_KEY",
    "FAULTS",
    "SYSTEMS",
    "FaultDraw",
    "FaultInjector",
    "FaultMiddleware",
    "FaultSpec",
    "faults_middleware",
    "wants_dup",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SYSTEMS = ("onec", "evotor", "crm")
# Response-replacing faults, in the order they are drawn; at most one of them hits a request.
_EXCLUSIVE = ("drop", "slow", "429", "500", "503", "malformed")
FAULTS = (*_EXCLUSIVE, "dup", "latency")
DUP_SCOPE_KEY = "sandbox.faults.dup"

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s)?$")


def _parse_rate(value: str, item: str) -> float:
    text = value.strip()
    try:
        rate = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise InputError("fault rate is not a number", field="faults", value=item) from None
    if not 0.0 <= rate <= 1.0:
        raise InputError("fault rate must be between 0 and 1", field="faults", value=item)
    return rate


def _parse_duration(value: str, item: str) -> float:
    match = _DURATION.match(value.strip())
    if match is None:
        raise InputError("latency must look like 20ms or 0.5s", field="faults", value=item)
    number = float(match.group(1))
    return number if match.group(2) == "s" else number / 1000


@dataclass(frozen=True)
class FaultSpec:
    """Parsed fault rates and latencies, keyed by system (``*`` for all).

    Example:
        >>> spec = FaultSpec.parse("evotor:429=0.5,*:latency=20ms")
        >>> spec.rate("evotor", "429"), spec.rate("crm", "429"), spec.latency("crm")
        (0.5, 0.0, 0.02)
    """

    rates: dict[tuple[str, str], float] = field(default_factory=dict)
    latencies: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> FaultSpec:
        """Parse ``system:fault=value`` items; raise :class:`InputError` naming the first bad item."""
        rates: dict[tuple[str, str], float] = {}
        latencies: dict[str, float] = {}
        for item in (part.strip() for part in (text or "").split(",")):
            if not item:
                continue
            system, fault, value = cls._split(item)
            if fault == "latency":
                latencies[system] = _parse_duration(value, item)
            else:
                rates[(system, fault)] = _parse_rate(value, item)
        return cls(rates, latencies)

    @staticmethod
    def _split(item: str) -> tuple[str, str, str]:
        target, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise InputError("fault item must be system:fault=value", field="faults", value=item)
        system, colon, fault = target.strip().rpartition(":")
        system = system.strip() if colon else "*"
        fault = fault.strip()
        if system not in (*SYSTEMS, "*"):
            raise InputError(f"unknown system {system!r}; use one of {', '.join(SYSTEMS)} or *", value=item)
        if fault not in FAULTS:
            raise InputError(f"unknown fault {fault!r}; use one of {', '.join(FAULTS)}", value=item)
        return system, fault, value

    def rate(self, system: str, fault: str) -> float:
        """The probability of ``fault`` for ``system``: its own item, else the ``*`` item, else 0."""
        return self.rates.get((system, fault), self.rates.get(("*", fault), 0.0))

    def latency(self, system: str) -> float:
        """Seconds added to every response of ``system``."""
        return self.latencies.get(system, self.latencies.get("*", 0.0))

    def __str__(self) -> str:
        items = [f"{system}:{fault}={rate:g}" for (system, fault), rate in sorted(self.rates.items())]
        items += [
            f"{system}:latency={seconds * 1000:g}ms" for system, seconds in sorted(self.latencies.items())
        ]
        return ",".join(items)


@dataclass(frozen=True)
class FaultDraw:
    """What happens to one request: at most one exclusive fault, whether pages repeat, and the added delay."""

    fault: str | None = None
    dup: bool = False
    latency: float = 0.0


class FaultInjector:
    """Draws faults per request from a seeded RNG; thread-safe, and updatable while the server runs.

    Args:
        spec: the initial spec (text or parsed); none means no faults.
        seed: RNG seed, so a run can be repeated.
        slow_seconds: how long ``slow`` holds a response (31 s: past a 30 s client timeout; tests pass less).
        retry_after: the ``Retry-After`` seconds sent with an injected 429.
    """

    def __init__(
        self,
        spec: FaultSpec | str | None = None,
        *,
        seed: int = 0,
        slow_seconds: float = 31.0,
        retry_after: int = 1,
    ) -> None:
        self._spec = spec if isinstance(spec, FaultSpec) else FaultSpec.parse(spec)
        self._rng = random.Random(seed)  # noqa: S311 - reproducible fault draws, not security
        self._lock = threading.Lock()
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.injected: Counter[tuple[str, str]] = Counter()

    @property
    def spec(self) -> FaultSpec:
        """The spec in force."""
        return self._spec

    def update(self, spec: FaultSpec | str) -> FaultSpec:
        """Replace the spec (validated first: a bad one leaves the old in force) and return the new one."""
        parsed = spec if isinstance(spec, FaultSpec) else FaultSpec.parse(spec)
        with self._lock:
            self._spec = parsed
        return parsed

    def draw(self, system: str) -> FaultDraw:
        """Decide the faults of one request to ``system``."""
        with self._lock:
            spec = self._spec
            fault = next((name for name in _EXCLUSIVE if self._hit(spec.rate(system, name))), None)
            dup = self._hit(spec.rate(system, "dup"))
            for name in (fault, "dup" if dup else None):
                if name is not None:
                    self.injected[(system, name)] += 1
        return FaultDraw(fault, dup, spec.latency(system))

    def _hit(self, rate: float) -> bool:
        # Draw even at rate 0 so that enabling one fault does not reshuffle the others' sequence.
        return self._rng.random() < rate


def wants_dup(scope: Scope) -> bool:
    """Whether the fault middleware asked this request's paginated endpoint to repeat an item."""
    return bool(scope.get(DUP_SCOPE_KEY, False))


def _error_body(system: str, status: int, message: str) -> bytes:
    body: dict[str, Any]
    if system == "crm":
        body = {"success": False, "errorMsg": message}
    elif system == "evotor":
        body = {"code": str(status), "message": message, "violations": []}
    elif system == "onec":
        body = {"odata.error": {"code": "-1", "message": {"lang": "ru", "value": message}}}
    else:
        body = {"error": message}
    return json.dumps(body, ensure_ascii=False).encode()


_MESSAGES = {429: "Too many requests", 500: "Internal server error", 503: "Service temporarily unavailable"}


class FaultMiddleware:
    """ASGI middleware injecting the drawn faults into one mounted system app.

    Mount it directly around the system app (Starlette's ``Mount`` passes uvicorn's ``receive`` through, which
    ``drop`` needs to reach the connection).
    """

    def __init__(self, app: ASGIApp, injector: FaultInjector, system: str) -> None:
        self.app = app
        self.injector = injector
        self.system = system

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        draw = self.injector.draw(self.system)
        if draw.latency:
            await asyncio.sleep(draw.latency)
        if draw.dup:
            scope = {**scope, DUP_SCOPE_KEY: True}
        if draw.fault in ("429", "500", "503"):
            await self._refuse(int(draw.fault), send)
        elif draw.fault == "drop":
            await self._drop(receive, send)
        elif draw.fault == "malformed":
            await self._truncated(scope, receive, send)
        else:
            if draw.fault == "slow":
                await asyncio.sleep(self.injector.slow_seconds)
            await self.app(scope, receive, send)

    async def _refuse(self, status: int, send: Send) -> None:
        body = _error_body(self.system, status, _MESSAGES[status])
        headers = [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
        ]
        if status == 429:
            headers.append((b"retry-after", str(self.injector.retry_after).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _drop(self, receive: Receive, send: Send) -> None:
        transport = getattr(getattr(receive, "__self__", None), "transport", None)
        if transport is None:
            # No way to the socket: promise a body and never send it, the nearest thing to a reset.
            start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
            await send(start)
            raise ConnectionResetError("sandbox fault: drop")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN: a real connection reset.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        await asyncio.sleep(0)  # let uvicorn see the disconnect, so it does not try to answer 500

    async def _truncated(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        body = body[: max(1, len(body) // 2)]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": start.get("status", 200), "headers": headers})
        await send({"type": "http.response.body", "body": body})


def faults_middleware(app: ASGIApp, injector: FaultInjector, system: str) -> FaultMiddleware:
    """Wrap a mounted system app (``system`` is ``onec``, ``evotor`` or ``crm``) with fault injection.

    Example:
        >>> injector = FaultInjector("evotor:503=0.1", seed=7)
        >>> wrapped = faults_middleware(build_evotor_app(world), injector, "evotor")  # doctest: +SKIP
    """
    if system not in SYSTEMS:
        raise InputError(f"unknown system {system!r}; use one of {', '.join(SYSTEMS)}", field="system")
    return FaultMiddleware(app, injector, system)
