"""Evotor cloud, REST API v2 (``reference/evotor.md``): stores, till documents by store, webhook payloads.

Reading (:class:`EvotorAdapter`):

* ``GET /stores`` (cursor-paged) gives the stores; ``stores:`` in the config narrows them;
* ``GET /stores/{id}/documents?since=&until=&type=SELL,PAYBACK`` gives a window's receipts and refunds.
  ``since``/``until`` are epoch **milliseconds** (``since`` inclusive, ``until`` exclusive) and, with ``type``,
  go on the first page only: later pages send ``cursor=<paging.next_cursor>`` alone, until a page has no
  cursor (``paging: {}``). Order is undocumented and pages may overlap (the sandbox's ``dup`` fault repeats an
  item), so documents are deduplicated by ``id`` — never by ``number``, which restarts after a till reset;
* the cloud token goes in ``X-Authorization: <token>`` (official Java SDK) and/or ``Authorization: Bearer
  <token>`` (current docs). The reference recommends sending both, so that is the default; ``options.auth_header``
  picks one (``x-authorization`` | ``bearer`` | ``both``);
* rate limits go through the one HTTP policy: a 429 waits what ``Retry-After`` / ``X-RateLimit-Reset`` say;
  and when a successful answer says ``X-RateLimit-Remaining: 0``, the next request first waits out the
  ``X-RateLimit-Reset`` seconds (clamped to the policy's ``max_retry_wait``) instead of earning a 429.

Webhooks (pure functions, no HTTP): :func:`parse_receipts_webhook` reads the "Отправить чек (V2)" body (§4) into
one :class:`~adapters.base.RawRecord` per receipt; :func:`verify_hub_signature` checks a Hookshot event's
``X-Hub-Signature: sha1=<hex>`` and :func:`parse_hub_event` reads its envelope. Evotor re-sends a webhook that
got no 200 within 10 s, so receivers dedupe on the receipt id (``RawRecord.id``) or the event id.

Example::

    evotor = EvotorAdapter("evotor", config.systems["evotor"])
    for record in evotor.documents(store_id, since, until):   # RawRecord(entity="SELL" | "PAYBACK", …)
        sale = mapping.map(record.payload, system=record.system)
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from pydantic import ValidationError
from requests.auth import AuthBase

from adapters.base import RawRecord
from adapters.http import HttpClient, HttpPolicy, RateBudget, Sleep, SystemHttpConfig, loads_json
from adapters.rest import BearerAuth, CursorPaginator, HeaderTokenAuth, MultiAuth, paginate, paginate_texts
from connector.config import SystemConfig
from connector.errors import ConfigError, FatalRemoteError, InputError, MappingError
from connector.logs import get_logger

__all__ = [
    "DOCUMENT_TYPES",
    "WEBHOOK_ENTITY",
    "EvotorAdapter",
    "HubEvent",
    "epoch_ms",
    "parse_hub_event",
    "parse_receipts_webhook",
    "verify_hub_signature",
]

DOCUMENT_TYPES = ("SELL", "PAYBACK")
"""The document types read: a sale and a customer refund (``RETURN`` is a return *to a supplier*)."""

WEBHOOK_ENTITY = "receipt_webhook"
"""``RawRecord.entity`` of a receipts-webhook record: its payload is the webhook's ``data``, not a v2 document."""

_ACCEPT = "application/vnd.evotor.v2+json"
_AUTH_HEADERS = ("x-authorization", "bearer", "both")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_log = get_logger("adapters.evotor")


def epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime, exactly (no float rounding), as ``since``/``until`` want.

    Example:
        >>> epoch_ms(datetime(2024, 5, 17, 9, 41, 12, 318000, tzinfo=UTC))
        1715938872318
    """
    if moment.tzinfo is None:
        raise InputError("a naive datetime has no instant: give a timezone", value=moment.isoformat())
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _http_config(name: str, config: SystemConfig) -> SystemHttpConfig:
    """The system's HTTP settings: timeouts and budget from the config, policy overrides from ``options.http``."""
    overrides = config.options.get("http") or {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"systems.{name}.options.http: must be a mapping of HTTP policy settings")
    rate = RateBudget(**config.rate_limit.model_dump()) if config.rate_limit else None
    settings = {"connect_timeout": config.timeouts.connect, "read_timeout": config.timeouts.read,
                "rate": rate, **overrides}  # fmt: skip
    try:
        policy = HttpPolicy(**settings)
    except ValidationError as exc:
        raise ConfigError(f"systems.{name}.options.http: {exc.errors()[0]['msg']}") from None
    return SystemHttpConfig(system=name, base_url=config.base_url, policy=policy, headers={"Accept": _ACCEPT})


def _auth(name: str, config: SystemConfig) -> AuthBase:
    if config.token is None:
        raise ConfigError(f"systems.{name}.token: the Evotor cloud token is required")
    choice = str(config.options.get("auth_header", "both")).lower()
    if choice not in _AUTH_HEADERS:
        raise ConfigError(
            f"systems.{name}.options.auth_header: {choice!r} is not one of {', '.join(_AUTH_HEADERS)}"
        )
    header = HeaderTokenAuth(config.token, header="X-Authorization")
    bearer = BearerAuth(config.token)
    if choice == "both":
        return MultiAuth(header, bearer)
    return header if choice == "x-authorization" else bearer


