"""The sandbox server: one port for every system, its controls, and the answer key checked against the wire.

Everything here goes through plain ``requests``, as an independent client would.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
import requests
import yaml

from connector.program import Program
from connector.sandbox.answer_key import DISCREPANCY_KINDS
from connector.sandbox.generator import SandboxOptions
from connector.sandbox.server import CRM_API_KEY, EVOTOR_TOKEN, ONEC_PASSWORD, ONEC_USER, SandboxServer
from connector.sandbox.world import World

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
_TIMEOUT = 30


def _json(response: requests.Response) -> Any:
    assert response.status_code == 200, response.text[:300]
    return json.loads(response.content, parse_float=Decimal)


def test_health_info_and_program(sandbox: SandboxServer) -> None:
    health = _json(requests.get(f"{sandbox.base_url}/__sandbox/health", timeout=_TIMEOUT))
    assert health["status"] == "ok"
    assert health["receipts"] == len(sandbox.world.receipts)
    info = _json(requests.get(f"{sandbox.base_url}/__sandbox/info", timeout=_TIMEOUT))
    assert info["systems"]["onec_ut"] == {
        "url": f"{sandbox.base_url}/1c/ut/odata/standard.odata/",
        "user": "exchange",
        "password": "exchange",
    }
    assert info["systems"]["evotor"] == {"url": f"{sandbox.base_url}/evotor", "token": "sandbox-evotor-token"}
    assert info["systems"]["crm"] == {"url": f"{sandbox.base_url}/crm", "api_key": "sandbox-crm-key"}
    text = requests.get(f"{sandbox.base_url}/__sandbox/program", timeout=_TIMEOUT).text
    program = Program.model_validate(yaml.safe_load(text)["program"])
    assert program.redemption.max_share_percent == Decimal("30")
    served_key = _json(requests.get(f"{sandbox.base_url}/__sandbox/answer-key", timeout=_TIMEOUT))
    assert served_key == json.loads(json.dumps([e.as_json() for e in sandbox.world.answer_key]))


def test_every_system_answers_with_its_credentials_and_refuses_without(sandbox: SandboxServer) -> None:
    base = sandbox.base_url
    onec = f"{base}/1c/ut/odata/standard.odata/Catalog_Партнеры?$format=json"
    assert requests.get(onec, auth=(ONEC_USER, ONEC_PASSWORD), timeout=_TIMEOUT).status_code == 200
    assert requests.get(onec, timeout=_TIMEOUT).status_code == 401
    retail = f"{base}/1c/retail/odata/standard.odata/Catalog_ИнформационныеКарты?$format=json"
    assert len(
        _json(requests.get(retail, auth=(ONEC_USER, ONEC_PASSWORD), timeout=_TIMEOUT))["value"]
    ) == len(sandbox.world.customers)
    wsdl = requests.get(
        f"{base}/1c/ut/ws/LoyaltyExchange.1cws?wsdl", auth=(ONEC_USER, ONEC_PASSWORD), timeout=30
    )
    assert wsdl.status_code == 200
    assert b"http://localhost/rt2discountservice" in wsdl.content
    stores = requests.get(
        f"{base}/evotor/stores", headers={"Authorization": f"Bearer {EVOTOR_TOKEN}"}, timeout=30
    )
    assert {s["id"] for s in _json(stores)["items"]} == {s.id for s in sandbox.world.stores}
    assert requests.get(f"{base}/evotor/stores", timeout=_TIMEOUT).status_code == 401
    crm = f"{base}/crm/api/v5/loyalty/accounts?limit=100"
    assert _json(requests.get(crm, headers={"X-API-KEY": CRM_API_KEY}, timeout=_TIMEOUT))["success"] is True
    assert requests.get(crm, timeout=_TIMEOUT).status_code in (401, 403)


def test_faults_change_at_run_time(sandbox: SandboxServer) -> None:
    stores = f"{sandbox.base_url}/evotor/stores"
    headers = {"X-Authorization": EVOTOR_TOKEN}
    faults = f"{sandbox.base_url}/__sandbox/faults"
    assert requests.get(stores, headers=headers, timeout=_TIMEOUT).status_code == 200
    changed = requests.post(faults, json={"spec": "evotor:503=1"}, timeout=_TIMEOUT)
    assert _json(changed)["spec"] == "evotor:503=1"
    refused = requests.get(stores, headers=headers, timeout=_TIMEOUT)
    assert refused.status_code == 503
    crm = f"{sandbox.base_url}/crm/api/v5/loyalty/accounts"
    assert requests.get(crm, headers={"X-API-KEY": CRM_API_KEY}, timeout=_TIMEOUT).status_code == 200
    bad = requests.post(faults, json={"spec": "evotor:teapot=1"}, timeout=_TIMEOUT)
    assert bad.status_code == 400
    assert "teapot" in bad.json()["error"]
    assert _json(requests.get(faults, timeout=_TIMEOUT))["spec"] == "evotor:503=1"
    assert _json(requests.get(faults, timeout=_TIMEOUT))["injected"]["evotor:503"] >= 1
    requests.post(faults, json={"spec": ""}, timeout=_TIMEOUT)
    assert requests.get(stores, headers=headers, timeout=_TIMEOUT).status_code == 200


def test_in_process_servers_stop_and_free_their_port(sandbox_factory: Any) -> None:
    server = sandbox_factory(SandboxOptions(stores=1, days=1, receipts=5), faults="crm:500=1")
    assert requests.get(f"{server.base_url}/crm/api/v5/loyalty/accounts", timeout=_TIMEOUT).status_code == 500
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.base_url}/__sandbox/health", timeout=5)


class _Wire:
    """What the running sandbox serves, read through its public APIs only."""

    def __init__(self, sandbox: SandboxServer) -> None:
        self.base, self.world = sandbox.base_url, sandbox.world
        self.evotor = {
            doc["id"]: doc for store in self.world.stores for doc in self._evotor_documents(store.id)
        }
        self.sales = self._onec("Document_ЧекККМ")
        self.returns = self._onec("Document_ЧекККМВозврат")
        self.bonus = self._onec("Document_НачислениеИСписаниеБонусныхБаллов")
        self.onec_by_ref = {row["Ref_Key"]: row for row in [*self.sales, *self.returns, *self.bonus]}
        self.onec_by_comment: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self.onec_by_ref.values():
            self.onec_by_comment[row["Комментарий"]].append(row)
        self.crm = self._crm_operations()
        self.crm_by_id = {str(op["id"]): op for op in self.crm}
        self.crm_by_comment: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for op in self.crm:
            self.crm_by_comment[op.get("comment", "")].append(op)

    def _evotor_documents(self, store: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"type": "SELL,PAYBACK"}
        for _ in range(1000):
            page = _json(
                requests.get(
                    f"{self.base}/evotor/stores/{store}/documents",
                    params=params,
                    headers={"X-Authorization": EVOTOR_TOKEN},
                    timeout=_TIMEOUT,
                )
            )
            items += page["items"]
            if "next_cursor" not in page["paging"]:
                return items
            params = {"cursor": page["paging"]["next_cursor"]}
        raise AssertionError("the Evotor cursor never ended")

    def _onec(self, entity_set: str) -> list[dict[str, Any]]:
        url = f"{self.base}/1c/ut/odata/standard.odata/{entity_set}?$format=json"
        rows: list[dict[str, Any]] = _json(
            requests.get(url, auth=(ONEC_USER, ONEC_PASSWORD), timeout=_TIMEOUT)
        )["value"]
        return rows

    def _crm_operations(self) -> list[dict[str, Any]]:
        operations: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 250}
        for _ in range(1000):
            body = _json(
                requests.get(
                    f"{self.base}/crm/api/v5/loyalty/bonus/operations",
                    params=params,
                    headers={"X-API-KEY": CRM_API_KEY},
                    timeout=_TIMEOUT,
                )
            )
            operations += body["bonusOperations"]
            if not body["pagination"].get("nextCursor"):
                return operations
            params = {"limit": 250, "cursor": body["pagination"]["nextCursor"]}
        raise AssertionError("the CRM cursor never ended")

    def body(self, receipt_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.evotor[receipt_id]["body"]
        return body

    def phone(self, receipt_id: str) -> str | None:
        raw = self.body(receipt_id).get("customer_phone")
        return f"+{raw}".replace("++", "+") if raw else None

    def partner(self, receipt_id: str) -> str:
        phone = self.phone(receipt_id)
        return next((c.onec_partner_ref for c in self.world.customers if c.phone == phone), EMPTY_GUID)

    def products(self, receipt_id: str) -> list[str]:
        onec = {p.evotor_id: p.onec_ref for p in self.world.products}
        positions = [item.get("position", item) for item in self.body(receipt_id)["positions"]]
        return [onec[position["product_id"]] for position in positions]

    def onec_receipt(self, receipt_id: str) -> dict[str, Any]:
        kind = "sale" if self.evotor[receipt_id]["type"] == "SELL" else "return"
        (row,) = self.onec_by_comment[f"onec:evotor:{receipt_id}:{kind}"]
        return row


@pytest.fixture(scope="module")
def wire(sandbox_session: SandboxServer) -> _Wire:
    return _Wire(sandbox_session)


def _check(wire: _Wire, kind: str, refs: dict[str, str]) -> None:
    if kind == "missing_in_right":
        assert refs["evotor"] in wire.evotor
        assert not wire.onec_by_comment[f"onec:evotor:{refs['evotor']}:sale"]
    elif kind == "missing_in_left":
        row = wire.onec_by_ref[refs["onec"]]
        assert row["Комментарий"].split(":")[2] not in wire.evotor
    elif kind in {"amount_mismatch", "line_mismatch", "customer_mismatch"}:
        row = wire.onec_by_ref[refs["onec"]]
        assert row is wire.onec_receipt(refs["evotor"])
        evotor_total = wire.body(refs["evotor"])["result_sum"]
        onec_total = sum(line["Сумма"] for line in row["Товары"])
        if kind == "amount_mismatch":
            assert abs(onec_total - evotor_total) > Decimal("0.01")
        elif kind == "line_mismatch":
            assert onec_total == evotor_total
            assert [line["Номенклатура_Key"] for line in row["Товары"]] != wire.products(refs["evotor"])
        else:
            assert row["Партнер_Key"] != wire.partner(refs["evotor"])
    elif kind in {"missing_accrual", "missing_reversal"}:
        assert refs["evotor"] in wire.evotor
        assert not wire.crm_by_comment[f"crm:{refs['key']}"]
        assert not wire.onec_by_comment[f"onec:{refs['key']}"]
    elif kind == "accrual_mismatch":
        (op,) = wire.crm_by_comment[f"crm:{refs['key']}"]
        assert str(op["id"]) == refs["crm"]
        assert str(op["loyaltyAccount"]["id"]) == refs["crm_account"]
    elif kind == "duplicate_posting":
        ops = wire.crm_by_comment[f"crm:{refs['key']}"]
        assert len(ops) == 2
        assert str(max(op["id"] for op in ops)) == refs["crm"]
        assert len(wire.onec_by_comment[f"onec:{refs['key']}"]) == 2
    elif kind == "orphan_posting":
        assert wire.crm_by_id[refs["crm"]]["comment"] == f"crm:{refs['key']}"
        assert wire.phone(refs["evotor"]) is None
        assert wire.onec_by_ref[refs["onec"]]["Комментарий"] == f"onec:{refs['key']}"
    elif kind == "redemption_over_limit":
        assert wire.crm_by_id[refs["crm"]]["comment"] == f"crm:{refs['key']}"
        payments = [item.get("payment", item) for item in wire.body(refs["evotor"])["payments"]]
        assert any("app_payment" in payment for payment in payments)
    elif kind == "return_without_sale":
        assert wire.evotor[refs["evotor"]]["type"] == "PAYBACK"
        assert not wire.body(refs["evotor"]).get("base_document_id")
        assert wire.onec_by_ref[refs["onec"]]["ЧекККМ_Key"] == EMPTY_GUID
    else:
        assert kind == "balance_mismatch"
        document = wire.onec_by_ref[refs["onec"]]
        assert not document["Комментарий"].startswith("onec:")
        assert document["Начисление"][0]["Партнер_Key"] == refs["onec_partner"]


def test_the_answer_key_is_what_the_systems_serve(wire: _Wire) -> None:
    assert {entry.kind for entry in wire.world.answer_key} == set(DISCREPANCY_KINDS)
    for entry in wire.world.answer_key:
        _check(wire, entry.kind, entry.refs)


def test_natural_data_agree_across_systems(wire: _Wire) -> None:
    """Receipts no entry names have one 1C receipt with the same total, products and customer."""
    named = {ref for entry in wire.world.answer_key for ref in entry.refs.values()}
    checked = 0
    for receipt_id in wire.evotor:
        if receipt_id in named:
            continue
        row = wire.onec_receipt(receipt_id)
        assert sum(line["Сумма"] for line in row["Товары"]) == wire.body(receipt_id)["result_sum"]
        assert [line["Номенклатура_Key"] for line in row["Товары"]] == wire.products(receipt_id)
        assert row["Партнер_Key"] == wire.partner(receipt_id)
        checked += 1
    assert checked > 700


def test_a_clean_world_serves_no_ledger(sandbox_factory: Any) -> None:
    server = sandbox_factory(SandboxOptions(stores=2, days=2, receipts=20, clean=True))
    world: World = server.world
    auth = (ONEC_USER, ONEC_PASSWORD)
    for entity_set in (
        "Document_ЧекККМ",
        "Document_ЧекККМВозврат",
        "Document_НачислениеИСписаниеБонусныхБаллов",
    ):
        url = f"{server.base_url}/1c/ut/odata/standard.odata/{entity_set}?$format=json"
        assert _json(requests.get(url, auth=auth, timeout=_TIMEOUT))["value"] == []
    partners = f"{server.base_url}/1c/ut/odata/standard.odata/Catalog_Партнеры?$format=json"
    assert len(_json(requests.get(partners, auth=auth, timeout=_TIMEOUT))["value"]) >= len(world.customers)
    feed = f"{server.base_url}/crm/api/v5/loyalty/bonus/operations?limit=20"
    assert (
        _json(requests.get(feed, headers={"X-API-KEY": CRM_API_KEY}, timeout=_TIMEOUT))["bonusOperations"]
        == []
    )
    store = world.stores[0].id
    documents = requests.get(
        f"{server.base_url}/evotor/stores/{store}/documents",
        headers={"X-Authorization": EVOTOR_TOKEN},
        timeout=30,
    )
    assert len(_json(documents)["items"]) == sum(1 for r in world.receipts if r.store_id == store)


def test_a_clean_world_with_opening_balances_lets_a_sync_charge_the_redemptions(sandbox_factory: Any) -> None:
    server = sandbox_factory(SandboxOptions(stores=2, days=2, receipts=30, clean=True, opening_balances=True))
    world: World = server.world
    assert world.crm_operations
    assert all(op.type == "credit" and not op.comment.startswith("crm:") for op in world.crm_operations)
    assert world.onec_bonus_documents == []
    assert world.onec_receipts == []
    redemptions = [r for r in world.receipts if r.kind == "sale" and r.bonus_redeemed]
    assert redemptions
    session = requests.Session()
    session.headers["X-API-KEY"] = CRM_API_KEY
    accounts = {c.phone: c.crm_account_id for c in world.customers}
    for sale in sorted(redemptions, key=lambda r: r.occurred_at):
        charged = session.post(
            f"{server.base_url}/crm/api/v5/loyalty/account/{accounts[sale.customer_phone]}/bonus/charge",
            data={"amount": str(sale.bonus_redeemed), "comment": f"crm:evotor:{sale.id}:redemption"},
            timeout=_TIMEOUT,
        )
        assert charged.status_code == 200, charged.text
