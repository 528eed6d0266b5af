"""The emulated Evotor cloud, REST API v2 (``reference/evotor.md`` §1–§3), mounted by the sandbox at ``/evotor``.

Endpoints: ``GET /stores``, ``GET /stores/{store_id}``, ``GET /devices``, ``GET /stores/{store_id}/documents``
(and per till, ``GET /stores/{store_id}/devices/{device_id}/documents``) and
``GET /stores/{store_id}/documents/{document_id}``. The document list behaves as the reference describes:

* ``since`` (inclusive) and ``until`` (exclusive) are epoch milliseconds compared with ``close_date``; ``until``
  defaults to the request time; ``type`` is a comma list (``SELL,PAYBACK``);
* pages of at most ``page_size`` items in ``{"items": […], "paging": {"next_cursor": …}}``, ordered by close
  time; ``paging`` is ``{}`` on the last page;
* the opaque cursor carries the filters: a request with ``cursor`` ignores ``since``/``until``/``type``;
* with the ``dup`` fault, a page after the first starts with the last item of the page before.

Every response carries ``X-RateLimit-Limit``/``-Remaining``/``-Reset``; past the per-token budget the answer is
429 with ``Retry-After``. The cloud token is accepted as ``X-Authorization: <token>`` and as
``Authorization: Bearer <token>``; anything else is 401. Errors use the body of Evotor's Java SDK:
``{"code", "message", "violations": [{"reason", "subject"}]}``.

All documents are rendered to JSON when the app is built and kept deflated in blocks of consecutive documents
(:class:`~connector.sandbox._wire.BlockStore`), so a 1,000-document page is a few milliseconds of inflating
and a join, and a 100,000-receipt world takes tens of megabytes, not hundreds.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.sandbox._render_evotor import SandboxIndex, render_device, render_document_json, render_store
from connector.sandbox._wire import BlockStore, RateBudget, decode_cursor, dumps, encode_cursor
from connector.sandbox.faults import wants_dup
from connector.sandbox.world import World

__all__ = ["DEFAULT_TOKEN", "DOCUMENT_TYPES", "build_evotor_app", "epoch_ms"]

DEFAULT_TOKEN = "sandbox-evotor-token"  # noqa: S105 - the sandbox's published credential, not a secret
DOCUMENT_TYPES = frozenset(
    {
        "OPEN_SESSION",
        "POS_OPEN_SESSION",
        "CLOSE_SESSION",
        "CASH_INCOME",
        "CASH_OUTCOME",
        "INVENTORY",
        "ACCEPT",
        "REVALUATION",
        "WRITE_OFF",
        "RETURN",
        "OPEN_TARE",
        "SELL",
        "PAYBACK",
        "BUY",
        "BUYBACK",
        "X_REPORT",
        "Z_REPORT",
    }
)
_JSON = "application/json; charset=utf-8"
_ERROR_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 404: "NOT_FOUND", 429: "TOO_MANY_REQUESTS"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


def epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime, the unit of ``since``/``until``."""
    return int(moment.timestamp() * 1000)


def _error(status: int, message: str, violations: list[tuple[str, str]] | None = None) -> Response:
    body = {
        "code": _ERROR_CODES.get(status, str(status)),
        "message": message,
        "violations": [{"reason": reason, "subject": subject} for reason, subject in violations or []],
    }
    return Response(dumps(body), status_code=status, media_type=_JSON)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(404, "Not found")


@dataclass
class _Stream:
    """One store's documents of one type selection: close times (sorted) and positions in the store's list."""

    close_ms: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)


@dataclass
class _StoreDocuments:
    """A store's documents in close-time order, kept deflated, with its streams and an id index."""

    documents: BlockStore = field(default_factory=BlockStore)
    streams: dict[str, _Stream] = field(default_factory=dict)  # "ALL" | "SELL" | "PAYBACK"
    by_id: dict[str, int] = field(default_factory=dict)

    def add(self, receipt_id: str, kind: str, moment: int, document: bytes) -> None:
        position = self.documents.append(document)
        self.by_id[receipt_id] = position
        for key in (kind, "ALL"):
            stream = self.streams.setdefault(key, _Stream())
            stream.close_ms.append(moment)
            stream.positions.append(position)


