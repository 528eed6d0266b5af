"""Routes → writes: keys by DESIGN §4, postings from the program, a return waiting for its sale."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.config import ConnectorConfig, Route
from connector.model import Return, Sale, parse_document
from connector.sandbox.generator import DEFAULT_PROGRAM_YAML
from connector.store import open_store
from connector.store.journal import raw_version
from connector.store.tables import utc_now
from connector.sync.context import SyncContext
from connector.sync.failures import WaitingError
from connector.sync.plan import History, JournaledReturns, plan_document
from tests.pg import isolated_schema_url, require_postgres

PHONE = "+79161234567"
TO_CRM = Route.model_validate(
    {"from": "evotor", "documents": ["sale", "return"], "to": "crm", "write": "postings"}
)
TO_1C = Route.model_validate(
    {"from": "evotor", "documents": ["sale", "return"], "to": "onec", "write": "documents"}
)


@pytest.fixture(params=["sqlite", "postgresql"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SyncContext]:
    program = yaml.safe_load(DEFAULT_PROGRAM_YAML)["program"]
    with ExitStack() as stack:
        state = f"sqlite:///{tmp_path / 's.db'}"
        if request.param == "postgresql":
            require_postgres()
            state = stack.enter_context(isolated_schema_url())
        config = ConnectorConfig.model_validate({"program": program, "state": state})
        with open_store(config.state) as store:
            yield SyncContext(config, store, utc_now())


def _doc(doc_id: str, kind: str = "sale", **extra: Any) -> Sale | Return:
    data = {
        "type": kind,
        "ref": {"system": "evotor", "kind": "receipt", "id": doc_id},
        "number": doc_id,
        "store": "s-1",
        "occurred_at": extra.pop("occurred_at", "2026-11-20T12:00:00+03:00"),
        "business_date": "2026-11-20",
        "customer": {"phone": PHONE},
        "lines": [{"line_no": 1, "sku": "A", "quantity": "1.000", "price": "1000.00", "amount": "1000.00"}],
        "total": "1000.00",
        "bonus_redeemed": extra.pop("bonus_redeemed", "0.00"),
        **extra,
    }
    return Return.model_validate(data) if kind == "return" else Sale.model_validate(data)


def _journal(ctx: SyncContext, document: Sale | Return) -> None:
    raw = {"id": document.ref.id}
    ctx.journal.upsert(
        "evotor", "receipt", document.ref.id, version=raw_version(raw), raw=raw, document=document
    )


def _entry(ctx: SyncContext, doc_id: str) -> Any:
    entry = ctx.journal.get(("evotor", doc_id))
    assert entry is not None
    return entry


def test_a_sale_becomes_its_program_postings_keyed_for_the_crm(ctx: SyncContext) -> None:
    _journal(ctx, _doc("s-1"))
    writes = plan_document(ctx, TO_CRM, _entry(ctx, "s-1"))
    assert [(w.key, w.operation, w.payload["amount"]) for w in writes] == [
        ("crm:evotor:s-1:accrual", "posting", "50.00")  # 5 % of 1000
    ]


def test_a_sale_becomes_one_receipt_keyed_for_1c(ctx: SyncContext) -> None:
    _journal(ctx, _doc("s-1"))
    (write,) = plan_document(ctx, TO_1C, _entry(ctx, "s-1"))
    assert (write.key, write.operation, write.after) == ("onec:evotor:s-1:sale", "receipt", None)
    assert write.payload["total"] == "1000.00"
    assert write.document == parse_document(write.payload)  # what is written is exactly what is recorded


def test_a_return_waits_for_its_sale_then_reverses_the_accrual(ctx: SyncContext) -> None:
    original = {"system": "evotor", "kind": "receipt", "id": "s-1"}
    _journal(ctx, _doc("r-1", "return", original=original, occurred_at="2026-11-21T10:00:00+03:00"))
    with pytest.raises(WaitingError, match="not in the journal yet"):
        plan_document(ctx, TO_CRM, _entry(ctx, "r-1"))
    (to_1c,) = plan_document(ctx, TO_1C, _entry(ctx, "r-1"))
    assert to_1c.after == "onec:evotor:s-1:sale"  # written to 1C only after its sale

    _journal(ctx, _doc("s-1"))
    writes = plan_document(ctx, TO_CRM, _entry(ctx, "r-1"))
    assert [(w.key, Decimal(w.payload["amount"])) for w in writes] == [
        ("crm:evotor:r-1:accrual_reversal", Decimal("-50.00"))
    ]


def test_postings_once_in_the_ledger_are_the_documents_postings_for_good(ctx: SyncContext) -> None:
    _journal(ctx, _doc("s-1"))
    first = plan_document(ctx, TO_CRM, _entry(ctx, "s-1"))
    ctx.store.ledger.append_many([w.posting for w in first if w.posting])
    # An earlier sale of the same customer appears late: the tier could change, the booked posting does not.
    _journal(ctx, _doc("s-0", occurred_at="2026-11-01T12:00:00+03:00", total="99000.00",
                       lines=[{"line_no": 1, "sku": "A", "quantity": "1.000", "price": "99000.00",
                               "amount": "99000.00"}]))  # fmt: skip
    again = plan_document(ctx, TO_CRM, _entry(ctx, "s-1"))
    assert [w.payload for w in again] == [w.payload for w in first]


def test_drafts_and_deleted_documents_are_not_written(ctx: SyncContext) -> None:
    _journal(ctx, _doc("d-1", status="draft"))
    _journal(ctx, _doc("d-2", status="deleted"))
    assert plan_document(ctx, TO_1C, _entry(ctx, "d-1")) == []
    assert plan_document(ctx, TO_CRM, _entry(ctx, "d-2")) == []


def _line(amount: str) -> dict[str, Any]:
    return {"line_no": 1, "sku": "A", "quantity": "1.000", "price": amount, "amount": amount}


def test_a_partition_planned_from_its_history_gets_the_writes_planned_one_by_one(ctx: SyncContext) -> None:
    other = "+79169876543"
    sale = {"system": "evotor", "kind": "receipt", "id": "s-2"}
    documents = [
        _doc("s-0", occurred_at="2026-11-01T12:00:00+03:00", total="40000.00", lines=[_line("40000.00")]),
        _doc("s-1", occurred_at="2026-11-20T09:00:00+03:00"),
        _doc("s-2", occurred_at="2026-11-20T10:00:00+03:00", total="3000.00", lines=[_line("3000.00")],
             bonus_redeemed="100.00"),
        _doc("s-3", occurred_at="2026-11-20T11:00:00+03:00", customer={"phone": other}),
        _doc("s-4", occurred_at="2026-11-20T11:30:00+03:00", customer=None),
        _doc("x-1", occurred_at="2026-11-19T11:30:00+03:00", status="draft", total="9000.00",
             lines=[_line("9000.00")]),
        # two returns of s-2: one by the customer, an earlier one without the card (it still counts)
        _doc("r-1", "return", original=sale, occurred_at="2026-11-20T15:00:00+03:00", customer=None),
        _doc("r-2", "return", original=sale, occurred_at="2026-11-20T16:00:00+03:00", total="2000.00",
             lines=[_line("2000.00")]),
        _doc("r-3", "return", original={**sale, "id": "s-4"}, occurred_at="2026-11-20T17:00:00+03:00",
             customer=None),
        _doc("r-4", "return", original={**sale, "id": "s-9"}, occurred_at="2026-11-20T18:00:00+03:00"),
    ]  # fmt: skip
    for document in documents:
        _journal(ctx, document)
    entries = [_entry(ctx, document.ref.id) for document in documents]
    history = History.load(ctx, TO_CRM, entries)
    shared = History.load(
        ctx, TO_CRM, entries, JournaledReturns(ctx, "evotor")
    )  # the route's returns read once

    def planned(entry: Any, given: History | None) -> Any:
        try:
            return [(w.key, w.payload) for w in plan_document(ctx, TO_CRM, entry, given)]
        except WaitingError as exc:
            return str(exc)

    one_by_one = {entry.ref.id: planned(entry, None) for entry in entries}
    assert {entry.ref.id: planned(entry, history) for entry in entries} == one_by_one
    assert {entry.ref.id: planned(entry, shared) for entry in entries} == one_by_one
    assert "not in the journal yet" in one_by_one["r-4"]
    # the rest of s-2's accrual (203 - 67), only when r-1 (without the card) is counted as returned before
    reversal = one_by_one["r-2"][0]
    assert (reversal[0], reversal[1]["amount"]) == ("crm:evotor:r-2:accrual_reversal", "-136.00")
    # the tier of s-1 comes from s-0's 40,000 of spend (7 % instead of 5 %)
    assert one_by_one["s-1"][0][1]["amount"] == "70.00"


def test_booked_postings_are_read_from_the_ledger_through_the_history(ctx: SyncContext) -> None:
    _journal(ctx, _doc("s-1"))
    entries = [_entry(ctx, "s-1")]
    first = plan_document(ctx, TO_CRM, entries[0], History.load(ctx, TO_CRM, entries))
    ctx.store.ledger.append_many([w.posting for w in first if w.posting])
    history = History.load(ctx, TO_CRM, entries)
    assert history.ledger_keys == {"s-1": [("crm:evotor:s-1:accrual", None)]}
    assert [p.key for p in history.booked(entries[0].ref)] == ["evotor:s-1:accrual"]
