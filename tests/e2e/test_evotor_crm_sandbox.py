"""The Evotor and CRM adapters against the emulated Evotor cloud and RetailCRM over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from adapters.crm import CrmAdapter
from adapters.evotor import EvotorAdapter
from connector.config import SystemConfig
from connector.mapping import load_mapping
from connector.model import Posting, Return, Sale
from connector.sandbox.crm import DEFAULT_API_KEY, build_crm_app
from connector.sandbox.evotor import DEFAULT_TOKEN, build_evotor_app
from connector.sandbox.faults import FaultInjector, faults_middleware
from connector.sandbox.generator import SandboxOptions, generate_world
from connector.sandbox.world import World
from tests.connector.sandbox._servers import serve


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(SandboxOptions(seed=11, stores=2, days=9, receipts=12, start=date(2026, 11, 1)))


@pytest.fixture(scope="module")
def evotor_url(world: World) -> Iterator[str]:
    with serve(build_evotor_app(world, page_size=10, rate_per_second=0)) as url:
        yield url


@pytest.fixture(scope="module")
def evotor_dup_url(world: World) -> Iterator[str]:
    app = faults_middleware(build_evotor_app(world, page_size=10, rate_per_second=0),
                            FaultInjector("evotor:dup=1"), "evotor")  # fmt: skip
    with serve(app) as url:
        yield url


@pytest.fixture
def crm_url(world: World) -> Iterator[str]:
    """A fresh CRM per test: its ledger starts from the world's operations."""
    with serve(build_crm_app(world, rate_per_second=0)) as url:
        yield url


def _week(world: World) -> tuple[str, datetime, datetime, list[str]]:
    store = world.stores[1]  # Samara: the window is the store's local week
    zone = ZoneInfo(store.timezone)
    since = datetime(2026, 11, 2, tzinfo=zone)
    until = since + timedelta(days=7)
    expected = [r.id for r in world.receipts if r.store_id == store.id and since <= r.occurred_at < until]
    return store.id, since, until, expected


def _evotor(url: str, auth_header: str = "both") -> EvotorAdapter:
    config = SystemConfig(
        adapter="evotor", base_url=url, token=DEFAULT_TOKEN, options={"auth_header": auth_header}
    )
    return EvotorAdapter("evotor", config)


@pytest.mark.parametrize("auth_header", ["x-authorization", "bearer"])
def test_a_week_for_a_store_is_exactly_what_the_world_holds(
    world: World, evotor_url: str, auth_header: str
) -> None:
    store, since, until, expected = _week(world)
    evotor = _evotor(evotor_url, auth_header)

    records = list(evotor.documents(store, since, until))

    assert len(expected) > 20  # several pages of 10
    assert sorted(r.id for r in records) == sorted(expected)
    assert len({r.id for r in records}) == len(records)
    kinds = {r.id: r.entity for r in records}
    assert all(
        kinds[r.id] == ("SELL" if r.kind == "sale" else "PAYBACK") for r in world.receipts if r.id in kinds
    )
    assert set(evotor.stores()) == {s.id for s in world.stores}


def test_with_the_dup_fault_no_document_comes_twice(world: World, evotor_dup_url: str) -> None:
    store, since, until, expected = _week(world)
    records = list(_evotor(evotor_dup_url).documents(store, since, until))
    assert [r.id for r in records] == sorted(expected, key=[r.id for r in records].index)
    assert sorted(r.id for r in records) == sorted(expected)


def test_read_documents_map_to_the_world_totals(world: World, evotor_url: str) -> None:
    store, since, until, _ = _week(world)
    mapping = load_mapping("evotor/v2")
    receipts = {r.id: r for r in world.receipts}
    for record in _evotor(evotor_url).documents(store, since, until):
        document = mapping.map(record.payload, system="evotor")
        assert isinstance(document, Sale | Return)
        assert document.ref is not None
        assert document.ref.id == record.id
        assert sum(line.amount for line in document.lines) == receipts[record.id].total


# -- CRM --


def _crm(url: str, session: requests.Session | None = None) -> CrmAdapter:
    config = SystemConfig(adapter="crm", preset="retailcrm", base_url=url, api_key=DEFAULT_API_KEY)
    return CrmAdapter("crm", config, session=session)


def _posting(world: World, key: str, amount: str, kind: str = "accrual", **extra: Any) -> Posting:
    return Posting(key=key, account=world.customers[0].phone, kind=kind, amount=Decimal(amount),  # type: ignore[arg-type]
                   occurred_at=datetime.now(UTC), status="active", **extra)  # fmt: skip


def _history(url: str, account_id: int) -> list[dict[str, Any]]:
    """The account history as the CRM serves it, read independently of the adapter."""
    response = requests.get(f"{url}/api/v5/loyalty/account/{account_id}/bonus/operations",
                            params={"limit": 250}, headers={"X-API-KEY": DEFAULT_API_KEY}, timeout=10)  # fmt: skip
    response.raise_for_status()
    operations: list[dict[str, Any]] = response.json(parse_float=Decimal)["bonusOperations"]
    return operations


