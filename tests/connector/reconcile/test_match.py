"""Matching a store-day at a time finds what matching the whole window at once finds.

:func:`match_grouped` pairs each store-day by cross-reference and external id and carries the rest to a final
pass; these worlds are built so that the rest matters: 1C documents dated a day off their receipt (another
store-day), keys naming receipts that do not exist or that another store-day paired already, documents without a
key that only the fiscal or number pass can pair, cross-references across store-days, drafts, and documents of the
margin days outside the window.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from connector.discrepancies import Discrepancy
from connector.reconcile.match import DocumentMatch, match_documents, match_grouped
from connector.reconcile.model import DocRecord

MSK = timezone(timedelta(hours=3))
FIRST, LAST = date(2026, 11, 2), date(2026, 11, 4)
STORES = ("s1", "s2")
SYSTEMS = ("evotor", "onec")
TOLERANCE = Decimal("0.01")


def _doc(
    system: str, doc_id: str, store: str, day: date, hour: int, number: str, total: str, **kw: object
) -> DocRecord:
    lines = ((f"A-{number}", Decimal(1), Decimal(total)),)
    values: dict[str, object] = {"system": system, "id": doc_id, "kind": "sale", "store": store,
        "business_date": day, "occurred_at": datetime(day.year, day.month, day.day, hour, tzinfo=MSK),
        "number": number, "total": Decimal(total), "account": None, "lines": lines, **kw}  # fmt: skip
    return DocRecord(**values)  # type: ignore[arg-type]


def _world(seed: int) -> tuple[list[DocRecord], list[DocRecord], dict[str, str]]:
    rng = random.Random(seed)
    left: list[DocRecord] = []
    right: list[DocRecord] = []
    cross: dict[str, str] = {}
    days = [FIRST - timedelta(days=1) + timedelta(days=n) for n in range(5)]  # a margin day each side
    for n in range(160):
        store, day = rng.choice(STORES), rng.choice(days)
        number, total = str(1000 + n), f"{rng.randrange(100, 900)}.00"
        fiscal = ("fn1", str(n)) if rng.random() < 0.5 else None
        status = "draft" if rng.random() < 0.05 else "posted"
        left_id = f"L{n}"
        left.append(_doc("evotor", left_id, store, day, rng.randrange(9, 23), number, total, fiscal=fiscal,
                         status=status, account=rng.choice([None, "+79160000001"])))  # fmt: skip
        fate = rng.random()
        if fate < 0.08:
            continue  # missing in 1C
        right_day = day + timedelta(days=1) if rng.random() < 0.1 else day  # 1C's clock: the next day
        key: str | None = f"onec:evotor:{left_id}:sale"
        if fate < 0.2:
            key = None  # no key: the fiscal or the number pass, or nothing
        elif fate < 0.25:
            key = f"onec:evotor:GONE{n}:sale"  # its receipt does not exist
        right_total = total if rng.random() > 0.05 else f"{Decimal(total) + 10}"
        right_id = f"R{n}"
        right.append(_doc("onec", right_id, store, right_day, rng.randrange(0, 24), number, right_total,
                          fiscal=fiscal if rng.random() < 0.7 else None, external_key=key))  # fmt: skip
        if rng.random() < 0.1:
            cross[right_id] = left_id
        if rng.random() < 0.04:  # a second 1C document naming the same receipt, maybe on another day
            twin_day = rng.choice(days)
            right.append(_doc("onec", f"T{n}", store, twin_day, 1, number, total, external_key=key))
    if left and right:  # a cross-reference that contradicts a key, across store-days
        cross[right[0].id] = left[-1].id
    return left, right, cross


def _groups(
    left: list[DocRecord], right: list[DocRecord]
) -> Iterator[tuple[list[DocRecord], list[DocRecord]]]:
    def key(doc: DocRecord) -> tuple[str, date]:
        return (doc.store, doc.business_date)

    def order(doc: DocRecord) -> tuple[datetime, str]:
        return (doc.occurred_at, doc.id)

    for _, docs in itertools.groupby(sorted([*left, *right], key=key), key=key):
        day = list(docs)
        yield (sorted((d for d in day if d.system == "evotor"), key=order),
               sorted((d for d in day if d.system == "onec"), key=order))  # fmt: skip


def _found(match: DocumentMatch) -> list[tuple[str, object, object, tuple[tuple[str, str], ...], object]]:
    def row(d: Discrepancy) -> tuple[str, object, object, tuple[tuple[str, str], ...], object]:
        return (d.kind, d.store, d.business_date, tuple(sorted(d.refs.items())), d.delta)

    return sorted(map(row, match.discrepancies), key=repr)


@pytest.mark.parametrize("seed", range(12))
def test_store_day_matching_finds_what_whole_window_matching_finds(seed: int) -> None:
    left, right, cross = _world(seed)
    ordered = (
        sorted(left, key=lambda d: (d.occurred_at, d.id)),
        sorted(right, key=lambda d: (d.occurred_at, d.id)),
    )
    whole = match_documents(
        *ordered, window=(FIRST, LAST), tolerance=TOLERANCE, cross_refs=cross, systems=SYSTEMS
    )
    left_ids = {doc.id for doc in left}
    asked: list[set[str]] = []

    def known(ids: set[str]) -> set[str]:
        asked.append(ids)
        return ids & left_ids

    grouped = match_grouped(_groups(left, right), systems=SYSTEMS, window=(FIRST, LAST), tolerance=TOLERANCE,
                            known_left=known, cross_refs=cross)  # fmt: skip
    assert _found(grouped) == _found(whole)
    assert grouped.pairs == whole.pairs
    assert sum(grouped.methods.values()) == sum(whole.methods.values()) == len(whole.pairs)
    assert any(d.kind == "missing_in_left" for d in whole.discrepancies)
    assert all(ids for ids in asked)  # only asked about keys naming no document of the final pass


def test_the_fix_payloads_are_fetched_once_for_every_receipt_missing_in_1c() -> None:
    left = [_doc("evotor", f"L{n}", "s1", FIRST, 10 + n, str(n), "100.00") for n in range(3)]
    right = [_doc("onec", "R0", "s1", FIRST, 11, "0", "100.00", external_key="onec:evotor:L0:sale")]
    calls: list[list[str]] = []

    def payloads(ids: list[str]) -> dict[str, dict[str, object]]:
        calls.append(sorted(ids))
        return {doc_id: {"ref": {"id": doc_id}} for doc_id in ids}

    found = match_grouped(_groups(left, right), systems=SYSTEMS, window=(FIRST, LAST), tolerance=TOLERANCE,
                          known_left=lambda ids: set(), payloads=payloads, keep_pairs=False)  # fmt: skip
    assert calls == [["L1", "L2"]]
    assert sorted((d.kind, d.fix.payload["ref"]["id"]) for d in found.discrepancies if d.fix.payload) == [
        ("missing_in_right", "L1"), ("missing_in_right", "L2")]  # fmt: skip
    assert found.pairs == {}  # the store-days' pairs are not kept when nothing needs them
