"""CRM adapter against `responses`: RetailCRM credit/charge bodies, batched lookup before write, unknown-outcome
resolution, 503 as rate limiting, the feed; and a made-up CRM described only in options, with each paginator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from adapters.crm import CrmAdapter, direction_of, points_text
from connector.config import SystemConfig
from connector.errors import ConfigError, FatalRemoteError, InputError, RetriableRemoteError
from connector.model import Posting

CRM = "https://shop.retailcrm.ru"
API = f"{CRM}/api/v5/loyalty"
FEED = f"{API}/bonus/operations"
NOW = datetime(2026, 11, 15, 9, 0, tzinfo=UTC)
PHONE = "+79161234567"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def retailcrm(**options: Any) -> tuple[CrmAdapter, list[float]]:
    slept: list[float] = []
    config = SystemConfig(
        adapter="crm", preset="retailcrm", base_url=CRM, api_key="key-abcdef", options=options
    )
    return CrmAdapter("crm", config, sleep=slept.append, clock=lambda: NOW), slept


def posting(kind: str = "accrual", amount: str = "32.50", account: str = PHONE, **extra: Any) -> Posting:
    return Posting(
        key=f"evotor:doc-1:{kind}",
        account=account,
        kind=kind,  # type: ignore[arg-type]
        amount=Decimal(amount),
        occurred_at=datetime(2026, 11, 15, 8, 0, tzinfo=UTC),
        status="active",
        **extra,
    )


def operation(
    op_id: int, comment: str, amount: str = "10.00", created: str = "2026-11-14 12:00:00"
) -> dict[str, Any]:
    return {"id": op_id, "type": "credit_manual", "amount": amount, "createdAt": created, "comment": comment,
            "loyaltyAccount": {"id": 159}, "loyalty": {"id": 1}}  # fmt: skip


def account(account_id: int = 159, phone: str = "79161234567") -> dict[str, Any]:
    return {"id": account_id, "phoneNumber": phone, "cardNumber": "2000000123456", "amount": 120.5}


def feed_page(ops: list[dict[str, Any]], cursor: str | None = None) -> dict[str, Any]:
    return {
        "success": True,
        "bonusOperations": ops,
        "pagination": {"limit": 250, **({"nextCursor": cursor} if cursor else {})},
    }


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(str(call.request.url)).query)


def form(call: Any) -> dict[str, list[str]]:
    body = call.request.body
    return parse_qs(body.decode() if isinstance(body, bytes) else body)


# -- kinds --


@pytest.mark.parametrize(
    ("kind", "amount", "direction"),
    [
        ("accrual", "10", "credit"),
        ("redemption_refund", "10", "credit"),
        ("welcome", "100", "credit"),
        ("birthday", "100", "credit"),
        ("referral", "50", "credit"),
        ("adjustment", "5", "credit"),
        ("redemption", "-10", "charge"),
        ("accrual_reversal", "-10", "charge"),
        ("expiry", "-10", "charge"),
        ("adjustment", "-5", "charge"),
    ],
)
def test_posting_kind_decides_credit_or_charge(kind: str, amount: str, direction: str) -> None:
    assert direction_of(posting(kind, amount)) == direction


def test_points_are_absolute_with_two_decimals_and_zero_is_refused() -> None:
    assert points_text(Decimal("-150")) == "150.00"
    assert points_text(Decimal("32.5")) == "32.50"
    with pytest.raises(InputError):
        direction_of(posting("adjustment", "0"))


# -- RetailCRM writes --


def test_credit_is_form_encoded_with_key_in_comment_and_dates_in_crm_zone(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(FEED, json=feed_page([operation(1, "crm:evotor:other:accrual")]))
    mocked.get(f"{API}/accounts", json={"success": True, "loyaltyAccounts": [account()]})
    credit = mocked.post(f"{API}/account/159/bonus/credit", json={"success": True, "loyaltyBonus": {}})
    crm, _ = retailcrm()
    # 21:30 UTC is already the next day in Moscow: dates are the CRM's calendar days
    due = posting(available_at=datetime(2026, 11, 28, 21, 30, tzinfo=UTC),
                  expires_at=datetime(2027, 5, 31, 0, 0, tzinfo=UTC))  # fmt: skip

    result = crm.write_posting(due, "crm:evotor:doc-1:accrual")

    assert (result.key, result.created) == ("crm:evotor:doc-1:accrual", True)
    assert form(credit.calls[0]) == {"amount": ["32.50"], "comment": ["crm:evotor:doc-1:accrual"],
                                     "activationDate": ["2026-11-29"], "expireDate": ["2027-05-31"]}  # fmt: skip
    request = credit.calls[0].request
    assert request.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert request.headers["X-API-KEY"] == "key-abcdef"
    assert query(mocked.calls[1]) == {"filter[phoneNumber]": ["79161234567"]}
    assert query(mocked.calls[0]) == {"limit": ["250"]}


def test_charge_sends_amount_and_comment_only(mocked: responses.RequestsMock) -> None:
    mocked.get(FEED, json=feed_page([]))
    mocked.get(f"{API}/accounts", json={"success": True, "loyaltyAccounts": [account(160)]})
    charge = mocked.post(f"{API}/account/160/bonus/charge", json={"success": True})
    crm, _ = retailcrm()
    spend = posting("redemption", "-150.00", expires_at=datetime(2027, 1, 1, tzinfo=UTC))
    crm.write_posting(spend, "crm:evotor:doc-1:redemption")
    assert form(charge.calls[0]) == {"amount": ["150.00"], "comment": ["crm:evotor:doc-1:redemption"]}


def test_card_account_is_found_by_card(mocked: responses.RequestsMock) -> None:
    mocked.get(FEED, json=feed_page([]))
    mocked.get(f"{API}/accounts", json={"success": True, "loyaltyAccounts": [account()]})
    mocked.post(f"{API}/account/159/bonus/credit", json={"success": True})
    crm, _ = retailcrm()
    crm.write_posting(posting(account="card:2000000123456"), "crm:k")
    assert query(mocked.calls[1]) == {"filter[cardNumber]": ["2000000123456"]}


def test_existing_key_is_found_before_writing_and_nothing_is_written(mocked: responses.RequestsMock) -> None:
    mocked.get(FEED, json=feed_page([operation(7, "crm:evotor:doc-1:accrual")], "c2"))
    mocked.get(FEED, json=feed_page([operation(8, "manual bonus")]))
    crm, _ = retailcrm()

    result = crm.write_posting(posting(), "crm:evotor:doc-1:accrual")

    assert (result.remote_id, result.created) == ("7", False)
    assert query(mocked.calls[1]) == {"limit": ["250"], "cursor": ["c2"]}
    assert all(call.request.method == "GET" for call in mocked.calls)


def test_lookups_are_batched_one_feed_pass_for_many_writes(mocked: responses.RequestsMock) -> None:
    mocked.get(FEED, json=feed_page([operation(7, "crm:k-0")]))
    mocked.get(f"{API}/accounts", json={"success": True, "loyaltyAccounts": [account()]})
    credit = mocked.post(f"{API}/account/159/bonus/credit", json={"success": True})
    crm, _ = retailcrm()
    keys = [f"crm:k-{n}" for n in range(5)]

    assert crm.find_postings(keys) == {"crm:k-0": "7"}
    results = [crm.write_posting(posting(), key) for key in keys]
    again = crm.write_posting(posting(), "crm:k-3")  # written in this run: known without asking

    assert [r.created for r in results] == [False, True, True, True, True]
    assert again.created is False
    assert len(mocked.calls) == 1 + 1 + 4  # one feed page, one account lookup (cached), four credits
    assert len(credit.calls) == 4


def test_index_is_refreshed_from_the_last_cursor_when_it_gets_old(mocked: responses.RequestsMock) -> None:
    now = [NOW]
    config = SystemConfig(adapter="crm", base_url=CRM, api_key="key-abcdef", options={"index_max_age": 60})
    crm = CrmAdapter("crm", config, clock=lambda: now[0])
    mocked.get(FEED, json=feed_page([operation(1, "crm:a")], "c1"))
    mocked.get(FEED, json=feed_page([operation(2, "crm:b")]))
    mocked.get(FEED, json=feed_page([operation(2, "crm:b"), operation(3, "crm:c")]))
    assert crm.find_postings(["crm:a", "crm:c"]) == {"crm:a": "1"}
    now[0] += timedelta(seconds=61)
    assert crm.find_postings(["crm:a", "crm:c"]) == {"crm:a": "1", "crm:c": "3"}
    assert query(mocked.calls[2]) == {"limit": ["250"], "cursor": ["c1"]}


def test_lost_answer_is_resolved_by_lookup_without_a_second_write(mocked: responses.RequestsMock) -> None:
    mocked.get(FEED, json=feed_page([]))
    mocked.get(f"{API}/accounts", json={"success": True, "loyaltyAccounts": [account()]})
    credit = mocked.post(f"{API}/account/159/bonus/credit", body=requests.ConnectionError("reset by peer"))
    history = mocked.get(f"{API}/account/159/bonus/operations",
                         json={"success": True, "pagination": {"totalPageCount": 1},
                               "bonusOperations": [operation(41, "crm:other"), operation(42, "crm:k")]})  # fmt: skip
    crm, _ = retailcrm()

    result = crm.write_posting(posting(), "crm:k")

    assert (result.remote_id, result.created) == ("42", True)
    assert len(credit.calls) == 1
    # the history is searched from a day before the attempt, in the CRM's zone (MSK)
    assert query(history.calls[0])["filter[createdAtFrom]"] == ["2026-11-14 12:00:00"]
    assert crm.find_postings(["crm:k"]) == {"crm:k": "42"}


def test_lost_answer_not_applied_is_sent_again_once(mocked: responses.RequestsMock) -> None:
    mocked.get(FEED, json=feed_page([]))
    mocked.get(f"{API}/accounts", json={"success": True, "loyaltyAccounts": [account()]})
    mocked.post(f"{API}/account/159/bonus/credit", status=502, json={"success": False, "errorMsg": "bad gw"})
    mocked.get(f"{API}/account/159/bonus/operations", json={"success": True, "bonusOperations": []})
    second = mocked.post(f"{API}/account/159/bonus/credit", json={"success": True})
    crm, _ = retailcrm()
    result = crm.write_posting(posting(), "crm:k")
    assert result.created is True
    assert form(second.calls[0])["comment"] == ["crm:k"]


def test_unknown_outcome_gives_up_after_the_configured_resends(mocked: responses.RequestsMock) -> None:
    mocked.get(FEED, json=feed_page([]))
    mocked.get(f"{API}/accounts", json={"success": True, "loyaltyAccounts": [account()]})
    mocked.post(f"{API}/account/159/bonus/credit", body=requests.ReadTimeout("slow"))
    mocked.get(f"{API}/account/159/bonus/operations", json={"success": True, "bonusOperations": []})
    crm, _ = retailcrm(retries_after_unknown=0)
    with pytest.raises(RetriableRemoteError, match="outcome unknown"):
        crm.write_posting(posting(), "crm:k")


def test_503_is_rate_limiting_waited_out_and_retried(mocked: responses.RequestsMock) -> None:
    mocked.get(FEED, json=feed_page([]))
    mocked.get(f"{API}/accounts", status=503, json={"success": False}, headers={"Retry-After": "3"})
    mocked.get(f"{API}/accounts", json={"success": True, "loyaltyAccounts": [account()]})
    refused = mocked.post(f"{API}/account/159/bonus/credit", status=503, json={"success": False})
    credit = mocked.post(f"{API}/account/159/bonus/credit", json={"success": True})
    crm, slept = retailcrm(http={"backoff_base": 0.25})
    assert crm.write_posting(posting(), "crm:k").created is True
    assert (len(refused.calls), len(credit.calls)) == (1, 1)  # a 503 POST was not applied: sent again
    assert slept[0] == 3.0
    assert len(slept) == 2


def test_refusal_is_fatal_and_names_the_crm_message(mocked: responses.RequestsMock) -> None:
    mocked.get(FEED, json=feed_page([]))
    mocked.get(f"{API}/accounts", json={"success": True, "loyaltyAccounts": [account()]})
    mocked.post(f"{API}/account/159/bonus/charge", status=400,
                json={"success": False, "errorMsg": "Not enough bonuses on the account"})  # fmt: skip
    crm, _ = retailcrm()
    with pytest.raises(FatalRemoteError, match="Not enough bonuses"):
        crm.write_posting(posting("redemption", "-500"), "crm:k")


def test_no_account_is_a_fatal_error_with_a_masked_phone(mocked: responses.RequestsMock) -> None:
    mocked.get(FEED, json=feed_page([]))
    mocked.get(f"{API}/accounts", json={"success": True, "loyaltyAccounts": []})
    crm, _ = retailcrm()
    with pytest.raises(FatalRemoteError, match="no loyalty account") as caught:
        crm.write_posting(posting(), "crm:k")
    assert "1234567" not in str(caught.value)
    # a miss is cached too
    assert crm.find_account(phone="8 916 123-45-67") is None


def test_missing_api_key_or_unknown_preset_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="api_key"):
        CrmAdapter("crm", SystemConfig(adapter="crm", base_url=CRM))
    with pytest.raises(ConfigError, match="preset"):
        CrmAdapter("crm", SystemConfig(adapter="crm", base_url=CRM, api_key="k", preset="bitrix"))


# -- RetailCRM reads --


def test_operations_read_the_feed_to_the_end_once_each_in_the_window(mocked: responses.RequestsMock) -> None:
    mocked.get(FEED, json=feed_page([operation(1, "a", created="2026-11-09 23:59:59"),
                                     operation(2, "b", created="2026-11-10 00:00:00")], "c1"))  # fmt: skip
    mocked.get(FEED, json=feed_page([operation(2, "b", created="2026-11-10 00:00:00"),
                                     operation(3, "c", amount="0.10", created="2026-11-16 23:59:59"),
                                     operation(4, "d", created="2026-11-17 00:00:00")]))  # fmt: skip
    crm, _ = retailcrm(loyalty_ids=[1, 3])
    # Moscow midnight to Moscow midnight, given in UTC
    since, until = datetime(2026, 11, 9, 21, 0, tzinfo=UTC), datetime(2026, 11, 16, 21, 0, tzinfo=UTC)

    records = list(crm.operations(since, until))

    assert [(r.id, r.entity, r.system) for r in records] == [
        ("2", "bonus_operation", "crm"),
        ("3", "bonus_operation", "crm"),
    ]
    assert records[1].payload["amount"] == "0.10"
    assert query(mocked.calls[0]) == {"limit": ["250"], "filter[loyalties][]": ["1", "3"]}
    assert query(mocked.calls[1]) == {"limit": ["250"], "filter[loyalties][]": ["1", "3"], "cursor": ["c1"]}


def test_account_balance_is_exact(mocked: responses.RequestsMock) -> None:
    mocked.get(
        f"{API}/account/159", body=b'{"success": true, "loyaltyAccount": {"id": 159, "amount": 120.10}}'
    )
    crm, _ = retailcrm()
    assert crm.account_balance("159") == Decimal("120.10")


def test_accounts_catalog_pages_through_every_account(mocked: responses.RequestsMock) -> None:
    first = [account(n, f"7916000{n:04d}") for n in range(250)]
    mocked.get(
        f"{API}/accounts",
        json={"success": True, "pagination": {"totalPageCount": 2}, "loyaltyAccounts": first},
    )
    mocked.get(f"{API}/accounts", json={"success": True, "pagination": {"totalPageCount": 2},
                                        "loyaltyAccounts": [account(999, "79990001122")]})  # fmt: skip
    crm, _ = retailcrm()
    catalog = crm.accounts_catalog()
    assert len(catalog) == 251
    assert catalog["999"] == {"phone": "+79990001122", "card": "2000000123456"}
    assert query(mocked.calls[1]) == {"limit": ["250"], "page": ["2"]}
    # accounts read for the catalog answer later lookups without a request
    assert crm.find_account(phone="+79990001122") is not None
    assert len(mocked.calls) == 2


def test_base_url_already_ending_in_api_v5_is_kept(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}/account/1", json={"success": True, "loyaltyAccount": {"amount": 0}})
    config = SystemConfig(adapter="crm", base_url=f"{CRM}/api/v5", api_key="key-abcdef")
    assert CrmAdapter("crm", config).account_balance("1") == Decimal(0)


def test_preloaded_accounts_answer_every_lookup_from_one_listing(mocked: responses.RequestsMock) -> None:
    listing = [account(159, "79161234567"), account(160, "79267654321")]
    mocked.get(
        f"{API}/accounts",
        json={"success": True, "pagination": {"totalPageCount": 1}, "loyaltyAccounts": listing},
    )
    crm, _ = retailcrm(preload_accounts=True)
    assert crm.find_account(phone="8 (916) 123-45-67") == crm.find_account(phone="+79161234567")
    found = crm.find_account(phone="+79267654321")
    assert found is not None
    assert (found.id, found.phone, found.balance) == ("160", "+79267654321", Decimal("120.5"))
    assert len(mocked.calls) == 1


def test_a_phone_that_is_not_one_is_an_input_error() -> None:
    crm, _ = retailcrm()
    with pytest.raises(InputError):
        crm.find_account(phone="12")
    with pytest.raises(InputError):
        crm.find_account()


def test_the_adapter_is_a_ledger_source_and_target() -> None:
    from adapters.base import ADAPTERS, LedgerSource, LedgerTarget, build_adapter

    config = SystemConfig(adapter="crm", base_url=CRM, api_key="key-abcdef")
    crm = build_adapter("crm", config)
    assert ADAPTERS["crm"] == "adapters.crm:CrmAdapter"
    assert isinstance(crm, LedgerSource)
    assert isinstance(crm, LedgerTarget)
    assert crm.mapping == "crm/retailcrm"


def test_adapter_options_of_the_wrong_type_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"options\.index_max_age"):
        retailcrm(index_max_age="soon")
    with pytest.raises(ConfigError, match=r"options\.retries_after_unknown"):
        retailcrm(retries_after_unknown=-1)
