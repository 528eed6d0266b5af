"""The sandbox generator: determinism, realistic and consistent data, and an answer key that a reconciler built
to the definitions in the generator's docstring reproduces with 100 % precision and recall."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from datetime import UTC, date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from connector.model import Sale, normalize_phone
from connector.rules import evaluate, redemption_violations
from connector.sandbox._expected import expected_by_receipt
from connector.sandbox.answer_key import DISCREPANCY_KINDS, canonical_documents, load_world_program
from connector.sandbox.generator import EVOTOR_SIDE_KINDS, SandboxOptions, generate_world
from connector.sandbox.world import World

Refs = frozenset[tuple[str, str]]


def _dump(world: World) -> str:
    return json.dumps(dataclasses.asdict(world), default=str, ensure_ascii=False, sort_keys=True)


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world()


def test_same_options_give_byte_identical_worlds() -> None:
    options = SandboxOptions(seed=11, stores=2, days=2, receipts=30)
    assert _dump(generate_world(options)) == _dump(generate_world(options))


def test_another_seed_gives_other_data() -> None:
    first = generate_world(SandboxOptions(seed=1, stores=2, days=2, receipts=30))
    second = generate_world(SandboxOptions(seed=2, stores=2, days=2, receipts=30))
    assert {r.id for r in first.receipts}.isdisjoint({r.id for r in second.receipts})
    assert [c.phone for c in first.customers] != [c.phone for c in second.customers]


def test_clean_world_has_the_same_till_data_and_no_ledger() -> None:
    options = SandboxOptions(seed=5, stores=2, days=3, receipts=40)
    clean = generate_world(dataclasses.replace(options, clean=True))
    full = generate_world(options)
    assert clean.receipts == full.receipts
    assert clean.onec_receipts == []
    assert clean.crm_operations == []
    assert clean.onec_bonus_documents == []
    assert clean.customers == full.customers
    assert clean.products == full.products
    assert {e.kind for e in clean.answer_key} == set(EVOTOR_SIDE_KINDS)
    assert all(set(e.refs) == {"evotor"} for e in clean.answer_key)


def test_stores_span_two_zones_and_night_receipts_cross_the_utc_date(world: World) -> None:
    assert {"Europe/Moscow", "Europe/Samara"} <= {store.timezone for store in world.stores}
    crossing = [r for r in world.receipts if r.occurred_at.astimezone(UTC).date() != r.business_date]
    assert crossing, "some night receipts must fall on the previous UTC date"
    days = {r.business_date for r in world.receipts}
    assert days == {date(2026, 11, d) for d in range(1, 8)}


def test_customers_are_known_in_every_system(world: World) -> None:
    phones = [c.phone for c in world.customers]
    cards = [c.card for c in world.customers]
    assert all(normalize_phone(phone) == phone for phone in phones)
    assert all(len(card) == 13 and card.isdigit() for card in cards)
    assert len(set(phones)) == len(phones)
    assert len(set(cards)) == len(cards)
    assert len({c.crm_account_id for c in world.customers}) == len(world.customers)
    assert {"tobacco", "alcohol", "promo"} <= {p.category for p in world.products}


def test_receipts_are_consistent(world: World) -> None:
    by_id = {r.id: r for r in world.receipts}
    returned: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for receipt in world.receipts:
        assert sum(amount for _, amount in receipt.payments) == receipt.total > 0
        assert dict(receipt.payments).get("bonus", Decimal(0)) == receipt.bonus_redeemed
        for line in receipt.lines:
            assert 0 <= line.bonus_redeemed <= line.amount
            gross = (line.price * line.quantity).quantize(Decimal("0.01"), ROUND_HALF_UP)
            assert line.amount == gross - line.discount or receipt.kind == "return"
        if receipt.original_id:
            original = by_id[receipt.original_id]
            assert original.occurred_at < receipt.occurred_at
            assert original.store_id == receipt.store_id
            assert original.customer_phone == receipt.customer_phone
            for line in receipt.lines:
                returned[receipt.original_id, line.sku] += line.amount
    for (sale_id, sku), amount in returned.items():
        assert amount <= next(line.amount for line in by_id[sale_id].lines if line.sku == sku)
    kinds = Counter((r.kind, r.original_id is not None, r.customer_phone is not None) for r in world.receipts)
    assert kinds["sale", False, False] > 100
    assert kinds["sale", False, True] > 100
    assert kinds["return", True, True] > 5
    assert kinds["return", True, False] > 5
    assert sum(1 for r in world.receipts if r.kind == "sale" and r.bonus_redeemed) > 20
    assert any(line.discount for r in world.receipts for line in r.lines)


def test_every_kind_is_injected_and_spread(world: World) -> None:
    per_kind = Counter(entry.kind for entry in world.answer_key)
    assert set(per_kind) == set(DISCREPANCY_KINDS)
    assert len({e.store for e in world.answer_key if e.store}) == len(world.stores)
    assert len({e.business_date for e in world.answer_key}) >= 5


def test_one_c_and_crm_follow_the_conventions(world: World) -> None:
    assert all(r.comment == f"onec:evotor:{r.source_id}:{r.kind}" for r in world.onec_receipts)
    crm_keys = {
        op.comment.removeprefix("crm:") for op in world.crm_operations if op.comment.startswith("crm:")
    }
    mirrored = {
        d.comment.removeprefix("onec:") for d in world.onec_bonus_documents if d.comment.startswith("onec:")
    }
    assert crm_keys <= mirrored
    accruals = [op for op in world.crm_operations if op.comment.endswith(":accrual")]
    assert accruals
    assert all(op.type == "credit" and op.activation_date and op.expire_date for op in accruals)
    assert all(op.type == "charge" for op in world.crm_operations if op.comment.endswith(":redemption"))
    ids = [op.id for op in world.crm_operations]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


# A reconciler written from the generator's docstring alone, as the real one will be.


def _documents(world: World) -> set[tuple[str, Refs]]:
    found: set[tuple[str, Refs]] = set()
    evotor = {r.id: r for r in world.receipts}
    onec = {r.comment.split(":")[2]: r for r in world.onec_receipts}
    for receipt_id in evotor.keys() - onec.keys():
        found.add(("missing_in_right", frozenset({("evotor", receipt_id)})))
    for source, row in onec.items():
        if source not in evotor:
            found.add(("missing_in_left", frozenset({("onec", row.ref_key)})))
            continue
        till, refs = evotor[source], frozenset({("evotor", source), ("onec", row.ref_key)})
        if abs(sum(line.amount for line in row.lines) - till.total) > Decimal("0.01"):
            found.add(("amount_mismatch", refs))
        elif [(x.sku, x.quantity, x.amount) for x in row.lines] != [
            (x.sku, x.quantity, x.amount) for x in till.lines
        ]:
            found.add(("line_mismatch", refs))
        if row.customer_phone != till.customer_phone:
            found.add(("customer_mismatch", refs))
    return found


def _ledger(world: World) -> set[tuple[str, Refs]]:
    program = load_world_program(world)
    accounts = {c.phone: str(c.crm_account_id) for c in world.customers}
    ordered = sorted(world.receipts, key=lambda r: (r.occurred_at.astimezone(UTC), r.id))
    documents = list(canonical_documents(world, ordered))
    evaluation = evaluate(program, documents)
    expected = {p.key: p for p in evaluation.postings}
    ops: dict[str, list[Any]] = defaultdict(list)
    for op in world.crm_operations:
        if op.comment.startswith("crm:"):
            ops[op.comment.removeprefix("crm:")].append(op)
    mirrors = defaultdict(list)
    for doc in world.onec_bonus_documents:
        mirrors[doc.comment.removeprefix("onec:")].append(doc)
    found: set[tuple[str, Refs]] = set()
    for key, posting in expected.items():
        assert posting.document is not None
        base = {("evotor", posting.document.id), ("crm_account", accounts[posting.account]), ("key", key)}
        if not ops[key]:
            assert posting.kind in {"accrual", "accrual_reversal"}, key
            kind = "missing_accrual" if posting.kind == "accrual" else "missing_reversal"
            found.add((kind, frozenset(base)))
            continue
        if abs(ops[key][0].amount) != abs(posting.amount):
            assert posting.kind == "accrual", key
            found.add(("accrual_mismatch", frozenset(base | {("crm", str(ops[key][0].id))})))
        if len(ops[key]) > 1:
            refs = base | {("crm", str(ops[key][1].id)), ("onec", mirrors[key][1].ref_key)}
            found.add(("duplicate_posting", frozenset(refs)))
    for key, rows in ops.items():
        if key not in expected:
            refs = {("evotor", key.split(":")[1]), ("crm_account", str(rows[0].account_id)), ("key", key)}
            found.add(
                (
                    "orphan_posting",
                    frozenset(refs | {("crm", str(rows[0].id)), ("onec", mirrors[key][0].ref_key)}),
                )
            )
    for document in documents:
        if isinstance(document, Sale) and redemption_violations(program, document):
            key = f"evotor:{document.ref.id}:redemption"
            refs = {("evotor", document.ref.id), ("crm", str(ops[key][0].id))}
            found.add(
                (
                    "redemption_over_limit",
                    frozenset(refs | {("crm_account", str(ops[key][0].account_id)), ("key", key)}),
                )
            )
    onec_by_source = {r.source_id: r.ref_key for r in world.onec_receipts}
    for ret in evaluation.returns_without_sale:
        found.add(
            ("return_without_sale", frozenset({("evotor", ret.ref.id), ("onec", onec_by_source[ret.ref.id])}))
        )
    return found


def _balances(world: World) -> set[tuple[str, Refs]]:
    crm: dict[int, Decimal] = defaultdict(Decimal)
    for op in world.crm_operations:
        crm[op.account_id] += op.amount if op.type == "credit" else -op.amount
    onec: dict[str, Decimal] = defaultdict(Decimal)
    for doc in world.onec_bonus_documents:
        onec[doc.partner_ref] += doc.accrual - doc.write_off if doc.posted else 0
    found: set[tuple[str, Refs]] = set()
    for customer in world.customers:
        if crm[customer.crm_account_id] != onec[customer.onec_partner_ref]:
            manual = [
                d
                for d in world.onec_bonus_documents
                if d.partner_ref == customer.onec_partner_ref and not d.comment.startswith("onec:")
            ]
            refs = {
                ("crm_account", str(customer.crm_account_id)),
                ("onec_partner", customer.onec_partner_ref),
            }
            found.add(("balance_mismatch", frozenset(refs | {("onec", manual[0].ref_key)})))
    return found


@pytest.mark.parametrize(
    "options",
    [SandboxOptions(), SandboxOptions(seed=3, stores=5, days=3, receipts=60, start=date(2026, 11, 26))],
    ids=["default", "black-friday"],
)
def test_a_reconciler_built_to_the_definitions_finds_exactly_the_answer_key(options: SandboxOptions) -> None:
    world = generate_world(options)
    found = _documents(world) | _ledger(world) | _balances(world)
    key = {(e.kind, frozenset(e.refs.items())) for e in world.answer_key}
    assert len(key) == len(world.answer_key)
    assert found - key == set(), "discrepancies the answer key does not list (accidental)"
    assert key - found == set(), "answer-key entries the data does not show"


def test_answer_key_stores_and_dates_are_the_receipts(world: World) -> None:
    receipts = {r.id: r for r in world.receipts}
    for entry in world.answer_key:
        if "evotor" in entry.refs:
            receipt = receipts[entry.refs["evotor"]]
            assert (entry.store, entry.business_date) == (receipt.store_id, receipt.business_date)


@pytest.mark.parametrize(
    "options",
    [
        SandboxOptions(seed=9, stores=2, days=7, receipts=120, customers=4),  # crosses Silver and Gold
        SandboxOptions(seed=4, stores=3, days=4, receipts=80, start=date(2026, 11, 27)),  # Black Friday x2
    ],
    ids=["tiers", "promotion"],
)
def test_the_earlier_runs_postings_are_the_rules_engines(options: SandboxOptions) -> None:
    world = generate_world(dataclasses.replace(options, clean=True))
    program = load_world_program(world)
    ordered = sorted(world.receipts, key=lambda r: (r.occurred_at.astimezone(UTC), r.id))
    engine = evaluate(program, list(canonical_documents(world, ordered))).postings
    fast = [p for postings in expected_by_receipt(world, program).values() for p in postings]
    as_rows = {
        (
            p.key,
            p.kind,
            p.account,
            p.amount,
            p.available_at.date() if p.available_at else None,
            p.expires_at.date() if p.expires_at else None,
        )
        for p in engine
    }
    assert as_rows == {(p.key, p.kind, p.account, p.amount, p.available, p.expires) for p in fast}
    assert len(fast) == len(engine)
    kinds = Counter(p.kind for p in engine)
    assert kinds["accrual_reversal"] > 3
    assert kinds["redemption"] > 3
    spend: Counter[str] = Counter()
    for receipt in world.receipts:
        if receipt.customer_phone:
            spend[receipt.customer_phone] += int(receipt.total) * (1 if receipt.kind == "sale" else -1)
    if options.customers:
        assert max(spend.values()) > 100_000, "some customer must reach Gold"
    else:
        assert kinds["redemption_refund"] > 0
