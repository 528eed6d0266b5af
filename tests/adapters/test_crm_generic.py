"""A made-up CRM ("BonusHub") added with options only: writes, lookup before write, every paginator kind,
auth schemes, definition errors, and its operations mapped by the shipped crm/generic-example mapping."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from adapters.crm import CrmAdapter
from connector.config import SystemConfig
from connector.errors import ConfigError
from connector.mapping import load_mapping
from connector.model import Posting

BASE = "https://bonushub.example/api/v1"
PHONE = "+79161234567"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def definition(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "auth": {"scheme": "header", "header": "X-Token"},
        "fields": {"id": "operation_id", "key": "external_id", "created_at": "created_at"},
        "operations": {"path": "operations", "items": "items",
                       "paginator": {"kind": "cursor", "cursor_path": "next", "param": "after"}},
        "find_account": {"path": "customers", "by_phone": {"phone": "{phone}"}, "by_card": {"card": "{card}"},
                         "items": "items"},
        "credit": {"path": "customers/{account_id}/operations", "method": "POST", "id": "operation.operation_id",
                   "body": {"direction": "credit", "points": "{amount_number}", "external_id": "{key}",
                            "available_from": "{activation}", "expires_on": "{expiry}", "note": "{kind} {amount}"}},
        "charge": {"path": "customers/{account_id}/operations", "method": "POST", "encoding": "form",
                   "body": {"direction": "debit", "points": "{amount}", "external_id": "{key}"}},
        "find_operation": {"path": "operations", "params": {"external_id": "{key}"}, "items": "items"},
        "balance": {"path": "customers/{account_id}", "value": "balance"},
        "mapping": "crm/generic-example",
    }  # fmt: skip
    spec.update(changes)
    return spec


def hub(spec: dict[str, Any] | None = None, **config: Any) -> CrmAdapter:
    options = {"definition": spec if spec is not None else definition()}
    settings = {"token": "hub-secret-1", **config}
    return CrmAdapter("hub", SystemConfig(adapter="crm", preset="generic", base_url=BASE, options=options,
                                          **settings), sleep=lambda _s: None)  # fmt: skip


def posting(kind: str = "accrual", amount: str = "32.00", **extra: Any) -> Posting:
    return Posting(key=f"evotor:d-1:{kind}", account=PHONE, kind=kind, amount=Decimal(amount),  # type: ignore[arg-type]
                   occurred_at=datetime(2024, 5, 17, 9, 45, tzinfo=UTC), status="active", **extra)  # fmt: skip


def op(n: int, key: str | None = None, created: str = "2024-05-17T12:45:00+03:00") -> dict[str, Any]:
    return {"operation_id": f"op-{n}", "direction": "credit", "points": "32.00", "reason": "purchase",
            "customer": {"phone": "+7 916 123-45-67", "card": None}, "external_id": key,
            "created_at": created, "available_from": "2024-05-31", "expires_on": "2025-05-31", "state": "done",
            "order_ref": "ORD-17"}  # fmt: skip


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(str(call.request.url)).query)


CUSTOMER = {"items": [{"id": "c-1", "phone": PHONE, "card": None, "balance": "12.50"}]}


def test_credit_renders_the_json_body_with_an_exact_number_and_the_new_id(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(f"{BASE}/operations", json={"items": [], "next": None})
    mocked.get(f"{BASE}/customers", json=CUSTOMER)
    credit = mocked.post(f"{BASE}/customers/c-1/operations", json={"operation": {"operation_id": "op-9"}})
    crm = hub()

    result = crm.write_posting(
        posting(available_at=datetime(2024, 5, 31, 6, tzinfo=UTC)), "crm:evotor:d-1:accrual"
    )

    assert (result.remote_id, result.created) == ("op-9", True)
    body = credit.calls[0].request.body
    assert b'"points":32.00' in body
    assert json.loads(body) == {
        "direction": "credit",
        "points": 32.0,
        "external_id": "crm:evotor:d-1:accrual",
        "available_from": "2024-05-31",
        "note": "accrual 32.00",
    }  # no expiry: left out
    assert credit.calls[0].request.headers["X-Token"] == "hub-secret-1"
    assert query(mocked.calls[1]) == {"phone": [PHONE]}
    assert crm.mapping == "crm/generic-example"


def test_charge_can_be_form_encoded(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/operations", json={"items": []})
    mocked.get(f"{BASE}/customers", json=CUSTOMER)
    charge = mocked.post(f"{BASE}/customers/c-1/operations", json={})
    result = hub().write_posting(posting("redemption", "-100"), "crm:r")
    request = charge.calls[0].request
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.body.decode()) == {
        "direction": ["debit"],
        "points": ["100.00"],
        "external_id": ["crm:r"],
    }
    assert result.remote_id == "account:c-1"  # the answer carried no id


def test_existing_key_is_found_before_writing(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/operations", json={"items": [op(1, "crm:other")], "next": "t2"})
    mocked.get(f"{BASE}/operations", json={"items": [op(2, "crm:evotor:d-1:accrual")]})
    result = hub().write_posting(posting(), "crm:evotor:d-1:accrual")
    assert (result.remote_id, result.created) == ("op-2", False)
    assert query(mocked.calls[1]) == {"after": ["t2"]}


def test_lost_answer_is_looked_up_by_key_and_not_sent_again(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/operations", json={"items": []})
    mocked.get(f"{BASE}/customers", json=CUSTOMER)
    credit = mocked.post(f"{BASE}/customers/c-1/operations", body=requests.ConnectionError("reset"))
    mocked.get(f"{BASE}/operations", json={"items": [op(5, "crm:k")]})
    result = hub().write_posting(posting(), "crm:k")
    assert (result.remote_id, result.created) == ("op-5", True)
    assert len(credit.calls) == 1
    assert query(mocked.calls[3]) == {"external_id": ["crm:k"]}


@pytest.mark.parametrize(
    ("paginator", "pages", "queries"),
    [
        ({"kind": "offset", "limit": 2, "total_path": "total"},
         [{"items": [op(1, "crm:a"), op(2)], "total": 3}, {"items": [op(3, "crm:c")], "total": 3}],
         [{"offset": ["0"], "limit": ["2"]}, {"offset": ["2"], "limit": ["2"]}]),
        ({"kind": "page", "page_size": 2, "size_param": "per_page", "total_pages_path": "meta.pages"},
         [{"items": [op(1, "crm:a"), op(2)], "meta": {"pages": 2}}, {"items": [op(3, "crm:c")], "meta": {"pages": 2}}],
         [{"per_page": ["2"], "page": ["1"]}, {"per_page": ["2"], "page": ["2"]}]),
        ({"kind": "link", "next_url_path": "links.next"},
         [{"items": [op(1, "crm:a"), op(2)], "links": {"next": f"{BASE}/operations?token=p2"}},
          {"items": [op(3, "crm:c")], "links": {}}],
         [{}, {"token": ["p2"]}]),
        ({"kind": "cursor", "cursor_path": "paging.cursor", "first_page_only": True},
         [{"items": [op(1, "crm:a"), op(2)], "paging": {"cursor": "x"}}, {"items": [op(3, "crm:c")], "paging": {}}],
         [{"type": ["bonus"]}, {"cursor": ["x"]}]),
    ],
)  # fmt: skip
def test_each_paginator_kind_reads_the_operations_to_the_end(
    mocked: responses.RequestsMock, paginator: dict[str, Any], pages: list[Any], queries: list[Any]
) -> None:
    for body in pages:
        mocked.get(f"{BASE}/operations", json=body)
    params: dict[str, Any] = {"type": "bonus"} if paginator["kind"] == "cursor" else {}
    crm = hub(definition(operations={"path": "operations", "items": "items", "params": params,
                                     "paginator": paginator}))  # fmt: skip
    assert crm.find_postings(["crm:a", "crm:b", "crm:c"]) == {"crm:a": "op-1", "crm:c": "op-3"}
    assert [query(call) for call in mocked.calls] == queries


def test_link_header_paginator(mocked: responses.RequestsMock) -> None:
    mocked.get(
        f"{BASE}/operations",
        json=[op(1, "crm:a")],
        headers={"Link": f'<{BASE}/operations?page=2>; rel="next"'},
    )
    mocked.get(f"{BASE}/operations", json=[op(2, "crm:b")])
    crm = hub(definition(operations={"path": "operations", "paginator": {"kind": "link"}}))
    assert crm.find_postings(["crm:a", "crm:b"]) == {"crm:a": "op-1", "crm:b": "op-2"}


def test_operations_in_a_window_map_with_the_shipped_example(mocked: responses.RequestsMock) -> None:
    mocked.get(
        f"{BASE}/operations",
        json={"items": [op(1, "crm:evotor:d-1:accrual"), op(2, None, "2024-05-20T00:00:00")]},
    )
    crm = hub()
    records = list(crm.operations(datetime(2024, 5, 13, tzinfo=UTC), datetime(2024, 5, 19, 21, tzinfo=UTC)))
    assert [r.id for r in records] == ["op-1"]  # op-2 is midnight Moscow, 21:00 UTC: outside
    mapped = load_mapping(str(crm.mapping)).map(records[0].payload, system="crm")
    assert isinstance(mapped, Posting)
    assert (mapped.key, mapped.kind, mapped.amount, mapped.account) == (
        "evotor:d-1:accrual",
        "accrual",
        Decimal("32.00"),
        PHONE,
    )


def test_balance_endpoint(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/customers/c-1", json={"balance": "12.50"})
    assert hub().account_balance("c-1") == Decimal("12.50")


def test_without_find_account_the_phone_is_the_account_id(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/operations", json={"items": []})
    credit = mocked.post(f"{BASE}/customers/{PHONE}/operations", json={})
    hub(definition(find_account=None)).write_posting(posting(), "crm:k")
    assert len(credit.calls) == 1


@pytest.mark.parametrize(
    ("auth", "config", "check"),
    [
        ({"scheme": "bearer"}, {}, lambda r: r.headers["Authorization"] == "Bearer hub-secret-1"),
        ({"scheme": "query", "param": "key"}, {}, lambda r: query_of(r) == {"key": ["hub-secret-1"]}),
        ({"scheme": "basic"}, {"user": "Обмен", "password": "pw"},
         lambda r: r.headers["Authorization"] == "Basic " + base64.b64encode("Обмен:pw".encode()).decode()),
    ],
)  # fmt: skip
def test_auth_schemes(
    mocked: responses.RequestsMock, auth: dict[str, Any], config: dict[str, Any], check: Any
) -> None:
    mocked.get(f"{BASE}/customers/c-1", json={"balance": 1})
    hub(definition(auth=auth), **config).account_balance("c-1")
    assert check(mocked.calls[0].request)


def query_of(request: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(str(request.url)).query)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"credit": {"path": "c/{customer}", "method": "POST"}}, "options.credit.path"),
        ({"fields": {"id": "id", "key": "external_id"}}, "options.fields"),
        ({"operations": {"path": "ops", "items": "items[?"}}, "options.operations.items"),
        (
            {"operations": {"path": "ops", "paginator": {"kind": "scroll"}}},
            "options.operations.paginator.kind",
        ),
        ({"auth": {"scheme": "header", "heder": "X"}}, "options.auth.heder"),
    ],
)
def test_definition_errors_name_the_option(change: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        hub(definition(**change))
    assert str(caught.value).startswith(f"systems.hub.{where}:")


def test_definition_may_sit_directly_in_options(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/customers/c-1", json={"balance": "3"})
    options = {**definition(), "http": {"max_retries": 1}, "index_max_age": 10}
    crm = CrmAdapter(
        "hub", SystemConfig(adapter="crm", preset="generic", base_url=BASE, token="t-1234", options=options)
    )
    assert crm.account_balance("c-1") == Decimal(3)


def test_numeric_parameters_from_yaml_are_sent_as_given(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/operations", json={"items": [op(1, "crm:a")]})
    crm = hub(
        definition(
            operations={"path": "operations", "items": "items", "params": {"limit": 500, "active": True}}
        )
    )
    assert crm.find_postings(["crm:a"]) == {"crm:a": "op-1"}
    assert query(mocked.calls[0]) == {"limit": ["500"], "active": ["true"]}
