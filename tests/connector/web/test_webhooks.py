"""Webhook intake: journaled and answered at once, redeliveries recognised, malformed bodies parked, synced after."""

from __future__ import annotations

import hashlib
import hmac
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.sandbox._render_evotor import SandboxIndex
from connector.sandbox.webhooks import receipt_webhook_payload
from connector.store import open_store
from connector.store.failures import FailedItems
from connector.web.app import create_app
from tests.connector.sync.conftest import SyncWorld, start_world
from tests.e2e.sync_support import WEBHOOK_SECRET, WEBHOOK_TOKEN, crm_comments, onec_comments

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[SyncWorld, TestClient]]:
    for sw in start_world(tmp_path):
        app = create_app(sw.config, console=False, process_webhooks=False)
        with TestClient(app) as client:
            yield sw, client
        app.state.store.close()


def _payload(sw: SyncWorld, kind: str = "sale") -> tuple[str, dict[str, Any]]:
    # a receipt that earns or spends points, so it has CRM postings to write
    receipt = next(r for r in sw.world.receipts if r.kind == kind and any(r.id in key for key in sw.crm_keys))
    return receipt.id, receipt_webhook_payload(SandboxIndex.of(sw.world), receipt)


def _body(payload: Any) -> bytes:
    return json.dumps(payload, default=str).encode()


def test_a_receipt_is_accepted_then_synced_by_the_worker(served: tuple[SyncWorld, TestClient]) -> None:
    sw, client = served
    receipt_id, payload = _payload(sw)

    answer = client.post("/webhooks/evotor/receipts", content=_body(payload), headers=AUTH)

    assert answer.status_code == 200
    assert answer.json() == {"accepted": 1, "duplicates": 0}
    assert client.app.state.webhooks.process_pending() == 1  # type: ignore[attr-defined]
    assert f"onec:evotor:{receipt_id}:sale" in onec_comments(sw.base_url, "Document_ЧекККМ")
    expected = {key for key in sw.crm_keys if receipt_id in key}
    assert expected <= set(crm_comments(sw.base_url))
    assert client.app.state.webhooks.process_pending() == 0  # type: ignore[attr-defined]


def test_a_redelivery_is_recognised_and_not_processed_twice(served: tuple[SyncWorld, TestClient]) -> None:
    sw, client = served
    receipt_id, payload = _payload(sw)
    client.post("/webhooks/evotor/receipts", content=_body(payload), headers=AUTH)
    intake = client.app.state.webhooks  # type: ignore[attr-defined]
    assert intake.process_pending() == 1

    resent = {**payload, "id": "evt-resent", "timestamp": payload["timestamp"] + 10_000}
    answer = client.post("/webhooks/evotor/receipts", content=_body(resent), headers=AUTH)

    assert answer.json() == {"accepted": 0, "duplicates": 1}
    assert intake.process_pending() == 0
    assert onec_comments(sw.base_url, "Document_ЧекККМ").count(f"onec:evotor:{receipt_id}:sale") == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": WEBHOOK_TOKEN}, 401)],
)
def test_the_bearer_token_is_checked(
    served: tuple[SyncWorld, TestClient], headers: dict[str, str], status: int
) -> None:
    sw, client = served
    _, payload = _payload(sw)
    answer = client.post("/webhooks/evotor/receipts", content=_body(payload), headers=headers)
    assert answer.status_code == status
    assert "Bearer" in answer.json()["error"]


def test_a_malformed_body_gets_400_with_the_reason_and_is_parked_whole(
    served: tuple[SyncWorld, TestClient],
) -> None:
    sw, client = served
    _, payload = _payload(sw)
    del payload["data"]["storeId"]
    body = _body(payload)

    answer = client.post("/webhooks/evotor/receipts", content=body, headers=AUTH)

    assert answer.status_code == 400
    assert "storeId" in answer.json()["error"]
    with open_store(sw.config.state) as store:
        (item,) = FailedItems(store.sessions).list()
        assert (item.route, item.error_kind) == ("webhook:evotor", "permanent")
        assert item.document is not None
        assert item.document.id == hashlib.sha256(body).hexdigest()
        from connector.store.journal import Journal

        kept = Journal(store.sessions).get(item.document)
        assert kept is not None
        assert kept.raw == body.decode()


def test_not_json_is_400_too(served: tuple[SyncWorld, TestClient]) -> None:
    _, client = served
    answer = client.post("/webhooks/evotor/receipts", content=b"{not json", headers=AUTH)
    assert answer.status_code == 400
    assert "not JSON" in answer.json()["error"]


def _signed(body: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {"X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}


def test_a_signed_document_event_is_accepted_once_and_synced(served: tuple[SyncWorld, TestClient]) -> None:
    sw, client = served
    receipt = next(r for r in sw.world.receipts if r.kind == "sale")
    event = {"id": "e-1", "timestamp": 1_763_000_000_000, "type": "DocumentEvent", "action": "created",
             "payload": {"id": receipt.id, "store_id": receipt.store_id, "user_id": "u-1"}}  # fmt: skip
    body = _body(event)

    first = client.post("/webhooks/evotor/events", content=body, headers=_signed(body))
    again = client.post("/webhooks/evotor/events", content=body, headers=_signed(body))

    assert (first.status_code, first.json()) == (200, {"accepted": 1, "duplicates": 0})
    assert again.json() == {"accepted": 0, "duplicates": 1}
    assert client.app.state.webhooks.process_pending() == 1  # type: ignore[attr-defined]
    assert f"onec:evotor:{receipt.id}:sale" in onec_comments(sw.base_url, "Document_ЧекККМ")


def test_a_wrong_signature_is_refused(served: tuple[SyncWorld, TestClient]) -> None:
    _, client = served
    body = b'{"id": "e-2"}'
    answer = client.post("/webhooks/evotor/events", content=body, headers=_signed(body, "other secret"))
    assert answer.status_code == 401


def test_the_service_app_serves_the_console_beside_the_webhooks(tmp_path: Path) -> None:
    from connector.config import ConnectorConfig

    config = ConnectorConfig(state=f"sqlite:///{tmp_path / 'state.db'}")
    app = create_app(config, process_webhooks=False)
    try:
        with TestClient(app) as client:
            assert client.get("/api/v1/health").status_code == 200  # the console's API, mounted beside
            assert client.get("/console/", follow_redirects=False).status_code in (200, 303)
            # no Evotor system, no token: refused with a reason Evotor retries on, nothing journaled
            answer = client.post("/webhooks/evotor/receipts", content=b"{}", headers=AUTH)
            assert answer.status_code == 503
            assert "webhook_token" in answer.json()["error"]
    finally:
        app.state.store.close()
