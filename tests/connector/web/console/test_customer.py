"""The customer view: accounts from any spelling, documents side by side, balances, expectations."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connector.store import Store
from connector.store.tables import JournalDocument
from connector.web.console.customer import LinkedRef, account_for, customer_view

from ..seed import ANNA, BORIS, NOW, Seeded, console_config


@pytest.mark.parametrize(
    ("query", "account"),
    [
        ("8 (916) 123-45-67", ANNA),
        ("+7 916 123 45 67", ANNA),
        ("79161234567", ANNA),
        ("9161234567", ANNA),
        ("2000123", "card:2000123"),
        ("4600000000017", "card:4600000000017"),
        ("card:77", "card:77"),
    ],
)
def test_account_for_a_search(query: str, account: str) -> None:
    assert account_for(query) == account


def test_anna_missing_accrual_is_expected_found_nowhere_and_touches_her_failure(
    store: Store, seeded: Seeded
) -> None:
    view = customer_view(store, console_config(str(store.engine.url)), ANNA, NOW)
    assert view.systems == ["evotor", "onec"]
    assert [sorted(row) for row in view.documents] == [["evotor", "onec"]]
    assert view.documents[0]["onec"].number == "0000-1042"
    assert [(e.posting.kind, e.posting.amount, e.found) for e in view.expected] == [
        ("accrual", Decimal("61.00"), {})
    ]
    assert [d.kind for d in view.discrepancies] == ["missing_accrual"]
    assert [f.id for f in view.failures] == [seeded.anna_failure]
    zero = Decimal("0.00")
    assert {system: (b.total, b.available) for system, b in view.balances.items()} == {
        "connector": (zero, zero),
        "crm": (zero, zero),
    }, "a ledger without the customer's postings shows zero, not nothing"


def test_boris_postings_side_by_side_with_pending_balances(store: Store, seeded: Seeded) -> None:
    view = customer_view(store, console_config(str(store.engine.url)), BORIS, NOW)
    assert sorted(view.postings) == ["connector", "crm"]
    rows = view.posting_rows()
    assert [(kind, sorted(cells)) for _, kind, cells in rows] == [("accrual", ["connector", "crm"])]
    crm = view.balances["crm"]
    assert (crm.total, crm.pending, crm.available) == (Decimal("40.00"), Decimal("40.00"), Decimal("0.00"))
    assert [e.found for e in view.expected] == [{"connector": Decimal("40.00"), "crm": Decimal("40.00")}]
    assert [d.kind for d in view.discrepancies] == ["balance_mismatch"]
    assert [f.id for f in view.failures] == [seeded.boris_failure]


def test_unknown_customer_is_not_found(store: Store, seeded: Seeded) -> None:
    view = customer_view(store, console_config(str(store.engine.url)), "+79990000000", NOW)
    assert not view.found


def test_a_copy_known_only_by_cross_reference_is_shown_as_linked(store: Store, seeded: Seeded) -> None:
    # The receipt was written to 1C (the cross-reference says so) but not read back into the journal yet.
    with store.transaction() as session:
        session.query(JournalDocument).filter_by(system="onec", number="0000-1042").delete()
    view = customer_view(store, console_config(str(store.engine.url)), ANNA, NOW)
    (row,) = view.documents
    assert row["evotor"].source_id == seeded.anna_sale
    assert row["onec"] == LinkedRef("onec", "cheque", "9a0f1c2e-0001-11ef-8a4b-005056b1c2d3")
