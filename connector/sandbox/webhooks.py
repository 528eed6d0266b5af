"""Evotor's receipt webhook, emulated: POST each receipt to a configured URL and re-send until it gets a 200.

The payload is Evotor's "Отправить чек (V2)" (``reference/evotor.md`` §4)::

    {"id": <event id>, "timestamp": <ms>, "userId": …, "type": "ReceiptCreated", "version": 2,
     "data": {"id", "deviceId", "storeId", "dateTime", "type": "SELL"|"PAYBACK", "shiftId", "employeeId",
              "paymentSource", "infoCheck", "egais", "totalTax", "totalDiscount", "totalAmount", "extras",
              "items": [{"id", "name", "itemType", "measureName", "quantity", "price", "costPrice", "sumPrice",
                         "tax", "taxPercent", "discount"}]}}

sent with ``Authorization: Bearer <token>``. As Evotor does, the sender waits ``resend_after`` seconds (10 by
default) for a ``200 OK`` and sends the *same* event again when none came (timeout, error status or connection
failure), up to ``max_attempts`` times; receivers must be idempotent on the event or receipt id. The loyalty
app's extras travel flat (``{"card", "phone", "bonus_redeemed"}``), as the legacy webhook shows them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests

from connector.logs import get_logger
from connector.sandbox._render_evotor import SandboxIndex, close_date, render_document
from connector.sandbox._wire import dumps
from connector.sandbox.evotor import epoch_ms
from connector.sandbox.world import Receipt, World

__all__ = ["Delivery", "WebhookSender", "receipt_webhook_payload", "start_webhook_sender"]

_log = get_logger(__name__)
_PAYMENT_SOURCES = {"cash": "PAY_CASH", "card": "PAY_CARD"}


def _unwrap(items: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [item.get(key, item) for item in items]


def _item(position: dict[str, Any]) -> dict[str, Any]:
    discount = position.get("doc_distributed_discount") or position.get("position_discount") or {}
    return {
        "id": position.get("product_id", position["uuid"]),
        "name": position["product_name"],
        "itemType": position["product_type"],
        "measureName": position["measure_name"],
        "quantity": position["quantity"],
        "price": position["price"],
        "costPrice": position["cost_price"],
        "sumPrice": position["result_sum"],
        "tax": Decimal(0),
        "taxPercent": Decimal(0),
        "discount": discount.get("discount_sum", Decimal(0)),
    }


def _payment_source(receipt: Receipt) -> str:
    largest = max(receipt.payments, key=lambda payment: payment[1], default=("other", Decimal(0)))
    return _PAYMENT_SOURCES.get(largest[0], "OTHER")


def receipt_webhook_payload(index: SandboxIndex, receipt: Receipt) -> dict[str, Any]:
    """The webhook body Evotor would POST for ``receipt`` (the same event id on every re-send)."""
    document = render_document(index, receipt)
    body = document["body"]
    positions = _unwrap(body["positions"], "position")
    extras: dict[str, Any] = next(iter(document["extras"].values()), {})
    return {
        "id": f"evt-{receipt.id}",
        "timestamp": epoch_ms(receipt.occurred_at) + 1000,
        "userId": document["user_id"],
        "type": "ReceiptCreated",
        "version": 2,
        "data": {
            "id": receipt.id,
            "deviceId": document["device_id"],
            "storeId": document["store_id"],
            "dateTime": close_date(receipt.occurred_at),
            "type": document["type"],
            "shiftId": document["session_id"],
            "employeeId": document["close_user_id"],
            "paymentSource": _payment_source(receipt),
            "infoCheck": False,
            "egais": False,
            "totalTax": Decimal(0),
            "totalDiscount": body["sum"] - body["result_sum"],
            "totalAmount": body["result_sum"],
            "extras": extras,
            "items": [_item(position) for position in positions],
        },
    }


@dataclass(frozen=True)
class Delivery:
    """One attempt: which receipt, which attempt, and the status (``None`` when no response came)."""

    receipt_id: str
    attempt: int
    status: int | None
    error: str | None = None


class WebhookSender:
    """Posts receipts one by one in a background thread, re-sending each until a 200 or ``max_attempts``.

    Args:
        world: the world whose receipts are sent (or pass ``receipts`` to send a subset).
        url: the receiver, e.g. ``http://127.0.0.1:8000/api/v2/receipts``.
        token: sent as ``Authorization: Bearer <token>``.
        resend_after: seconds to wait for a 200 before sending again (Evotor: 10).
        max_attempts: attempts per receipt before giving it up.
        receipts: which receipts, in order; all of the world's, by close time, when omitted.
        session: an HTTP session to use (a new one by default).
    """

    def __init__(
        self,
        world: World,
        url: str,
        token: str,
        *,
        resend_after: float = 10.0,
        max_attempts: int = 5,
        receipts: Iterable[Receipt] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.index = SandboxIndex.of(world)
        self.url = url
        self.resend_after = resend_after
        self.max_attempts = max_attempts
        chosen = (
            receipts if receipts is not None else sorted(world.receipts, key=lambda r: (r.occurred_at, r.id))
        )
        self.receipts = list(chosen)
        self.deliveries: list[Delivery] = []
        self.delivered: list[str] = []
        self.abandoned: list[str] = []
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json; charset=utf-8",
        }
        self._session = session or requests.Session()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="evotor-webhooks", daemon=True)

    def start(self) -> WebhookSender:
        """Start sending in the background; returns ``self``."""
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Ask the sender to stop after the current attempt, and wait for it."""
        self._stop.set()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every receipt is delivered or abandoned; ``True`` when the sender has finished."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        for receipt in self.receipts:
            if self._stop.is_set():
                return
            if self._deliver(receipt):
                self.delivered.append(receipt.id)
            else:
                self.abandoned.append(receipt.id)
                _log.warning("webhook abandoned", receipt=receipt.id, attempts=self.max_attempts)

    def _deliver(self, receipt: Receipt) -> bool:
        body = dumps(receipt_webhook_payload(self.index, receipt))
        for attempt in range(1, self.max_attempts + 1):
            started = time.monotonic()
            status, error = self._post(body)
            self.deliveries.append(Delivery(receipt.id, attempt, status, error))
            if status == 200:
                return True
            # Evotor re-sends only once its wait for a 200 is over, however fast the failure came.
            if self._stop.wait(max(0.0, self.resend_after - (time.monotonic() - started))):
                return False
        return False

    def _post(self, body: bytes) -> tuple[int | None, str | None]:
        try:
            response = self._session.post(
                self.url, data=body, headers=self._headers, timeout=self.resend_after
            )
        except requests.RequestException as exc:
            return None, type(exc).__name__
        response.close()
        return response.status_code, None


def start_webhook_sender(
    world: World,
    url: str,
    token: str,
    *,
    resend_after: float = 10.0,
    max_attempts: int = 5,
    receipts: Iterable[Receipt] | None = None,
) -> WebhookSender:
    """Start a :class:`WebhookSender` in the background and return it (``join()`` waits for the end).

    Example:
        >>> sender = start_webhook_sender(world, "http://127.0.0.1:8000/api/v2/receipts", "user-token")  # doctest: +SKIP
        >>> sender.join(60); sender.delivered  # doctest: +SKIP
    """
    sender = WebhookSender(
        world, url, token, resend_after=resend_after, max_attempts=max_attempts, receipts=receipts
    )
    return sender.start()
