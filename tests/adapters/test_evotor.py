"""Evotor adapter against `responses`: first-page filters, cursor to the end, both auth headers, dedupe,
429 waits, webhook parsing and Hookshot signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from adapters.evotor import (
    WEBHOOK_ENTITY,
    EvotorAdapter,
    epoch_ms,
    parse_hub_event,
    parse_receipts_webhook,
    verify_hub_signature,
)
from connector.config import SystemConfig
from connector.errors import ConfigError, FatalRemoteError, InputError, MappingError, RemoteConfigError

BASE = "https://api.evotor.ru"
STORE = "20230110-AAAA-40BB-80CC-DDDDEEEEFFFF"
DOCS = f"{BASE}/stores/{STORE}/documents"
SINCE = datetime(2024, 5, 13, tzinfo=timezone(timedelta(hours=3)))
UNTIL = datetime(2024, 5, 20, tzinfo=timezone(timedelta(hours=3)))


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def adapter(**options: Any) -> tuple[EvotorAdapter, list[float]]:
    slept: list[float] = []
    config = SystemConfig(adapter="evotor", base_url=BASE, token="tok-123456", options=options)
    return EvotorAdapter("evotor", config, sleep=slept.append), slept


def doc(n: int, kind: str = "SELL") -> dict[str, Any]:
    return {"id": f"doc-{n}", "type": kind, "number": n, "body": {"result_sum": 10.5}}


def page(items: list[dict[str, Any]], cursor: str | None = None) -> dict[str, Any]:
    return {"items": items, "paging": {"next_cursor": cursor} if cursor else {}}


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(str(call.request.url)).query)


def test_epoch_ms_is_exact_and_refuses_naive_datetimes() -> None:
    assert epoch_ms(datetime(2024, 5, 17, 9, 41, 12, 318000, tzinfo=UTC)) == 1715938872318
    assert epoch_ms(SINCE) == 1715547600000
    with pytest.raises(InputError):
        epoch_ms(datetime(2024, 5, 17))


def test_documents_send_filters_on_the_first_page_only_then_the_cursor_alone(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(DOCS, json=page([doc(1), doc(2, "PAYBACK")], "c-2"))
    mocked.get(DOCS, json=page([doc(3)], "c-3"))
    mocked.get(DOCS, json=page([doc(4)]))
    evotor, _ = adapter()

    records = list(evotor.documents(STORE, SINCE, UNTIL))

    assert [(r.entity, r.id, r.store, r.version) for r in records] == [
        ("SELL", "doc-1", STORE, None),
        ("PAYBACK", "doc-2", STORE, None),
        ("SELL", "doc-3", STORE, None),
        ("SELL", "doc-4", STORE, None),
    ]
    assert records[0].payload["body"]["result_sum"] == Decimal("10.5")
    first, second, third = (query(call) for call in mocked.calls)
    assert first == {"since": ["1715547600000"], "until": ["1716152400000"], "type": ["SELL,PAYBACK"]}
    assert second == {"cursor": ["c-2"]}
    assert third == {"cursor": ["c-3"]}
    assert mocked.calls[0].request.headers["Accept"] == "application/vnd.evotor.v2+json"


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, {"X-Authorization": "tok-123456", "Authorization": "Bearer tok-123456"}),
        ("x-authorization", {"X-Authorization": "tok-123456", "Authorization": None}),
        ("bearer", {"X-Authorization": None, "Authorization": "Bearer tok-123456"}),
    ],
)
def test_auth_header_is_configurable_and_sends_both_by_default(
    mocked: responses.RequestsMock, choice: str | None, expected: dict[str, str | None]
) -> None:
    mocked.get(DOCS, json=page([doc(1)]))
    evotor, _ = adapter(**({"auth_header": choice} if choice else {}))
    list(evotor.documents(STORE, SINCE, UNTIL))
    headers = mocked.calls[0].request.headers
    assert {name: headers.get(name) for name in expected} == expected


def test_unknown_auth_header_or_missing_token_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="auth_header"):
        adapter(auth_header="cookie")
    with pytest.raises(ConfigError, match="token"):
        EvotorAdapter("evotor", SystemConfig(adapter="evotor", base_url=BASE))


def test_an_item_repeated_on_the_next_page_is_yielded_once(mocked: responses.RequestsMock) -> None:
    mocked.get(DOCS, json=page([doc(1), doc(2)], "c-2"))
    mocked.get(DOCS, json=page([doc(2), doc(3)]))  # the `dup` fault: the previous page's last item again
    evotor, _ = adapter()
    assert [r.id for r in evotor.documents(STORE, SINCE, UNTIL)] == ["doc-1", "doc-2", "doc-3"]


def test_other_document_types_served_despite_the_filter_are_skipped(mocked: responses.RequestsMock) -> None:
    mocked.get(DOCS, json=page([doc(1, "OPEN_SESSION"), doc(2, "RETURN"), doc(3, "PAYBACK")]))
    evotor, _ = adapter()
    assert [(r.entity, r.id) for r in evotor.documents(STORE, SINCE, UNTIL)] == [("PAYBACK", "doc-3")]


def test_a_document_without_id_names_the_field(mocked: responses.RequestsMock) -> None:
    mocked.get(DOCS, json=page([doc(1), {"type": "SELL"}]))
    evotor, _ = adapter()
    with pytest.raises(MappingError) as caught:
        list(evotor.documents(STORE, SINCE, UNTIL))
    assert caught.value.context["field"] == "items[1].id"


def test_a_cursor_that_comes_back_is_a_loop_not_an_endless_read(mocked: responses.RequestsMock) -> None:
    mocked.get(DOCS, json=page([doc(1)], "same"))
    mocked.get(DOCS, json=page([doc(2)], "same"))
    evotor, _ = adapter()
    with pytest.raises(FatalRemoteError, match="loops"):
        list(evotor.documents(STORE, SINCE, UNTIL))


def test_page_cap_from_options_stops_reading(mocked: responses.RequestsMock) -> None:
    mocked.get(DOCS, json=page([doc(1)], "c-2"))
    mocked.get(DOCS, json=page([doc(2)], "c-3"))
    evotor, _ = adapter(max_pages=2)
    with pytest.raises(FatalRemoteError, match="page cap"):
        list(evotor.documents(STORE, SINCE, UNTIL))


def test_429_waits_for_x_ratelimit_reset_then_continues(mocked: responses.RequestsMock) -> None:
    limited = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "7"}
    mocked.get(DOCS, json={"code": "TOO_MANY_REQUESTS"}, status=429, headers=limited)
    mocked.get(DOCS, json=page([doc(1)]))
    evotor, slept = adapter()
    assert [r.id for r in evotor.documents(STORE, SINCE, UNTIL)] == ["doc-1"]
    assert slept == [7.0]
    # the retried first page still carries the window
    assert query(mocked.calls[1])["type"] == ["SELL,PAYBACK"]


def test_a_spent_rate_window_is_waited_out_before_the_next_request(mocked: responses.RequestsMock) -> None:
    spent = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "4"}
    mocked.get(
        DOCS, json=page([doc(1)], "c-2"), headers={"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": "9"}
    )
    mocked.get(DOCS, json=page([doc(2)], "c-3"), headers=spent)
    mocked.get(DOCS, json=page([doc(3)]), headers=spent)
    evotor, slept = adapter(http={"max_retry_wait": 3})
    assert [r.id for r in evotor.documents(STORE, SINCE, UNTIL)] == ["doc-1", "doc-2", "doc-3"]
    assert slept == [3.0]  # once, before the third page, clamped to the policy's longest wait


def test_401_is_a_config_error_without_the_token(mocked: responses.RequestsMock) -> None:
    mocked.get(DOCS, json={"code": "UNAUTHORIZED", "message": "Invalid token tok-123456"}, status=401)
    evotor, _ = adapter()
    with pytest.raises(RemoteConfigError) as caught:
        list(evotor.documents(STORE, SINCE, UNTIL))
    assert "tok-123456" not in str(caught.value)


def test_stores_follow_the_cursor_and_honour_the_configured_subset(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/stores", json=page([{"id": "s-1"}, {"id": "s-2"}], "n"))
    mocked.get(f"{BASE}/stores", json=page([{"id": "s-3"}]))
    config = SystemConfig(adapter="evotor", base_url=BASE, token="t-1234", stores=("s-1", "s-3"))
    assert EvotorAdapter("evotor", config).stores() == ["s-1", "s-3"]
    assert query(mocked.calls[1]) == {"cursor": ["n"]}


def test_single_document_by_id(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{DOCS}/doc-9", json=doc(9, "PAYBACK"))
    evotor, _ = adapter()
    record = evotor.document(STORE, "doc-9")
    assert (record.entity, record.id, record.store) == ("PAYBACK", "doc-9", STORE)
    assert record.text is not None
    assert json.loads(record.text) == doc(9, "PAYBACK")  # the body as sent, kept for the journal


def test_a_document_reads_the_same_text_alone_as_in_its_page(mocked: responses.RequestsMock) -> None:
    body = b'{"items": [{"id": "doc-1", "type": "SELL", "sum": 10.50}], "paging": {}}'
    mocked.get(DOCS, body=body, content_type="application/json")
    mocked.get(f"{DOCS}/doc-1", body=b'{"id": "doc-1", "type": "SELL", "sum": 10.50}',
               content_type="application/json")  # fmt: skip
    evotor, _ = adapter()
    [listed] = evotor.documents(STORE, SINCE, UNTIL)
    alone = evotor.document(STORE, "doc-1")
    assert listed.text == alone.text == '{"id": "doc-1", "type": "SELL", "sum": 10.50}'
    assert listed.payload == alone.payload == {"id": "doc-1", "type": "SELL", "sum": Decimal("10.50")}


# -- webhooks --


def receipt_event(receipt_id: str = "r-1", **data: Any) -> dict[str, Any]:
    body = {
        "id": f"evt-{receipt_id}",
        "timestamp": 1715938873318,
        "userId": "01-000000000012345",
        "type": "ReceiptCreated",
        "version": 2,
        "data": {
            "id": receipt_id,
            "storeId": STORE,
            "deviceId": "dev-1",
            "dateTime": "2024-05-17T09:41:12.318+0000",
            "type": "SELL",
            "totalAmount": 550.00,
            "extras": {"card": "2000000123456"},
            "items": [{"id": "p-1", "name": "Латте", "quantity": 2, "sumPrice": 423.08}],
        },
    }
    body["data"].update(data)
    return body


def test_receipts_webhook_becomes_one_record_per_receipt_with_exact_amounts() -> None:
    body = json.dumps(receipt_event()).encode()
    (record,) = parse_receipts_webhook(body)
    assert (record.entity, record.id, record.store, record.system) == (WEBHOOK_ENTITY, "r-1", STORE, "evotor")
    assert record.payload["totalAmount"] == Decimal("550.0")
    assert record.payload["items"][0]["sumPrice"] == Decimal("423.08")
    assert record.payload["event_id"] == "evt-r-1"


def test_receipts_webhook_array_is_deduplicated_by_receipt() -> None:
    body = json.dumps([receipt_event("r-1"), receipt_event("r-2"), receipt_event("r-1")]).encode()
    assert [r.id for r in parse_receipts_webhook(body, system="till")] == ["r-1", "r-2"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "e"}, "data"),
        (receipt_event(id=None), "data.id"),
        (receipt_event(storeId=""), "data.storeId"),
        (receipt_event(items={"id": 1}), "data.items"),
        ([receipt_event(), receipt_event(type=5)], "[1].data.type"),
    ],
)
def test_receipts_webhook_shape_errors_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(MappingError) as caught:
        parse_receipts_webhook(json.dumps(body).encode())
    assert caught.value.context["field"] == field


def test_receipts_webhook_that_is_not_json_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not JSON"):
        parse_receipts_webhook(b"<html>")


def sign(body: bytes, secret: str) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def test_hub_signature_accepts_the_right_hmac_and_refuses_anything_else() -> None:
    body = b'{"id":"ev-1","timestamp":1715938873318,"type":"DocumentEvent","action":"created","payload":{}}'
    good = sign(body, "s3cret")
    assert verify_hub_signature(body, good, "s3cret")
    assert verify_hub_signature(body, good.upper().replace("SHA1=", "sha1="), "s3cret")
    assert not verify_hub_signature(body, sign(body, "other"), "s3cret")
    assert not verify_hub_signature(body + b" ", good, "s3cret")
    assert not verify_hub_signature(body, good.replace("sha1=", "sha256="), "s3cret")
    assert not verify_hub_signature(body, "", "s3cret")
    assert not verify_hub_signature(body, None, "s3cret")
    assert not verify_hub_signature(body, good, "")


def test_hub_event_envelope_is_parsed() -> None:
    body = json.dumps(
        {
            "id": "ev-1",
            "timestamp": 1715938873318,
            "type": "DocumentEvent",
            "action": "created",
            "payload": {"id": "doc-1", "store_id": STORE, "user_id": "01-000000000012345"},
        }
    ).encode()
    event = parse_hub_event(body)
    assert (event.id, event.type, event.action, event.store_id) == ("ev-1", "DocumentEvent", "created", STORE)
    assert event.timestamp == datetime(2024, 5, 17, 9, 41, 13, 318000, tzinfo=UTC)
    assert event.payload["id"] == "doc-1"


def test_hub_event_without_action_names_the_field() -> None:
    with pytest.raises(MappingError) as caught:
        parse_hub_event(b'{"id":"e","timestamp":1,"type":"StoreEvent","payload":{}}')
    assert caught.value.context["field"] == "action"


def test_the_adapter_is_a_document_source_built_from_the_registry() -> None:
    from adapters.base import DocumentSource, build_adapter

    evotor = build_adapter("till", SystemConfig(adapter="evotor", base_url=BASE, token="t-1234"))
    assert isinstance(evotor, EvotorAdapter)
    assert isinstance(evotor, DocumentSource)
    assert evotor.system == "till"
