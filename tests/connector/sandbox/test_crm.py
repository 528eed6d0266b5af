"""The emulated RetailCRM loyalty API, exercised with plain ``requests`` against a real uvicorn server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests

from connector.sandbox.crm import build_crm_app
from connector.sandbox.faults import FaultInjector, faults_middleware
from connector.sandbox.world import CrmOperation, World
from tests.connector.sandbox._servers import CUSTOMERS, MSK, make_world, serve

KEY = {"X-API-KEY": "sandbox-crm-key"}
NOW = datetime(2026, 11, 10, 12, 0, tzinfo=MSK)
ANNA = CUSTOMERS[0]  # account 159
BORIS = CUSTOMERS[1]  # account 160


def _operations() -> list[CrmOperation]:
    """Anna: 100 active points, then 30 charged (70 left); Boris: 40 points pending until 2026-11-15."""
    return [
        CrmOperation(
            1,
            159,
            "credit",
            Decimal("100"),
            datetime(2026, 11, 1, 10, tzinfo=MSK),
            "crm:evotor:s1:accrual",
            date(2026, 11, 1),
            date(2027, 11, 1),
        ),
        CrmOperation(
            2,
            159,
            "charge",
            Decimal("30.50"),
            datetime(2026, 11, 2, 10, tzinfo=MSK),
            "crm:evotor:s2:redemption",
        ),
        CrmOperation(
            3,
            160,
            "credit",
            Decimal("40"),
            datetime(2026, 11, 1, 11, tzinfo=MSK),
            "crm:evotor:s3:accrual",
            date(2026, 11, 15),
            None,
        ),
    ]


def _json(response: requests.Response) -> Any:
    return json.loads(response.text, parse_float=Decimal)


@pytest.fixture
def world() -> World:
    return make_world(1, operations=_operations())


@pytest.fixture
def api(world: World) -> Iterator[str]:
    with serve(build_crm_app(world, clock=lambda: NOW, rate_per_second=0)) as url:
        yield f"{url}/api/v5/loyalty"


def _account(api: str, account_id: int) -> dict[str, Any]:
    body = _json(requests.get(f"{api}/account/{account_id}", headers=KEY, timeout=10))
    assert body["success"] is True
    return body["loyaltyAccount"]  # type: ignore[no-any-return]


def test_account_found_by_phone_in_any_form_and_by_card(api: str) -> None:
    for phone in ("+79161234567", "89161234567", "8 (916) 123-45-67"):
        body = _json(
            requests.get(f"{api}/accounts", params={"filter[phoneNumber]": phone}, headers=KEY, timeout=10)
        )
        assert body["success"] is True
        assert [a["id"] for a in body["loyaltyAccounts"]] == [159]
    by_card = _json(
        requests.get(f"{api}/accounts", params={"filter[cardNumber]": BORIS.card}, headers=KEY, timeout=10)
    )
    nobody = _json(
        requests.get(
            f"{api}/accounts", params={"filter[phoneNumber]": "+79990000000"}, headers=KEY, timeout=10
        )
    )

    assert [(a["id"], a["phoneNumber"]) for a in by_card["loyaltyAccounts"]] == [(160, BORIS.phone)]
    assert nobody["loyaltyAccounts"] == []
    assert nobody["pagination"]["totalCount"] == 0


def test_account_amount_is_the_active_balance(api: str) -> None:
    anna, boris = _account(api, 159), _account(api, 160)
    waiting = _json(
        requests.get(f"{api}/account/160/bonus/waiting_activation/details", headers=KEY, timeout=10)
    )
    burning = _json(requests.get(f"{api}/account/159/bonus/burn_soon/details", headers=KEY, timeout=10))

    assert anna["amount"] == Decimal("69.50")
    assert anna["cardNumber"] == ANNA.card
    assert boris["amount"] == Decimal("0.00")
    assert waiting["bonuses"] == [{"date": "2026-11-15", "amount": Decimal("40.00")}]
    assert waiting["statistic"]["totalAmount"] == Decimal("40.00")
    assert burning["bonuses"] == [{"date": "2027-11-01", "amount": Decimal("69.50")}]


def test_credit_charge_history_and_feed_keep_each_comment(api: str) -> None:
    credit = requests.post(
        f"{api}/account/159/bonus/credit",
        data={
            "amount": "50",
            "activationDate": "2026-11-10",
            "expireDate": "2027-11-10",
            "comment": "crm:evotor:s9:accrual",
        },
        headers=KEY,
        timeout=10,
    )
    charge = requests.post(
        f"{api}/account/159/bonus/charge",
        data={"amount": "19.50", "comment": "crm:evotor:s9:redemption"},
        headers=KEY,
        timeout=10,
    )
    history = _json(requests.get(f"{api}/account/159/bonus/operations", headers=KEY, timeout=10))

    assert credit.headers["content-type"].startswith("application/json")
    assert _json(credit) == {
        "success": True,
        "loyaltyBonus": {
            "amount": Decimal("50.00"),
            "activationDate": "2026-11-10",
            "expireDate": "2027-11-10",
        },
    }
    assert _json(charge) == {"success": True}
    assert _account(api, 159)["amount"] == Decimal("100.00")
    ops = history["bonusOperations"]
    assert [(o["type"], o["amount"], o["comment"]) for o in ops] == [
        ("credit_manual", Decimal("100.00"), "crm:evotor:s1:accrual"),
        ("charge_manual", Decimal("30.50"), "crm:evotor:s2:redemption"),
        ("credit_manual", Decimal("50.00"), "crm:evotor:s9:accrual"),
        ("charge_manual", Decimal("19.50"), "crm:evotor:s9:redemption"),
    ]
    assert ops[2]["createdAt"] == "2026-11-10 12:00:00"
    assert ops[2]["bonus"] == {"activationDate": "2026-11-10", "expireDate": "2027-11-10"}
    assert ops[2]["loyaltyAccount"] == {"id": 159}
    assert history["pagination"]["totalCount"] == 4


def test_history_filters_by_created_at(api: str) -> None:
    params = {"filter[createdAtFrom]": "2026-11-02 00:00:00", "filter[createdAtTo]": "2026-11-30 00:00:00"}
    body = _json(requests.get(f"{api}/account/159/bonus/operations", params=params, headers=KEY, timeout=10))

    assert [o["id"] for o in body["bonusOperations"]] == [2]


def test_charge_above_the_active_balance_is_refused(api: str) -> None:
    pending_only = requests.post(
        f"{api}/account/160/bonus/charge", data={"amount": "10"}, headers=KEY, timeout=10
    )
    too_much = requests.post(
        f"{api}/account/159/bonus/charge", data={"amount": "69.51"}, headers=KEY, timeout=10
    )

    assert pending_only.status_code == too_much.status_code == 400
    assert too_much.json()["success"] is False
    assert "69.50" in too_much.json()["errorMsg"]
    assert _account(api, 159)["amount"] == Decimal("69.50")


def test_bad_credits_are_refused_with_field_errors(api: str) -> None:
    as_json = requests.post(f"{api}/account/159/bonus/credit", json={"amount": 10}, headers=KEY, timeout=10)
    negative = requests.post(
        f"{api}/account/159/bonus/credit", data={"amount": "-5"}, headers=KEY, timeout=10
    )
    backwards = requests.post(
        f"{api}/account/159/bonus/credit",
        data={"amount": "5", "activationDate": "2026-12-01", "expireDate": "2026-11-01"},
        headers=KEY,
        timeout=10,
    )
    unknown = requests.post(f"{api}/account/999/bonus/credit", data={"amount": "5"}, headers=KEY, timeout=10)

    assert as_json.status_code == 400  # RetailCRM reads form fields only
    assert "amount" in as_json.json()["errors"]
    assert negative.status_code == 400
    assert "expireDate" in backwards.json()["errors"]
    assert unknown.status_code == 404
    assert unknown.json() == {"success": False, "errorMsg": "Loyalty account not found"}


def _feed(api: str, limit: int, cursor: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    response = requests.get(f"{api}/bonus/operations", params=params, headers=KEY, timeout=10)
    assert response.status_code == 200, response.text
    return _json(response)  # type: ignore[no-any-return]


def test_global_feed_pages_by_cursor_to_the_end(world: World) -> None:
    world.crm_operations[:] = [
        CrmOperation(n, 159, "credit", Decimal("1"), datetime(2026, 11, 1, 10, tzinfo=MSK), f"op-{n}")
        for n in range(1, 46)
    ]
    with serve(build_crm_app(world, clock=lambda: NOW, rate_per_second=0)) as url:
        api = f"{url}/api/v5/loyalty"
        pages = [_feed(api, 20)]
        while "nextCursor" in pages[-1]["pagination"] and len(pages) < 10:
            pages.append(_feed(api, 20, pages[-1]["pagination"]["nextCursor"]))
        bad_limit = requests.get(f"{api}/bonus/operations", params={"limit": 7}, headers=KEY, timeout=10)

    ids = [o["id"] for page in pages for o in page["bonusOperations"]]
    assert [len(page["bonusOperations"]) for page in pages] == [20, 20, 5]
    assert ids == list(range(1, 46))
    assert [o["comment"] for o in pages[2]["bonusOperations"]] == [f"op-{n}" for n in range(41, 46)]
    assert pages[-1]["pagination"] == {"limit": 20}
    assert bad_limit.status_code == 400


def test_feed_shows_new_operations_after_the_last_cursor(api: str) -> None:
    first = _feed(api, 20)
    requests.post(
        f"{api}/account/159/bonus/credit", data={"amount": "5", "comment": "late"}, headers=KEY, timeout=10
    )
    # The last page had no cursor; a client resumes from the last id it saw, as with any cursor feed.
    everything = _feed(api, 50)

    assert [o["id"] for o in first["bonusOperations"]] == [1, 2, 3]
    assert [(o["id"], o["comment"]) for o in everything["bonusOperations"]][-1] == (4, "late")


def test_api_key_in_header_or_query_else_401_or_403(api: str) -> None:
    by_query = requests.get(f"{api}/accounts", params={"apiKey": "sandbox-crm-key"}, timeout=10)
    missing = requests.get(f"{api}/accounts", timeout=10)
    wrong = requests.get(f"{api}/accounts", headers={"X-API-KEY": "nope"}, timeout=10)

    assert by_query.status_code == 200
    assert by_query.json()["success"] is True
    assert missing.status_code == 401
    assert wrong.status_code == 403
    assert missing.json()["success"] is wrong.json()["success"] is False
    assert "apiKey" in wrong.json()["errorMsg"]


def test_503_when_the_key_is_over_its_budget(world: World) -> None:
    with serve(build_crm_app(world, clock=lambda: NOW, rate_per_second=0.5, burst=2)) as url:
        answers = [requests.get(f"{url}/api/v5/loyalty/accounts", headers=KEY, timeout=10) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 503]
    assert answers[2].json()["success"] is False


def test_dup_fault_repeats_one_operation_per_feed_page_boundary(world: World) -> None:
    world.crm_operations[:] = [
        CrmOperation(n, 160, "credit", Decimal("2"), datetime(2026, 11, 1, 10, tzinfo=MSK), f"op-{n}")
        for n in range(1, 51)
    ]
    app = faults_middleware(
        build_crm_app(world, clock=lambda: NOW, rate_per_second=0), FaultInjector("crm:dup=1"), "crm"
    )
    with serve(app) as url:
        api = f"{url}/api/v5/loyalty"
        pages = [_feed(api, 20)]
        while "nextCursor" in pages[-1]["pagination"] and len(pages) < 10:
            pages.append(_feed(api, 20, pages[-1]["pagination"]["nextCursor"]))

    ids = [[o["id"] for o in page["bonusOperations"]] for page in pages]
    assert ids[0] == list(range(1, 21))
    assert [page[0] for page in ids[1:]] == [20, 39]  # each later page starts with the last one seen
    assert sorted({op for page in ids for op in page}) == list(range(1, 51))
    assert sum(len(page) for page in ids) - 50 == len(pages) - 1
