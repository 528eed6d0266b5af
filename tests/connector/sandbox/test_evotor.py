"""The emulated Evotor cloud, exercised with plain ``requests`` against a real uvicorn server."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from connector.sandbox._render_evotor import BONUS_APP_ID
from connector.sandbox.evotor import build_evotor_app, epoch_ms
from connector.sandbox.faults import FaultInjector, faults_middleware
from connector.sandbox.world import World
from tests.connector.sandbox._servers import CUSTOMERS, MSK, make_receipt, make_world, serve

TOKEN = "sandbox-evotor-token"
AUTH = {"X-Authorization": TOKEN}


def _json(response: requests.Response) -> Any:
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_float=Decimal)


def _world_with_returns() -> World:
    """25 sales, then a return of sale 1 (with basis), a return without basis, and a sale with 100 points paid."""
    world = make_world(25)
    store = world.stores[0]
    later = datetime(2026, 11, 1, 15, 0, tzinfo=MSK)
    first = world.receipts[0]
    world.receipts += [
        make_receipt(101, store=store, at=later, kind="return", original_id=first.id),
        make_receipt(102, store=store, at=later + timedelta(minutes=1), kind="return", phone=None),
        make_receipt(103, store=store, at=later + timedelta(minutes=2), bonus=Decimal("100.00")),
    ]
    return world


@pytest.fixture(scope="module")
def world() -> World:
    return _world_with_returns()


@pytest.fixture(scope="module")
def base(world: World) -> Iterator[str]:
    with serve(build_evotor_app(world, page_size=10, rate_per_second=0)) as url:
        yield url


def _documents_url(base: str, world: World) -> str:
    return f"{base}/stores/{world.stores[0].id}/documents"


def _all_pages(url: str, params: dict[str, Any] | None = None) -> list[list[dict[str, Any]]]:
    pages = []
    body = _json(requests.get(url, params=params, headers=AUTH, timeout=10))
    pages.append(body["items"])
    for _ in range(100):
        if "next_cursor" not in body["paging"]:
            break
        body = _json(
            requests.get(url, params={"cursor": body["paging"]["next_cursor"]}, headers=AUTH, timeout=10)
        )
        pages.append(body["items"])
    return pages


def _by_id(base: str, world: World) -> dict[str, dict[str, Any]]:
    return {doc["id"]: doc for page in _all_pages(_documents_url(base, world)) for doc in page}


def test_cursor_paging_reaches_the_end_without_duplicates_or_gaps(base: str, world: World) -> None:
    pages = _all_pages(_documents_url(base, world))

    ids = [doc["id"] for page in pages for doc in page]
    assert [len(page) for page in pages] == [10, 10, 8]
    assert len(ids) == len(set(ids))
    expected = [r.id for r in sorted(world.receipts, key=lambda r: r.occurred_at)]
    assert ids == expected


def test_last_page_has_empty_paging(base: str, world: World) -> None:
    body = _json(
        requests.get(_documents_url(base, world), params={"type": "PAYBACK"}, headers=AUTH, timeout=10)
    )

    assert body["paging"] == {}
    assert [doc["type"] for doc in body["items"]] == ["PAYBACK", "PAYBACK"]


def test_dup_fault_repeats_exactly_one_item_per_page_boundary(world: World) -> None:
    app = faults_middleware(
        build_evotor_app(world, page_size=10, rate_per_second=0), FaultInjector("evotor:dup=1"), "evotor"
    )
    with serve(app) as url:
        pages = _all_pages(_documents_url(url, world))

    for previous, page in itertools.pairwise(pages):
        assert page[0]["id"] == previous[-1]["id"]
    ids = [doc["id"] for page in pages for doc in page]
    assert len(ids) - len(set(ids)) == len(pages) - 1
    assert set(ids) == {r.id for r in world.receipts}


def test_filters_apply_on_the_first_page_and_the_cursor_keeps_them(base: str, world: World) -> None:
    sales = sorted((r for r in world.receipts if r.kind == "sale"), key=lambda r: r.occurred_at)
    since, until = epoch_ms(sales[3].occurred_at), epoch_ms(sales[20].occurred_at)  # inclusive, exclusive
    url = _documents_url(base, world)
    first = _json(
        requests.get(url, params={"since": since, "until": until, "type": "SELL"}, headers=AUTH, timeout=10)
    )
    # Later pages take the cursor alone: different filters sent alongside are ignored, as Evotor does.
    params = {"cursor": first["paging"]["next_cursor"], "type": "PAYBACK", "since": 0}
    second = _json(requests.get(url, params=params, headers=AUTH, timeout=10))

    ids = [doc["id"] for doc in first["items"] + second["items"]]
    assert ids == [r.id for r in sales[3:20]]
    assert second["paging"] == {}


def test_type_comma_list_returns_both_kinds(base: str, world: World) -> None:
    pages = _all_pages(_documents_url(base, world), {"type": "SELL,PAYBACK"})

    assert sum(len(page) for page in pages) == len(world.receipts)


def test_bad_parameters_answer_400_with_violations(base: str, world: World) -> None:
    url = _documents_url(base, world)
    bad_type = requests.get(url, params={"type": "SELL,SALE"}, headers=AUTH, timeout=10)
    bad_since = requests.get(url, params={"since": "yesterday"}, headers=AUTH, timeout=10)
    bad_cursor = requests.get(url, params={"cursor": "not-a-cursor"}, headers=AUTH, timeout=10)
    unknown_store = requests.get(f"{base}/stores/nope/documents", headers=AUTH, timeout=10)

    assert bad_type.status_code == 400
    assert bad_type.json()["violations"][0]["subject"] == "type"
    assert bad_since.status_code == 400
    assert bad_since.json()["violations"] == [
        {"reason": "since must be epoch milliseconds", "subject": "since"}
    ]
    assert bad_cursor.status_code == 400
    assert unknown_store.status_code == 404


def test_both_auth_headers_are_accepted_and_others_get_401(base: str) -> None:
    x_auth = requests.get(f"{base}/stores", headers={"X-Authorization": TOKEN}, timeout=10)
    bearer = requests.get(f"{base}/stores", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    missing = requests.get(f"{base}/stores", timeout=10)
    wrong = requests.get(f"{base}/stores", headers={"Authorization": "Bearer wrong"}, timeout=10)

    assert x_auth.status_code == bearer.status_code == 200
    assert x_auth.json()["items"][0]["name"] == "Магазин 1"
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["code"] == "UNAUTHORIZED"
    assert set(missing.json()) == {"code", "message", "violations"}


def test_rate_headers_on_every_response_and_429_past_the_budget(world: World) -> None:
    with serve(build_evotor_app(world, rate_per_second=0.5, burst=3)) as url:
        answers = [requests.get(f"{url}/stores", headers=AUTH, timeout=10) for _ in range(4)]
        unauthorised = requests.get(f"{url}/stores", timeout=10)

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["X-RateLimit-Limit"] == "3" for a in answers)
    assert int(answers[3].headers["X-RateLimit-Reset"]) >= 1
    assert int(answers[3].headers["Retry-After"]) >= 1
    assert answers[3].json()["code"] == "TOO_MANY_REQUESTS"
    assert "X-RateLimit-Remaining" in unauthorised.headers


def test_payback_with_and_without_base_document(base: str, world: World) -> None:
    docs = _by_id(base, world)
    with_basis = docs[world.receipts[25].id]
    without_basis = docs[world.receipts[26].id]

    assert with_basis["type"] == "PAYBACK"
    assert with_basis["body"]["base_document_id"] == world.receipts[0].id
    assert with_basis["body"]["base_document_number"] == world.receipts[0].number
    assert without_basis["type"] == "PAYBACK"
    assert "base_document_id" not in without_basis["body"]
    assert "customer_phone" not in without_basis["body"]


def test_customer_phone_comes_as_number_and_as_string(base: str, world: World) -> None:
    docs = _by_id(base, world)
    phones = [doc["body"]["customer_phone"] for doc in docs.values() if "customer_phone" in doc["body"]]

    assert {type(phone) for phone in phones} == {int, str}
    assert {str(phone) for phone in phones} == {c.phone.lstrip("+") for c in CUSTOMERS}
    again = _by_id(base, world)  # deterministic: the same document always has the same form
    assert all(
        type(again[i]["body"].get("customer_phone")) is type(d["body"].get("customer_phone"))
        for i, d in docs.items()
    )


def _items(body: dict[str, Any], key: str, wrapper: str) -> list[dict[str, Any]]:
    return [item.get(wrapper, item) for item in body[key]]


def test_positions_come_flat_and_wrapped(base: str, world: World) -> None:
    docs = list(_by_id(base, world).values())
    wrapped = [d for d in docs if "position" in d["body"]["positions"][0]]
    flat = [d for d in docs if "product_name" in d["body"]["positions"][0]]

    assert wrapped
    assert flat
    assert len(wrapped) + len(flat) == len(docs)
    assert all("payment" in d["body"]["payments"][0] for d in wrapped)
    assert _items(wrapped[0]["body"], "positions", "position")[0]["product_name"] == "Латте 0.3"


def test_amounts_are_exact_decimals_that_add_up(base: str, world: World) -> None:
    docs = _by_id(base, world)
    for receipt in world.receipts:
        body = docs[receipt.id]["body"]
        positions = _items(body, "positions", "position")
        payments = _items(body, "payments", "payment")
        assert body["result_sum"] == receipt.total == Decimal("550.00")
        assert sum(p["result_sum"] for p in positions) == body["result_sum"]
        assert sum(p["sum"] for p in positions) == body["sum"] == Decimal("650.00")
        assert sum(p["sum"] for p in payments) == receipt.total
        assert positions[0]["quantity"] == 2
        discounts = [p.get("doc_distributed_discount") or p["position_discount"] for p in positions]
        assert [d["discount_sum"] for d in discounts] == [Decimal("76.92"), Decimal("23.08")]


def test_document_envelope_times_and_fiscal_identifiers(base: str, world: World) -> None:
    receipt = world.receipts[0]
    doc = _by_id(base, world)[receipt.id]
    closed = datetime.strptime(doc["close_date"], "%Y-%m-%dT%H:%M:%S.%f%z")
    local = closed + timedelta(milliseconds=doc["time_zone_offset"])
    fiscal = doc["body"]["pos_print_results"][0]

    assert doc["close_date"].endswith("+0000")
    assert doc["time_zone_offset"] == 10_800_000
    assert closed == receipt.occurred_at
    assert local.replace(tzinfo=None) == receipt.occurred_at.replace(tzinfo=None)
    assert (doc["store_id"], doc["device_id"]) == (world.stores[0].id, world.stores[0].evotor_device_id)
    assert doc["version"] == "V2"
    assert doc["session_number"] == receipt.session_number
    assert fiscal["fn_serial_number"] == receipt.fiscal[0]
    assert str(fiscal["fiscal_document_number"]) == receipt.fiscal[1]
    assert fiscal["fiscal_sign_doc_number"] == receipt.fiscal[2]
    assert fiscal["receipt_date"] == "01112026"


def test_bonus_payment_is_an_app_payment_of_the_bonus_app(base: str, world: World) -> None:
    doc = _by_id(base, world)[world.receipts[27].id]
    payments = _items(doc["body"], "payments", "payment")
    bonus = [p for p in payments if p.get("app_payment", {}).get("app_id") == BONUS_APP_ID]

    assert [p["sum"] for p in bonus] == [Decimal("100.00")]
    assert doc["extras"][BONUS_APP_ID]["card"] == CUSTOMERS[0].card
    assert doc["extras"][BONUS_APP_ID]["bonus_redeemed"] == Decimal("100.00")


def test_single_document_stores_and_devices(base: str, world: World) -> None:
    receipt = world.receipts[0]
    single = _json(
        requests.get(f"{base}/stores/{receipt.store_id}/documents/{receipt.id}", headers=AUTH, timeout=10)
    )
    devices = _json(requests.get(f"{base}/devices", headers=AUTH, timeout=10))
    missing = requests.get(f"{base}/stores/{receipt.store_id}/documents/nope", headers=AUTH, timeout=10)

    assert single["id"] == receipt.id
    assert devices["items"][0]["timezone_offset"] == 10_800_000
    assert devices["items"][0]["store_id"] == receipt.store_id
    assert missing.status_code == 404


def test_a_page_of_1000_documents_is_served_in_under_100_ms() -> None:
    world = make_world(1500)
    with serve(build_evotor_app(world, rate_per_second=0)) as url, requests.Session() as session:
        documents = f"{url}/stores/{world.stores[0].id}/documents"
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            response = session.get(documents, headers=AUTH, timeout=10)
            timings.append(time.perf_counter() - started)
            assert len(response.json()["items"]) == 1000

    assert min(timings) < 0.1, timings


def test_documents_per_device_are_the_stores_till(base: str, world: World) -> None:
    store = world.stores[0]
    url = f"{base}/stores/{store.id}/devices/{store.evotor_device_id}/documents"
    by_device = _all_pages(url)
    other = requests.get(f"{base}/stores/{store.id}/devices/nope/documents", headers=AUTH, timeout=10)

    assert [doc["id"] for page in by_device for doc in page] == [
        doc["id"] for page in _all_pages(_documents_url(base, world)) for doc in page
    ]
    assert other.status_code == 404
