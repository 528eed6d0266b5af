"""The compare stage on hand-built snapshots: one case per discrepancy kind, tolerance edges, fix keys."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import yaml

from connector.config import ReconcileSpec
from connector.discrepancies import Discrepancy
from connector.model import Customer, DocRef, Line, Payment, Return, Sale
from connector.program import Program
from connector.reconcile.compare import compare_snapshot
from connector.reconcile.model import DocRecord, LedgerEntry, LedgerSide, Snapshot, line_signature
from connector.sandbox.generator import DEFAULT_PROGRAM_YAML

PROGRAM = Program.model_validate(yaml.safe_load(DEFAULT_PROGRAM_YAML)["program"])
MSK = timezone(timedelta(hours=3))
DAY = date(2026, 11, 2)
PHONE = "+79161234567"
STORE = "store-1"
DOCS = ReconcileSpec(name="docs", left="evotor", right="onec", tolerance=Decimal("0.01"))
LEDGER = ReconcileSpec(name="ledger", documents="evotor", ledger="crm", tolerance=Decimal("0.01"))


def sale(doc_id: str, amount: str = "1000.00", *, phone: str | None = PHONE, redeemed: str = "0.00",
         category: str = "dairy", hour: int = 12) -> Sale:  # fmt: skip
    value, paid = Decimal(amount), Decimal(redeemed)
    payments = [Payment(method="card", amount=value - paid)] + (
        [Payment(method="bonus", amount=paid)] if paid else []
    )
    return Sale(
        ref=DocRef(system="evotor", kind="receipt", id=doc_id),
        number=doc_id[-3:],
        store=STORE,
        occurred_at=datetime(2026, 11, 2, hour, tzinfo=MSK),
        business_date=DAY,
        customer=Customer(phone=phone) if phone else None,
        lines=(
            Line(line_no=1, sku="A-1", category=category, quantity=Decimal(1), price=value, amount=value),
        ),
        payments=tuple(payments),
        total=value,
        bonus_redeemed=paid,
    )


def refund(doc_id: str, original: str | None, amount: str = "1000.00") -> Return:
    value = Decimal(amount)
    return Return(
        ref=DocRef(system="evotor", kind="receipt", id=doc_id),
        number=doc_id[-3:],
        store=STORE,
        occurred_at=datetime(2026, 11, 2, 18, tzinfo=MSK),
        business_date=DAY,
        customer=Customer(phone=PHONE),
        lines=(Line(line_no=1, sku="A-1", category="dairy", quantity=Decimal(1), price=value, amount=value),),
        payments=(Payment(method="card", amount=value),),
        total=value,
        original=DocRef(system="evotor", kind="receipt", id=original) if original else None,
    )


def record(document: Sale | Return, system: str = "evotor", **changes: object) -> DocRecord:
    fields: dict[str, object] = {
        "system": system, "id": document.ref.id if system == "evotor" else f"1c-{document.ref.id}",
        "kind": document.type, "store": document.store, "business_date": document.business_date,
        "occurred_at": document.occurred_at, "number": document.number, "total": document.total,
        "account": document.account, "lines": line_signature(document),
        "external_key": None if system == "evotor" else f"onec:evotor:{document.ref.id}:{document.type}",
    }  # fmt: skip
    return DocRecord(**{**fields, **changes})  # type: ignore[arg-type]


def op(op_id: str, key: str, amount: str, system: str = "crm", account: str = PHONE) -> LedgerEntry:
    return LedgerEntry(system, op_id, key, key.rsplit(":", 1)[-1], Decimal(amount), account, None,
                       datetime(2026, 11, 2, 13, tzinfo=MSK) + timedelta(minutes=int(op_id[-2:])))  # fmt: skip


def side(system: str, *entries: LedgerEntry) -> LedgerSide:
    label = "account" if system == "crm" else "partner"
    return LedgerSide(system, label, list(entries), holders={PHONE: "101" if system == "crm" else "p-1"})


def run(documents: list[Sale | Return], right: list[DocRecord] | None = None, crm: LedgerSide | None = None,
        onec: LedgerSide | None = None, specs: tuple[ReconcileSpec, ...] = (DOCS, LEDGER)) -> list[Discrepancy]:  # fmt: skip
    snapshot = Snapshot(DAY, DAY, [STORE])
    snapshot.documents["evotor"] = [record(d) for d in documents]
    snapshot.documents["onec"] = right if right is not None else [record(d, "onec") for d in documents]
    snapshot.canonical["evotor"] = documents
    snapshot.ledgers["crm"] = crm or side("crm")
    snapshot.ledgers["onec"] = onec or side("onec", *(snapshot.ledgers["crm"].entries and []))
    return compare_snapshot(snapshot, specs, program=PROGRAM, mirrors={"crm": ["onec"]}, today=DAY)


def accrual_ops(doc_id: str, points: str = "50.00", op_id: str = "c01") -> tuple[LedgerSide, LedgerSide]:
    key = f"evotor:{doc_id}:accrual"
    return side("crm", op(op_id, key, points)), side("onec", op("d" + op_id[1:], key, points, "onec"))


def kinds(found: list[Discrepancy]) -> list[str]:
    return [item.kind for item in found]


def test_everything_agrees() -> None:
    crm, onec = accrual_ops("s1")
    assert run([sale("s1")], crm=crm, onec=onec) == []


def test_missing_in_right_proposes_creating_the_receipt_under_its_key() -> None:
    (found,) = run([sale("s1", phone=None)], right=[])
    assert (found.kind, found.refs, found.delta) == (
        "missing_in_right",
        {"evotor": "s1"},
        Decimal("-1000.00"),
    )
    assert (found.fix.action, found.fix.target, found.fix.key) == (
        "create_document",
        "onec",
        "onec:evotor:s1:sale",
    )
    assert found.fix.payload is not None
    assert found.fix.payload["total"] == "1000.00"


def test_missing_in_left_names_the_dangling_1c_receipt() -> None:
    ghost = record(sale("zz9", phone=None), "onec", id="1c-ghost", external_key="onec:evotor:zz9:sale")
    (found,) = run([], right=[ghost])
    assert (found.kind, found.refs, found.store, found.business_date) == (
        "missing_in_left", {"onec": "1c-ghost"}, STORE, DAY)  # fmt: skip
    assert found.fix.action == "manual"


@pytest.mark.parametrize(
    ("difference", "kind"), [("0.01", None), ("0.02", "amount_mismatch"), ("-5.00", "amount_mismatch")]
)
def test_amounts_agree_within_the_tolerance(difference: str, kind: str | None) -> None:
    document = sale("s1", phone=None)
    other = record(document, "onec", total=document.total + Decimal(difference))
    found = run([document], right=[other], specs=(DOCS,))
    assert kinds(found) == ([kind] if kind else [])
    if kind:
        assert found[0].delta == Decimal(difference)
        assert found[0].refs == {"evotor": "s1", "onec": "1c-s1"}


def test_line_mismatch_when_totals_agree_but_a_line_names_another_product() -> None:
    document = sale("s1", phone=None)
    other = record(document, "onec", lines=(("A-2", Decimal(1), Decimal("1000.00")),))
    (found,) = run([document], right=[other], specs=(DOCS,))
    assert (found.kind, found.expected[0]["sku"], found.actual[0]["sku"]) == ("line_mismatch", "A-1", "A-2")


def test_customer_mismatch_is_for_a_person() -> None:
    document = sale("s1")
    other = record(document, "onec", account="+79267654321")
    (found,) = run([document], right=[other], specs=(DOCS,))
    assert (found.kind, found.fix.action, found.fix.automatic) == ("customer_mismatch", "manual", False)
    assert (found.expected, found.actual) == ("+7********67", "+7********21")  # phones are masked


def test_missing_accrual_posts_the_expected_posting_under_its_key() -> None:
    (found,) = run([sale("s1")], specs=(LEDGER,))
    assert (found.kind, found.expected, found.delta) == (
        "missing_accrual",
        Decimal("50.00"),
        Decimal("-50.00"),
    )
    assert found.refs == {"evotor": "s1", "crm_account": "101", "key": "evotor:s1:accrual"}
    assert (found.fix.action, found.fix.key) == ("post_posting", "crm:evotor:s1:accrual")
    assert found.fix.payload is not None
    assert (found.fix.payload["kind"], found.fix.payload["amount"]) == ("accrual", "50.00")


@pytest.mark.parametrize(("posted", "expected_kinds"), [("50.01", []), ("49.98", ["accrual_mismatch"]),
                                                        ("60.00", ["accrual_mismatch"])])  # fmt: skip
def test_accrual_mismatch_within_the_tolerance_and_its_adjustment(
    posted: str, expected_kinds: list[str]
) -> None:
    crm, onec = accrual_ops("s1", posted)
    found = run([sale("s1")], crm=crm, onec=onec, specs=(LEDGER,))
    assert kinds(found) == expected_kinds
    if found:
        assert found[0].refs["crm"] == "c01"
        assert found[0].fix.key == "crm:evotor:s1:accrual:correction:adjustment"
        assert found[0].fix.payload is not None
        assert Decimal(found[0].fix.payload["amount"]) == Decimal("50.00") - Decimal(posted)


def test_an_applied_correction_settles_the_mismatch() -> None:
    crm, onec = accrual_ops("s1", "60.00")
    crm.entries.append(op("c02", "evotor:s1:accrual:correction:adjustment", "-10.00"))
    onec.entries.append(op("d02", "evotor:s1:accrual:correction:adjustment", "-10.00", "onec"))
    assert run([sale("s1")], crm=crm, onec=onec, specs=(LEDGER,)) == []


def test_duplicate_posting_names_the_later_operation_and_its_mirror_and_compensates_it() -> None:
    crm, onec = accrual_ops("s1")
    crm.entries.append(op("c07", "evotor:s1:accrual", "50.00"))
    onec.entries.append(op("d09", "evotor:s1:accrual", "50.00", "onec"))
    (found,) = run([sale("s1")], crm=crm, onec=onec, specs=(LEDGER,))
    assert found.kind == "duplicate_posting"
    assert found.refs == {
        "evotor": "s1",
        "crm": "c07",
        "onec": "d09",
        "crm_account": "101",
        "key": "evotor:s1:accrual",
    }
    assert (found.fix.action, found.fix.key) == (
        "compensate_posting",
        "crm:evotor:s1:accrual:compensation:c07:adjustment",
    )
    crm.entries.append(op("c10", "evotor:s1:accrual:compensation:c07:adjustment", "-50.00"))
    onec.entries.append(op("d10", "evotor:s1:accrual:compensation:c07:adjustment", "-50.00", "onec"))
    assert run([sale("s1")], crm=crm, onec=onec, specs=(LEDGER,)) == []


def test_orphan_posting_for_an_anonymous_sale_is_for_a_person() -> None:
    crm, onec = accrual_ops("s1", "12.00")
    (found,) = run([sale("s1", phone=None)], crm=crm, onec=onec, specs=(LEDGER,))
    assert (found.kind, found.fix.action) == ("orphan_posting", "manual")
    assert found.refs == {"evotor": "s1", "crm": "c01", "onec": "d01", "key": "evotor:s1:accrual"}


def test_missing_reversal_of_a_return() -> None:
    crm, onec = accrual_ops("s1")
    (found,) = run([sale("s1"), refund("r1", "s1")], crm=crm, onec=onec, specs=(LEDGER,))
    assert (found.kind, found.expected, found.refs["key"]) == (
        "missing_reversal",
        Decimal("-50.00"),
        "evotor:r1:accrual_reversal",
    )
    assert found.fix.key == "crm:evotor:r1:accrual_reversal"


def test_return_without_sale_names_the_return_in_both_systems() -> None:
    document = refund("r1", None)
    found = run([document])
    assert kinds(found) == ["return_without_sale"]
    assert found[0].refs == {"evotor": "r1", "onec": "1c-r1"}
    assert not found[0].fix.automatic


def test_redemption_over_the_share_limit() -> None:
    crm = side("crm", op("c01", "evotor:s1:redemption", "-400.00"), op("c02", "evotor:s1:accrual", "30.00"))
    onec = side(
        "onec",
        op("d01", "evotor:s1:redemption", "-400.00", "onec"),
        op("d02", "evotor:s1:accrual", "30.00", "onec"),
    )
    (found,) = run([sale("s1", redeemed="400.00")], crm=crm, onec=onec, specs=(LEDGER,))
    assert found.kind == "redemption_over_limit"
    assert found.refs == {"evotor": "s1", "crm": "c01", "crm_account": "101", "key": "evotor:s1:redemption"}
    assert "over 30%" in found.expected[0]


def test_balance_mismatch_names_the_1c_document_without_a_counterpart() -> None:
    crm, onec = accrual_ops("s1")
    manual = LedgerEntry("onec", "d-manual", "onec:d-manual:adjustment", "adjustment", Decimal("300.00"), PHONE,
                         "p-1", datetime(2026, 11, 1, 23, 30, tzinfo=MSK))  # fmt: skip
    onec.entries.append(manual)
    (found,) = run([sale("s1")], crm=crm, onec=onec, specs=(LEDGER,))
    assert (found.kind, found.store, found.business_date) == ("balance_mismatch", None, date(2026, 11, 1))
    assert found.refs == {"onec": "d-manual", "onec_partner": "p-1", "crm_account": "101"}
    assert (found.expected, found.actual, found.delta) == (
        Decimal("50.00"),
        Decimal("350.00"),
        Decimal("300.00"),
    )


def test_documents_outside_the_window_are_not_reported() -> None:
    late = sale("s1", phone=None).model_copy(update={"business_date": DAY + timedelta(days=1)})
    assert run([late], right=[]) == []


def test_compare_is_a_hash_join_fast_on_many_documents() -> None:
    base = datetime(2026, 11, 2, 9, tzinfo=UTC)
    left = [
        DocRecord("evotor", f"e{i}", "sale", STORE, DAY, base, str(i), Decimal(i), None, ())
        for i in range(60000)
    ]
    right = [DocRecord("onec", f"o{i}", "sale", STORE, DAY, base, str(i), Decimal(i), None, (),
                       external_key=f"onec:evotor:e{i}:sale") for i in range(60000)]  # fmt: skip
    snapshot = Snapshot(DAY, DAY, [STORE], documents={"evotor": left, "onec": right})
    started = datetime.now(UTC)
    assert compare_snapshot(snapshot, (DOCS,), program=None, mirrors={}, today=DAY) == []
    assert datetime.now(UTC) - started < timedelta(seconds=5)


def test_the_tier_comes_from_the_customers_spend_before_the_documents() -> None:
    crm, onec = accrual_ops("s1", "70.00")  # Silver: 7 % of 1000
    snapshot = Snapshot(DAY, DAY, [STORE], canonical={"evotor": [sale("s1"), refund("r1", "s1", "500.00")]})
    snapshot.ledgers = {"crm": crm, "onec": onec}
    crm.entries.append(op("c02", "evotor:r1:accrual_reversal", "-35.00"))
    onec.entries.append(op("d02", "evotor:r1:accrual_reversal", "-35.00", "onec"))
    args = {"program": PROGRAM, "mirrors": {"crm": ["onec"]}, "today": DAY}
    assert kinds(compare_snapshot(snapshot, (LEDGER,), **args)) == ["accrual_mismatch", "accrual_mismatch"]  # type: ignore[arg-type]
    snapshot.spend_before = {"evotor": {PHONE: Decimal("30000.00")}}
    assert compare_snapshot(snapshot, (LEDGER,), **args) == []  # type: ignore[arg-type]
