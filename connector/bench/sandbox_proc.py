"""The sandbox in a child process, with a request counter: what the benchmarks measure against.

The benchmarks run the sandbox in its own process so that its memory (the generated world, the served views)
is not counted in the connector's peak RSS, and its CPU does not share the connector's interpreter lock.
The child wraps the sandbox app in :class:`CountingApp`, which counts every request per system and method and,
when asked, records the URL of every ``GET`` (so a baseline can fetch exactly the pages the connector read).

Control endpoints of the child (beside the sandbox's own ``/__sandbox/``)::

    GET  /__bench/counts            {"counts": {"evotor GET": 120, "onec POST": 2000, …}}
    POST /__bench/reset?record=1    clear the counts (and the recorded URLs); record GET URLs from now on
    GET  /__bench/urls              {"urls": ["/evotor/stores/…/documents?since=…", …]}

Example:
    >>> with SandboxProcess(SandboxOptions(stores=2, clean=True), latency_ms=20) as sandbox:  # doctest: +SKIP
    ...     sandbox.reset()
    ...     run_sync(config)
    ...     sandbox.counts()["onec POST"]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import date
from types import TracebackType
from typing import Any

import requests
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from connector.errors import ConnectorError
from connector.sandbox.generator import SandboxOptions

__all__ = ["CountingApp", "SandboxProcess", "main", "system_of"]

_PREFIX = "/__bench/"
_START_TIMEOUT = 900.0  # generating 200,000 receipts on a loaded 2-core machine takes minutes


def system_of(path: str) -> str:
    """The sandbox system a request path belongs to: ``evotor``, ``crm``, ``onec`` or ``sandbox``."""
    head = path.lstrip("/").split("/", 1)[0]
    return {"1c": "onec", "evotor": "evotor", "crm": "crm"}.get(head, "sandbox")


class CountingApp:
    """ASGI middleware counting requests per ``"<system> <METHOD>"`` and serving ``/__bench/`` controls.

    Args:
        app: the sandbox app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()
        self.urls: list[str] = []
        self.record = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(_PREFIX):
            await self._control(path[len(_PREFIX) :], scope, receive, send)
            return
        self.counts[f"{system_of(path)} {scope['method']}"] += 1
        if self.record and scope["method"] == "GET":
            # The raw (percent-encoded) path: 1C entity names are Cyrillic.
            raw = scope.get("raw_path") or path.encode()
            query = scope.get("query_string", b"")
            self.urls.append(raw.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else ""))
        await self.app(scope, receive, send)

    async def _control(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        body: dict[str, Any]
        if name == "reset":
            self.counts.clear()
            self.urls = []
            self.record = b"record=1" in scope.get("query_string", b"")
            body = {"ok": True}
        elif name == "urls":
            body = {"urls": self.urls}
        else:
            body = {"counts": dict(self.counts)}
        await JSONResponse(body)(scope, receive, send)


@dataclass(frozen=True)
class _ChildArgs:
    seed: int
    stores: int
    days: int
    start: str
    receipts: int
    clean: bool
    opening_balances: bool
    latency_ms: float
    rate: float


class SandboxProcess:
    """``python -m connector.bench.sandbox_proc`` as a context manager: start, count, stop (SIGTERM).

    Args:
        options: the world to generate in the child.
        latency_ms: added to every response of every system (the fault ``*:latency=…ms``); 0 for none.
        rate_per_second: the Evotor and CRM request budgets of the emulators (0: unlimited).

    Attributes:
        base_url: where the child listens (set by :meth:`start`).
        receipts: how many till receipts the child's world holds.
        onec_stores: canonical store id → its 1C ``Ref_Key`` (the 1C adapter's ``options.store_ids``).
    """

    def __init__(self, options: SandboxOptions, *, latency_ms: float = 0, rate_per_second: float = 0) -> None:
        self.args = _ChildArgs(
            options.seed, options.stores, options.days, options.start.isoformat(), options.receipts,
            options.clean, options.opening_balances, latency_ms, rate_per_second,
        )  # fmt: skip
        self.base_url = ""
        self.receipts = 0
        self.onec_stores: dict[str, str] = {}
        self._process: subprocess.Popen[str] | None = None
        self._http = requests.Session()

    def start(self) -> SandboxProcess:
        """Start the child and wait until it serves (it prints one JSON line then)."""
        command = [sys.executable, "-m", "connector.bench.sandbox_proc", json.dumps(asdict(self.args))]
        self._process = process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603
        line = _read_line(process, _START_TIMEOUT)
        if not line:
            self.stop()
            raise ConnectorError("the benchmark sandbox did not start", system="sandbox")
        ready = json.loads(line)
        self.base_url, self.receipts = ready["base_url"], int(ready["receipts"])
        self.onec_stores = {str(key): str(value) for key, value in ready["stores"].items()}
        return self

    def counts(self) -> dict[str, int]:
        """Requests counted since the last :meth:`reset`, per ``"<system> <METHOD>"``."""
        response = self._http.get(f"{self.base_url}{_PREFIX}counts", timeout=30)
        response.raise_for_status()
        return {str(key): int(value) for key, value in response.json()["counts"].items()}

    def reset(self, *, record: bool = False) -> None:
        """Clear the counts; with ``record``, keep the URL of every GET from now on."""
        url = f"{self.base_url}{_PREFIX}reset" + ("?record=1" if record else "")
        self._http.post(url, timeout=30).raise_for_status()

    def urls(self) -> list[str]:
        """The GET URLs recorded since :meth:`reset` with ``record`` (paths with their query strings)."""
        response = self._http.get(f"{self.base_url}{_PREFIX}urls", timeout=120)
        response.raise_for_status()
        return [str(url) for url in response.json()["urls"]]

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after 30 s)."""
        self._http.close()
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The child's first stdout line, or "" when it exits or stays silent for ``timeout`` seconds."""
    found: list[str] = []
    reader = threading.Thread(
        target=lambda: found.append(process.stdout.readline() if process.stdout else "")
    )
    reader.daemon = True
    reader.start()
    reader.join(timeout)
    return found[0] if found else ""


def main(argv: list[str] | None = None) -> int:
    """The child: generate the world, serve it with the counter on a free port, print one JSON line, wait."""
    from connector.sandbox.server import SandboxServer

    parser = argparse.ArgumentParser(description="benchmark sandbox (child process)")
    parser.add_argument("spec", help="the _ChildArgs as JSON")
    raw = json.loads(parser.parse_args(argv).spec)
    args = _ChildArgs(**raw)
    options = SandboxOptions(
        seed=args.seed, stores=args.stores, days=args.days, start=date.fromisoformat(args.start),
        clean=args.clean, receipts=args.receipts, opening_balances=args.opening_balances,
    )  # fmt: skip
    faults = f"*:latency={args.latency_ms:g}ms" if args.latency_ms > 0 else None
    server = SandboxServer(options, faults=faults, rate_per_second=args.rate)
    server.app = CountingApp(server.app)  # type: ignore[assignment]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start(timeout=60)
    stores = {store.id: store.onec_store_ref for store in server.world.stores}
    ready = {"base_url": server.base_url, "receipts": len(server.world.receipts), "stores": stores}
    print(json.dumps(ready), flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
