"""The Evotor receipt webhook sender against a real receiving server that answers as a script says."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.sandbox._render_evotor import BONUS_APP_ID, SandboxIndex
from connector.sandbox.webhooks import receipt_webhook_payload, start_webhook_sender
from connector.sandbox.world import World
from tests.connector.sandbox._servers import CUSTOMERS, make_world, serve

RESEND_AFTER = 0.3


class _Receiver:
    """Answers each POST with the next scripted reply: a status, or ``"hang"`` (no answer in time)."""

    def __init__(self, script: list[int | str]) -> None:
        self.script = script
        self.received: list[tuple[float, str, dict[str, Any]]] = []

    async def receipts(self, request: Request) -> Response:
        body = json.loads(await request.body(), parse_float=Decimal)
        self.received.append((time.monotonic(), request.headers.get("authorization", ""), body))
        reply = self.script.pop(0) if self.script else 200
        if reply == "hang":
            await asyncio.sleep(RESEND_AFTER * 3)
            reply = 200  # too late: the sender has given up on this attempt
        return Response(status_code=int(reply))


@pytest.fixture
def world() -> World:
    return make_world(2)


def _receiver(script: list[int | str]) -> tuple[_Receiver, Starlette]:
    receiver = _Receiver(script)
    return receiver, Starlette(routes=[Route("/api/v2/receipts", receiver.receipts, methods=["POST"])])


@pytest.fixture
def flaky() -> Iterator[tuple[_Receiver, str]]:
    receiver, app = _receiver([500, "hang", 200, 200])
    with serve(app) as url:
        yield receiver, f"{url}/api/v2/receipts"


def test_resends_after_an_error_and_a_timeout_then_stops_at_200(
    world: World, flaky: tuple[_Receiver, str]
) -> None:
    receiver, url = flaky
    sender = start_webhook_sender(world, url, "user-token", resend_after=RESEND_AFTER, max_attempts=5)

    assert sender.join(timeout=10)
    first_id = world.receipts[0].id
    attempts = [body["data"]["id"] for _, _, body in receiver.received]
    assert attempts == [first_id, first_id, first_id, world.receipts[1].id]
    assert [d.status for d in sender.deliveries] == [500, None, 200, 200]
    assert sender.delivered == [r.id for r in world.receipts]
    assert sender.abandoned == []
    assert {auth for _, auth, _ in receiver.received} == {"Bearer user-token"}
    assert len({body["id"] for _, _, body in receiver.received[:3]}) == 1  # the same event each time
    gaps = [
        later[0] - earlier[0]
        for earlier, later in zip(receiver.received, receiver.received[1:3], strict=False)
    ]
    assert all(gap >= RESEND_AFTER * 0.5 for gap in gaps), gaps  # waited, not an immediate retry


def test_gives_up_after_max_attempts(world: World) -> None:
    receiver, app = _receiver([503] * 10)
    with serve(app) as url:
        sender = start_webhook_sender(
            world,
            f"{url}/api/v2/receipts",
            "t",
            resend_after=0.05,
            max_attempts=3,
            receipts=world.receipts[:1],
        )
        assert sender.join(timeout=10)

    assert len(receiver.received) == 3
    assert sender.abandoned == [world.receipts[0].id]
    assert sender.delivered == []


def test_payload_has_evotors_receipt_webhook_shape(world: World) -> None:
    receipt = world.receipts[0]
    payload = receipt_webhook_payload(SandboxIndex.of(world), receipt)
    data = payload["data"]

    assert payload["version"] == 2
    assert isinstance(payload["timestamp"], int)
    assert data["id"] == receipt.id
    assert data["type"] == "SELL"
    assert data["storeId"] == receipt.store_id
    assert data["dateTime"].endswith("+0000")
    assert data["totalAmount"] == receipt.total
    assert data["totalDiscount"] == Decimal("100.00")
    assert data["paymentSource"] == "PAY_CARD"
    assert [item["sumPrice"] for item in data["items"]] == [Decimal("423.08"), Decimal("126.92")]
    assert data["items"][0]["name"] == "Латте 0.3"
    assert data["extras"]["card"] == CUSTOMERS[0].card
    assert BONUS_APP_ID not in data["extras"]  # the legacy webhook carries the app's extras flat