class _RateLimitPacer(AuthBase):
    """The Evotor auth, plus a pause before a request when the last answer said the window is used up.

    Every Evotor answer carries ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (seconds to the window's
    end): waiting out a spent window costs the same time as the 429 it avoids, without the refused request.
    """

    def __init__(self, auth: AuthBase, sleep: Sleep, max_wait: float) -> None:
        self.auth = auth
        self._sleep = sleep
        self._max_wait = max_wait
        self._lock = threading.Lock()
        self._wait = 0.0

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        with self._lock:
            wait, self._wait = self._wait, 0.0
        if wait > 0:
            _log.info("evotor.rate_window_spent", wait_s=wait)
            self._sleep(wait)
        request.hooks.setdefault("response", []).append(self._observe)
        prepared: requests.PreparedRequest = self.auth(request)
        return prepared

    def _observe(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> requests.Response:
        remaining, reset = (
            response.headers.get("X-RateLimit-Remaining"),
            response.headers.get("X-RateLimit-Reset"),
        )
        if response.ok and remaining is not None and remaining.strip() == "0" and reset:
            try:
                wait = min(max(float(reset), 0.0), self._max_wait)
            except ValueError:
                return response
            with self._lock:
                self._wait = wait
        return response

    def secrets(self) -> Iterable[str]:
        """The wrapped scheme's secrets, for scrubbing error excerpts."""
        secrets: Iterable[str] = getattr(self.auth, "secrets", list)()
        return secrets


class EvotorAdapter:
    """The Evotor cloud as a :class:`~adapters.base.DocumentSource`.

    Args:
        name: the configured system name (``RawRecord.system``, logs, errors).
        config: the system's config: ``base_url`` (``https://api.evotor.ru``), ``token``, optional ``stores``,
            ``rate_limit``, ``timeouts`` and ``options`` (``auth_header``, ``http``, ``max_pages``).
        session: the HTTP session (tests pass one under ``responses``; the sandbox a plain one).
        sleep: how retries wait (tests pass a recorder).
    """

    def __init__(
        self, name: str, config: SystemConfig, *, session: requests.Session | None = None,
        sleep: Sleep | None = None,
    ) -> None:  # fmt: skip
        self.system = name
        self.config = config
        http = _http_config(name, config)
        paced = _RateLimitPacer(_auth(name, config), sleep or time.sleep, http.policy.max_retry_wait)
        self.client = HttpClient(http, session, auth=paced, sleep=sleep or time.sleep)
        self.max_pages = int(config.options.get("max_pages", 10_000))

    def stores(self) -> list[str]:
        """Ids of the account's stores (only the configured ones when ``stores:`` is set), in the API's order."""
        found = [str(store["id"]) for store in self._list("stores", {}) if isinstance(store, dict)]
        wanted = set(self.config.stores)
        return [store for store in found if not wanted or store in wanted]

    def documents(self, store: str, since: datetime, until: datetime) -> Iterator[RawRecord]:
        """Yield each SELL and PAYBACK of ``store`` closed in ``[since, until)`` once, in the order served.

        Raises:
            MappingError: a document without an ``id``.
            FatalRemoteError: paging loops or passes the page cap.
        """
        params = {"since": epoch_ms(since), "until": epoch_ms(until), "type": ",".join(DOCUMENT_TYPES)}
        pages = paginate_texts(
            self.client, f"stores/{store}/documents", self._paginator(), "items", params=params
        )
        seen: set[str] = set()
        for index, item in enumerate(pages):
            try:
                head = item.project(("id", "type"))  # the rest is decoded when something maps it
            except ValueError:
                head = {}
            document_id = _document_id(head, self.system, store, index)
            if document_id in seen:
                continue
            seen.add(document_id)
            kind = head.get("type")
            if kind not in DOCUMENT_TYPES:
                _log.warning(
                    "evotor.skip_type", system=self.system, store=store, document=document_id, type=kind
                )
                continue
            yield RawRecord(self.system, str(kind), document_id, None, store, item)

    def document(self, store: str, document_id: str) -> RawRecord:
        """One document by id (``GET /stores/{store}/documents/{id}``), e.g. after a receipts webhook."""
        response = self.client.request("GET", f"stores/{store}/documents/{document_id}")
        ok = 200 <= response.status_code < 300 and bool(response.content)
        item = self.client.parse_json(response) if ok else None
        if not isinstance(item, dict):
            raise FatalRemoteError(
                "the document is not a JSON object", system=self.system, document=document_id
            )
        # The body as sent, as a page's item is kept: the same document gets the same version either way.
        return RawRecord(self.system, str(item.get("type")), _document_id(item, self.system, store, 0), None,
                         store, item, response.content.decode("utf-8"))  # fmt: skip

    def _list(self, path: str, params: Mapping[str, Any]) -> Iterator[Any]:
        return paginate(self.client, path, self._paginator(), "items", params=params)

    def _paginator(self) -> CursorPaginator:
        # Evotor: "since/until/type are required only in the first request of a series"; then the cursor alone.
        return CursorPaginator("paging.next_cursor", first_page_only=True, max_pages=self.max_pages)


def _document_id(item: Any, system: str, store: str, index: int) -> str:
    document_id = item.get("id") if isinstance(item, dict) else None
    if not isinstance(document_id, str) or not document_id:
        raise MappingError(
            "an Evotor document has no id", system=system, store=store, field=f"items[{index}].id"
        )
    return document_id


# -- webhooks ----------------------------------------------------------------------------------------------


def _decode(body: bytes, what: str) -> Any:
    try:
        return loads_json(body)
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"the {what} body is not JSON") from None


