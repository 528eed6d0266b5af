"""Evotor webhook receivers: journal the payload, answer 200 at once, process it afterwards.

``POST /webhooks/evotor/receipts`` takes the "Отправить чек (V2)" webhook (one event or an array). It must carry
``Authorization: Bearer <token>`` where the token is ``systems.<evotor>.options.webhook_token`` in
``connector.yaml`` (write it as ``${EVOTOR_WEBHOOK_TOKEN}`` to keep it in the environment), else the
``EVOTOR_WEBHOOK_TOKEN`` environment variable. ``POST /webhooks/evotor/events`` takes Hookshot events, signed with
``X-Hub-Signature: sha1=<HMAC-SHA1 of the body>`` under ``options.webhook_secret`` (else
``EVOTOR_WEBHOOK_SECRET``). Without a configured token or secret the endpoint answers 503 (Evotor retries).

What happens to a delivery:

* it is journaled under the system ``<evotor>:webhook`` (kind ``receipt_webhook`` keyed by the receipt id, or
  ``hub_event`` keyed by the event id) and answered ``200 {"accepted": n, "duplicates": m}`` well within Evotor's
  10 s;
* a redelivery of a receipt or event already journaled is recognised by its id and not processed again;
* a background worker (:class:`WebhookIntake`) picks up what was journaled since its last pass and syncs those
  receipts (the v2 document is fetched by id, then every route runs for it) — or the next scheduled ``sync``
  reads them anyway;
* a malformed body gets ``400 {"error": <reason>}``; the body is journaled whole (kind ``malformed``, keyed by
  its SHA-256) and parked as a permanent failed item on route ``webhook:<evotor>`` naming it, so nothing is lost.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from adapters.base import RawRecord
from adapters.evotor import parse_hub_event, parse_receipts_webhook, verify_hub_signature
from adapters.http import loads_json
from connector.config import ConnectorConfig
from connector.errors import ConnectorError, InputError
from connector.logs import get_logger
from connector.model import DocRef
from connector.store import Store
from connector.store.cursors import Cursors
from connector.store.failures import FailedItems, Failure
from connector.store.journal import Journal, raw_version
from connector.store.tables import JournalDocument
from connector.sync.failures import excerpt

__all__ = ["RECEIPT_KIND", "WebhookIntake", "router"]

RECEIPT_KIND = "receipt_webhook"
_EVENT_KIND = "hub_event"
_MALFORMED_KIND = "malformed"
_EVENT_FIELDS = ("event_id", "event_timestamp")  # differ between deliveries of the same receipt
_log = get_logger("connector.web.webhooks")

router = APIRouter(prefix="/webhooks/evotor", tags=["webhooks"])


class WebhookIntake:
    """Journals webhook deliveries and syncs them in a background thread.

    Args:
        config: the connector configuration (its first ``adapter: evotor`` system receives the webhooks).
        store: the open state database.
        poll_seconds: how often the worker looks for work when no delivery woke it.
    """

    def __init__(self, config: ConnectorConfig, store: Store, *, poll_seconds: float = 5.0) -> None:
        self.config, self.store, self.poll_seconds = config, store, poll_seconds
        self.system = next((n for n, s in config.systems.items() if s.adapter == "evotor"), "evotor")
        self.journal = Journal(store.sessions)
        self.failures = FailedItems(store.sessions)
        self.cursors = Cursors(store.sessions)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def intake_system(self) -> str:
        """Where deliveries are journaled: ``<evotor>:webhook``."""
        return f"{self.system}:webhook"

    def secret(self, option: str, variable: str) -> str | None:
        """A webhook credential from ``options.<option>``, else the environment variable."""
        options = self.config.systems[self.system].options if self.system in self.config.systems else {}
        value = options.get(option) or os.environ.get(variable)
        return str(value) if value else None

    # -- intake (request thread) ------------------------------------------------------------------------

    def accept_receipts(self, records: Iterable[RawRecord]) -> tuple[int, int]:
        """Journal receipt deliveries; returns (new, duplicates)."""
        new = duplicates = 0
        for record in records:
            payload = {k: v for k, v in record.payload.items() if k not in _EVENT_FIELDS}
            outcome = self.journal.upsert(self.intake_system, RECEIPT_KIND, record.id, version=raw_version(payload),
                                          raw=record.payload, document=None, store=record.store)  # fmt: skip
            new, duplicates = (new + 1, duplicates) if outcome == "new" else (new, duplicates + 1)
        self._wake.set()
        return new, duplicates

    def accept_event(self, event_id: str, body: dict[str, Any], store: str | None) -> bool:
        """Journal a Hookshot event; False when it was delivered before."""
        outcome = self.journal.upsert(self.intake_system, _EVENT_KIND, event_id, version=raw_version(body),
                                      raw=body, document=None, store=store)  # fmt: skip
        self._wake.set()
        return outcome == "new"

    def park_malformed(self, body: bytes, error: ConnectorError, route: str) -> None:
        """Keep a malformed body whole in the journal and park it as a permanent failed item."""
        text = body.decode("utf-8", errors="replace")
        digest = hashlib.sha256(body).hexdigest()
        self.journal.upsert(
            self.intake_system, _MALFORMED_KIND, digest, version=digest, raw=text, document=None
        )
        ref = DocRef(system=self.intake_system, kind=_MALFORMED_KIND, id=digest)
        failure = Failure(system=self.system, route=route, error_kind="permanent", document=ref,
                          error=f"{type(error).__name__}: {error}", payload_excerpt=excerpt(text))  # fmt: skip
        self.failures.park(failure, None)

    # -- processing (worker thread) ---------------------------------------------------------------------

    def pending(self) -> tuple[list[tuple[str, str]], int]:
        """(store, receipt id) journaled since the last pass, and the journal id to move the cursor to."""
        after = int(self.cursors.get_text(self.intake_system, "processed") or "0")
        with self.store.session() as session:
            rows = session.execute(
                select(JournalDocument.id, JournalDocument.kind, JournalDocument.source_id, JournalDocument.store,
                       JournalDocument.raw)
                .where(JournalDocument.system == self.intake_system, JournalDocument.id > after)
                .order_by(JournalDocument.id)
            ).all()  # fmt: skip
        wanted = [_receipt_of(kind, source_id, store, raw) for _, kind, source_id, store, raw in rows]
        return [w for w in wanted if w is not None], max((row[0] for row in rows), default=after)

    def process_pending(self) -> int:
        """Sync what was journaled since the last pass; returns how many receipts were handed to the sync.

        The cursor moves only after the sync ran, so a crash or a busy database means they are taken again.
        """
        from connector.sync import SyncBusyError, SyncScope, run_sync

        wanted, last = self.pending()
        if wanted:
            try:
                run_sync(self.config, store=self.store, scope=SyncScope(documents=tuple(dict.fromkeys(wanted))),
                         wait=30.0)  # fmt: skip
            except SyncBusyError:
                return 0  # a scheduled sync holds the database: next pass
        self.cursors.set_text(self.intake_system, "processed", str(last))
        return len(wanted)

    def start(self) -> None:
        """Run the worker thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._loop, name="webhook-intake", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the current pass finish and stop the worker."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.process_pending()
            except Exception as exc:  # the worker must outlive one bad pass; the journal keeps the work
                _log.error("webhook.process_failed", error=f"{type(exc).__name__}: {exc}")