@dataclass
class _EvotorData:
    stores: list[bytes]
    store_blobs: dict[str, bytes]
    devices: list[tuple[str, bytes]]  # (store id, device json)
    device_of: dict[str, str]  # store id -> its till's device id
    documents: dict[str, _StoreDocuments]  # store id -> its documents


def _prerender(world: World) -> _EvotorData:
    index = SandboxIndex.of(world)
    stores = [dumps(render_store(index, store)) for store in world.stores]
    data = _EvotorData(
        stores=stores,
        store_blobs={store.id: blob for store, blob in zip(world.stores, stores, strict=True)},
        devices=[(store.id, dumps(render_device(index, store))) for store in world.stores],
        device_of={store.id: store.evotor_device_id for store in world.stores},
        documents={store.id: _StoreDocuments() for store in world.stores},
    )
    for receipt in sorted(world.receipts, key=lambda r: (r.occurred_at, r.id)):
        document = render_document_json(index, receipt).encode()
        kind = "SELL" if receipt.kind == "sale" else "PAYBACK"
        data.documents[receipt.store_id].add(receipt.id, kind, epoch_ms(receipt.occurred_at), document)
    return data


def _list_body(items: list[bytes] | bytes, next_cursor: str | None) -> bytes:
    """The list envelope around ``items`` (a list, or the items already joined by commas)."""
    joined = items if isinstance(items, bytes) else b",".join(items)
    paging = b'{"next_cursor":"%s"}' % next_cursor.encode() if next_cursor else b"{}"
    return b'{"items":[' + joined + b'],"paging":' + paging + b"}"


def _parse_ms(request: Request, name: str, default: int, violations: list[tuple[str, str]]) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        violations.append((f"{name} must be epoch milliseconds", name))
        return default


def _selection(raw: str | None, violations: list[tuple[str, str]]) -> str:
    """The stream key (``ALL``, ``SELL``, ``PAYBACK`` or ``NONE``) for a ``type`` filter."""
    types = {part.strip() for part in (raw or "").split(",") if part.strip()}
    unknown = sorted(types - DOCUMENT_TYPES)
    if unknown:
        violations.append((f"unknown document type {', '.join(unknown)}", "type"))
    if not types or {"SELL", "PAYBACK"} <= types:
        return "ALL"
    return "SELL" if "SELL" in types else "PAYBACK" if "PAYBACK" in types else "NONE"


class _Documents:
    """The paginated document list of a store."""

    def __init__(self, data: _EvotorData, page_size: int) -> None:
        self.data = data
        self.page_size = page_size

    async def handle(self, request: Request) -> Response:
        """Serve one page: the first from the query filters, later ones from the cursor alone."""
        store_id = request.path_params["store_id"]
        if store_id not in self.data.store_blobs:
            return _error(404, "Store not found", [("not found", "store_id")])
        device_id = request.path_params.get("device_id")
        if device_id is not None and self.data.device_of.get(store_id) != device_id:
            return _error(404, "Device not found", [("not found", "device_id")])  # each store has one till
        cursor = request.query_params.get("cursor")
        state = self._resume(store_id, cursor) if cursor else self._first(store_id, request)
        if isinstance(state, Response):
            return state
        key, start, end = state
        if cursor and wants_dup(request.scope) and start > 0:
            start -= 1  # the dup fault: repeat the previous page's last item
        return self._page(store_id, key, start, end)

    def _first(self, store_id: str, request: Request) -> tuple[str, int, int] | Response:
        violations: list[tuple[str, str]] = []
        since = _parse_ms(request, "since", 0, violations)
        until = _parse_ms(request, "until", int(time.time() * 1000), violations)
        selection = _selection(request.query_params.get("type"), violations)
        if violations:
            return _error(400, "Invalid request parameters", violations)
        stream = self.data.documents[store_id].streams.get(selection, _Stream())
        return selection, bisect_left(stream.close_ms, since), bisect_left(stream.close_ms, until)

    def _resume(self, store_id: str, cursor: str) -> tuple[str, int, int] | Response:
        state = decode_cursor(cursor)
        if state is None or state.get("s") != store_id or not {"k", "i", "e"} <= state.keys():
            return _error(400, "Invalid cursor", [("invalid cursor", "cursor")])
        return str(state["k"]), int(state["i"]), int(state["e"])

    def _page(self, store_id: str, key: str, start: int, end: int) -> Response:
        store = self.data.documents[store_id]
        stream = store.streams.get(key, _Stream())
        stop = min(start + self.page_size, end)
        following = encode_cursor({"s": store_id, "k": key, "i": stop, "e": end}) if stop < end else None
        documents = store.documents.joined(stream.positions[start:stop])
        return Response(_list_body(documents, following), media_type=_JSON)