def _require(container: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = container.get(key)
    if not isinstance(value, kind) or value == "":
        raise MappingError(f"the webhook has no valid {key!r}", system="evotor", field=f"{where}{key}")
    return value


def parse_receipts_webhook(body: bytes, *, system: str = "evotor") -> list[RawRecord]:
    """Read an "Отправить чек (V2)" webhook body (one event, or a JSON array of them) into records.

    Each record has ``entity`` :data:`WEBHOOK_ENTITY`, ``id`` = the receipt id (``data.id``), ``store`` =
    ``data.storeId`` and ``payload`` = ``data`` with the event's ``id`` and ``timestamp`` kept as ``event_id``
    and ``event_timestamp``. The webhook form is not the v2 document the ``evotor/v2`` mapping reads: fetch the
    document with :meth:`EvotorAdapter.document`. A receipt repeated in one body is returned once.

    Raises:
        InputError: the body is not JSON.
        MappingError: a required field is missing or of the wrong type; ``field`` names it (``[0].data.id``).

    Example:
        >>> parse_receipts_webhook(request_body)[0].id  # doctest: +SKIP
        '5d1c2f0a-8b4e-4c1a-9f3e-2a7b6c5d4e01'
    """
    decoded = _decode(body, "receipts webhook")
    events = decoded if isinstance(decoded, list) else [decoded]
    records: dict[str, RawRecord] = {}
    for index, event in enumerate(events):
        prefix = f"[{index}]." if isinstance(decoded, list) else ""
        record = _webhook_record(event, prefix, system)
        records.setdefault(record.id, record)
    return list(records.values())


def _webhook_record(event: Any, prefix: str, system: str) -> RawRecord:
    if not isinstance(event, dict):
        raise MappingError(
            "a webhook event is not a JSON object", system=system, field=prefix.rstrip(".") or "$"
        )
    data = _require(event, "data", dict, prefix)
    where = f"{prefix}data."
    receipt_id = _require(data, "id", str, where)
    store = _require(data, "storeId", str, where)
    _require(data, "type", str, where)
    _require(data, "items", list, where)
    payload = {**data, "event_id": event.get("id"), "event_timestamp": event.get("timestamp")}
    return RawRecord(system, WEBHOOK_ENTITY, receipt_id, None, store, payload)


def verify_hub_signature(body: bytes, header: str | None, secret: str) -> bool:
    """Check a Hookshot ``X-Hub-Signature: sha1=<hex>`` against HMAC-SHA1 of the raw body, in constant time.

    A missing or malformed header, another algorithm or an empty secret is ``False``, never an exception.

    Example:
        >>> signature = "sha1=" + hmac.new(b"s3cret", b"{}", hashlib.sha1).hexdigest()
        >>> verify_hub_signature(b"{}", signature, "s3cret")
        True
    """
    if not header or not secret:
        return False
    algorithm, _, given = header.strip().partition("=")
    if algorithm.lower() != "sha1" or not given:
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha1).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


@dataclass(frozen=True)
class HubEvent:
    """A Hookshot event envelope (``StoreEvent``, ``DocumentEvent`` …).

    Attributes:
        id: the event id (dedupe on it: deliveries repeat).
        timestamp: when the event happened (aware, UTC).
        type: the event type, e.g. ``DocumentEvent``.
        action: ``created`` | ``updated`` | ``removed``.
        payload: the event's payload as sent.
        store_id: ``payload.store_id`` when given.
        user_id: ``payload.user_id`` (the Evotor account).
    """

    id: str
    timestamp: datetime
    type: str
    action: str
    payload: dict[str, Any]
    store_id: str | None
    user_id: str | None


def parse_hub_event(body: bytes) -> HubEvent:
    """Read a Hookshot event body (verify its signature first with :func:`verify_hub_signature`).

    Raises:
        InputError: the body is not JSON.
        MappingError: the envelope lacks ``id``, ``timestamp``, ``type``, ``action`` or ``payload``.
    """
    event = _decode(body, "Hookshot event")
    if not isinstance(event, dict):
        raise MappingError("the Hookshot event is not a JSON object", system="evotor", field="$")
    timestamp = _require(event, "timestamp", int, "")
    payload = _require(event, "payload", dict, "")
    return HubEvent(
        id=str(_require(event, "id", (str, int), "")),
        timestamp=_EPOCH + timedelta(milliseconds=timestamp),
        type=_require(event, "type", str, ""),
        action=_require(event, "action", str, ""),
        payload=payload,
        store_id=_optional_text(payload.get("store_id")),
        user_id=_optional_text(payload.get("user_id")),
    )


def _optional_text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