def test_a_credit_is_written_once_and_read_back_from_history_and_feed(world: World, crm_url: str) -> None:
    crm = _crm(crm_url)
    customer = world.customers[0]
    balance_before = crm.account_balance(str(customer.crm_account_id))
    key = "crm:evotor:e2e-sale-1:accrual"
    started = datetime.now(UTC) - timedelta(minutes=1)

    result = crm.write_posting(_posting(world, key, "37.45"), key)
    again = crm.write_posting(_posting(world, key, "37.45"), key)

    assert (result.created, again.created) == (True, False)
    written = [op for op in _history(crm_url, customer.crm_account_id) if op["comment"] == key]
    assert [(op["type"], op["amount"]) for op in written] == [("credit_manual", Decimal("37.45"))]
    from_feed = [r for r in crm.operations(started, datetime.now(UTC) + timedelta(minutes=1))
                 if r.payload["comment"] == key]  # fmt: skip
    assert [(r.payload["amount"], r.payload["loyaltyAccount"]["id"]) for r in from_feed] == [
        (Decimal("37.45"), customer.crm_account_id)
    ]
    assert crm.account_balance(str(customer.crm_account_id)) == balance_before + Decimal("37.45")
    assert crm.find_postings([key, "crm:never"]) == {key: from_feed[0].id}
    catalogs = {"accounts": crm.accounts_catalog()}
    mapped = load_mapping("crm/retailcrm").map(from_feed[0].payload, system="crm", catalogs=catalogs)
    assert isinstance(mapped, Posting)
    assert (mapped.key, mapped.kind, mapped.amount, mapped.account) == (
        "evotor:e2e-sale-1:accrual", "accrual", Decimal("37.45"), customer.phone)  # fmt: skip


def test_a_pending_credit_carries_its_activation_and_expiry_dates(world: World, crm_url: str) -> None:
    crm = _crm(crm_url)
    key = "crm:evotor:e2e-sale-2:accrual"
    today = datetime.now(ZoneInfo("Europe/Moscow")).replace(hour=12, minute=0, second=0, microsecond=0)
    crm.write_posting(_posting(world, key, "10.00", available_at=today + timedelta(days=14),
                               expires_at=today + timedelta(days=200)), key)  # fmt: skip
    (written,) = [op for op in _history(crm_url, world.customers[0].crm_account_id) if op["comment"] == key]
    assert written["bonus"] == {"activationDate": (today + timedelta(days=14)).date().isoformat(),
                                "expireDate": (today + timedelta(days=200)).date().isoformat()}  # fmt: skip


class _LosesFirstAnswer(requests.Session):
    """Sends every request, but drops the answer of the first credit: the CRM applied it, the client never knew."""

    def __init__(self) -> None:
        super().__init__()
        self.posts = 0

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().request(method, url, *args, **kwargs)
        if str(method).upper() == "POST":
            self.posts += 1
            if self.posts == 1:
                raise requests.ConnectionError("connection reset before the response arrived")
        return response


def test_a_write_whose_answer_was_lost_is_not_applied_twice(world: World, crm_url: str) -> None:
    session = _LosesFirstAnswer()
    crm = _crm(crm_url, session)
    key = "crm:evotor:e2e-sale-3:accrual"

    result = crm.write_posting(_posting(world, key, "12.34"), key)
    retried = _crm(crm_url).write_posting(_posting(world, key, "12.34"), key)  # the outbox retries later

    assert (result.created, retried.created) == (True, False)
    assert session.posts == 1
    written = [op for op in _history(crm_url, world.customers[0].crm_account_id) if op["comment"] == key]
    assert [op["amount"] for op in written] == [Decimal("12.34")]
    assert retried.remote_id == result.remote_id == str(written[0]["id"])


def test_a_charge_takes_points_away(world: World, crm_url: str) -> None:
    crm = _crm(crm_url)
    account_id = str(world.customers[0].crm_account_id)
    crm.write_posting(_posting(world, "crm:e2e:seed:welcome", "100.00", "welcome"), "crm:e2e:seed:welcome")
    before = crm.account_balance(account_id)
    crm.write_posting(
        _posting(world, "crm:e2e:spend:redemption", "-40.00", "redemption"), "crm:e2e:spend:redemption"
    )
    assert crm.account_balance(account_id) == before - Decimal("40.00")


def test_the_feed_with_the_dup_fault_yields_each_operation_once(world: World) -> None:
    app = faults_middleware(build_crm_app(world, rate_per_second=0), FaultInjector("crm:dup=1"), "crm")
    with serve(app) as url:
        config = SystemConfig(
            adapter="crm", base_url=url, api_key=DEFAULT_API_KEY, options={"feed_limit": 20}
        )
        crm = CrmAdapter("crm", config)
        records = list(crm.operations(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)))
        keys = crm.find_postings(op.comment for op in world.crm_operations)
    assert len(world.crm_operations) > 100  # several pages of 20
    assert sorted(int(r.id) for r in records) == sorted(op.id for op in world.crm_operations)
    assert set(keys) == {op.comment for op in world.crm_operations if op.comment}
    assert any(key.startswith("crm:evotor:") for key in keys)