def _routes(data: _EvotorData, page_size: int) -> list[Route]:
    async def stores(request: Request) -> Response:
        return Response(_list_body(data.stores, None), media_type=_JSON)

    async def store(request: Request) -> Response:
        blob = data.store_blobs.get(request.path_params["store_id"])
        return Response(blob, media_type=_JSON) if blob else _error(404, "Store not found")

    async def devices(request: Request) -> Response:
        wanted = request.query_params.get("store_id")
        blobs = [blob for store_id, blob in data.devices if wanted in (None, store_id)]
        return Response(_list_body(blobs, None), media_type=_JSON)

    async def document(request: Request) -> Response:
        store = data.documents.get(request.path_params["store_id"])
        position = store.by_id.get(request.path_params["document_id"]) if store else None
        if store is None or position is None:
            return _error(404, "Document not found")
        return Response(store.documents.get(position), media_type=_JSON)

    documents = _Documents(data, page_size)
    return [
        Route("/stores", stores),
        Route("/stores/{store_id}", store),
        Route("/devices", devices),
        Route("/stores/{store_id}/documents", documents.handle),
        Route("/stores/{store_id}/devices/{device_id}/documents", documents.handle),
        Route("/stores/{store_id}/documents/{document_id}", document),
    ]


def _presented_token(scope: Scope) -> str | None:
    headers: dict[str, str] = {
        key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])
    }
    direct = headers.get("x-authorization")
    if direct:
        return direct.strip()
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class _Gate:
    """Authentication and the per-token rate budget, with the rate headers on every response."""

    def __init__(self, app: ASGIApp, token: str, budget: RateBudget) -> None:
        self.app = app
        self.token = token
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        presented = _presented_token(scope)
        decision = self.budget.take(presented or "")
        rate_headers = [
            (b"x-ratelimit-limit", str(decision.limit).encode()),
            (b"x-ratelimit-remaining", str(decision.remaining).encode()),
            (b"x-ratelimit-reset", str(decision.reset_seconds).encode()),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *rate_headers]}
            await send(message)

        if presented != self.token:
            response = _error(401, "Invalid or missing cloud token")
        elif not decision.allowed:
            response = _error(429, "Request limit exceeded for the current period")
            response.headers["Retry-After"] = str(decision.reset_seconds)
        else:
            await self.app(scope, receive, send_with_headers)
            return
        await response(scope, receive, send_with_headers)


def build_evotor_app(
    world: World,
    *,
    token: str = DEFAULT_TOKEN,
    page_size: int = 1000,
    rate_per_second: float = 100.0,
    burst: int | None = None,
) -> Starlette:
    """Build the emulated Evotor cloud for ``world`` (mount it at ``/evotor``).

    Args:
        world: the sandbox world; its receipts are rendered once, here.
        token: the cloud token clients must present.
        page_size: the most documents one page holds.
        rate_per_second: the per-token budget (token bucket); ``0`` disables the limit.
        burst: the bucket size; one second's worth of requests by default.

    Example:
        >>> app = build_evotor_app(world, rate_per_second=0)  # doctest: +SKIP
        >>> # GET /stores/{id}/documents?since=1700000000000&type=SELL,PAYBACK with X-Authorization: <token>
    """
    data = _prerender(world)
    app = Starlette(routes=_routes(data, page_size), exception_handlers={404: _not_found, 405: _not_found})
    app.add_middleware(_Gate, token=token, budget=RateBudget(rate_per_second, burst))
    return app