def _receipt_of(kind: str, source_id: str, store: str | None, raw: Any) -> tuple[str, str] | None:
    """The (store, receipt id) a journaled delivery asks to sync, if any."""
    if kind == RECEIPT_KIND and store:
        return store, source_id
    if kind == _EVENT_KIND and isinstance(raw, dict) and raw.get("type") == "DocumentEvent":
        payload = raw.get("payload") or {}
        document = payload.get("document_id") or payload.get("id")
        if payload.get("store_id") and document:
            return str(payload["store_id"]), str(document)
    return None


def _intake(request: Request) -> WebhookIntake:
    intake: WebhookIntake = request.app.state.webhooks
    return intake


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


@router.post("/receipts", summary="Evotor receipts webhook (Отправить чек V2), Bearer token")
async def receipts(request: Request) -> JSONResponse:
    """Journal the receipts of a delivery and answer at once; a redelivery is recognised by the receipt id."""
    intake = _intake(request)
    token = intake.secret("webhook_token", "EVOTOR_WEBHOOK_TOKEN")
    if token is None:
        return _refuse(503, "the receipts webhook is not configured: set options.webhook_token")
    given = request.headers.get("authorization", "")
    if not given.startswith("Bearer ") or not _same_secret(given.removeprefix("Bearer ").strip(), token):
        return _refuse(401, "a valid Authorization: Bearer <token> is required")
    body = await request.body()
    try:
        records = parse_receipts_webhook(body, system=intake.system)
    except InputError as exc:  # MappingError included: a required field is missing
        intake.park_malformed(body, exc, f"webhook:{intake.system}")
        return _refuse(400, str(exc))
    new, duplicates = intake.accept_receipts(records)
    return JSONResponse({"accepted": new, "duplicates": duplicates})


@router.post("/events", summary="Evotor Hookshot events, X-Hub-Signature HMAC")
async def events(request: Request) -> JSONResponse:
    """Journal a signed Hookshot event and answer at once; a redelivery is recognised by the event id."""
    intake = _intake(request)
    secret = intake.secret("webhook_secret", "EVOTOR_WEBHOOK_SECRET")
    if secret is None:
        return _refuse(503, "the events webhook is not configured: set options.webhook_secret")
    body = await request.body()
    if not verify_hub_signature(body, request.headers.get("x-hub-signature"), secret):
        return _refuse(401, "X-Hub-Signature does not match the body")
    try:
        event = parse_hub_event(body)
    except InputError as exc:
        intake.park_malformed(body, exc, f"webhook:{intake.system}")
        return _refuse(400, str(exc))
    fresh = intake.accept_event(event.id, loads_json(body), event.store_id)
    return JSONResponse({"accepted": int(fresh), "duplicates": int(not fresh)})


def _same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
