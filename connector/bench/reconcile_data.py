"""Two sides of receipts in the state store's journal, with a known set of injected differences.

``evotor`` holds N till receipts; ``onec`` holds the N accounting receipts the connector would have written for
them (``Комментарий`` ``onec:evotor:<receipt id>:sale|return`` in the raw payload, as the 1C adapter reads it),
except for a small share of injected differences: receipts missing in 1C, 1C receipts whose till receipt does not
exist, totals that differ, and lines that differ at the same total. Both sides hold exactly N rows (as many
missing on each side, so N + missing receipts are drawn). Rows are written with one multi-row insert per chunk through the store's engine, in the journal's
own columns and JSON form (in SQLite's storage form, computed once per row rather than by the column types), so
the journal reads them back as it reads pulled documents. SQLite only: the benchmark's own throwaway database.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, String, Text, bindparam, insert

from connector.store import Store
from connector.store.tables import JournalDocument
from connector.store.types import json_serializer

__all__ = ["KINDS", "Injected", "seed_sides"]

KINDS = ("missing_in_right", "missing_in_left", "amount_mismatch", "line_mismatch")
"""The injected kinds, as the compare stage names them."""

_SHARES = {"missing": 0.3, "amount_mismatch": 0.2, "line_mismatch": 0.2}  # the rest of `differences`: none
_MSK = timezone(timedelta(hours=3))
_CHUNK = 20_000
_STORED: dict[str, Any] = {"business_date": String(), "occurred_at": String(), "total": BigInteger(), "canonical": Text(),
           "raw": Text(), "first_seen_at": String(), "last_seen_at": String()}  # fmt: skip
"""Columns whose SQLite form :func:`_row` computes itself (dates as ISO text, money as kopecks, JSON as text)."""
_PRAGMAS = ("PRAGMA synchronous=OFF", "PRAGMA cache_size=-262144", "PRAGMA temp_store=MEMORY")
"""For the benchmark's throwaway database only: no fsync, a 256 MB page cache for the index inserts."""
_SKUS = [(f"A-{10000 + n}", Decimal(49 + (n * 37) % 950).quantize(Decimal("0.01"))) for n in range(400)]


@dataclass
class Injected:
    """What :func:`seed_sides` wrote.

    Attributes:
        rows: receipts per side.
        date_from: first business date.
        date_to: last business date.
        expected: discrepancy kind → how many were injected.
    """

    rows: int
    date_from: date
    date_to: date
    expected: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Receipt:
    id: str
    kind: str
    store: str
    day: date
    moment: datetime
    number: str
    account: str | None
    lines: list[tuple[str, Decimal, Decimal]]

    stored_at: str
    """The instant as SQLite's ``DATETIME`` holds it (naive UTC, the journal's :class:`UTCDateTime`)."""


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _receipt(rng: random.Random, index: int, stores: list[str], start: date, days: int) -> _Receipt:
    day = start + timedelta(days=index % days)
    moment = datetime(day.year, day.month, day.day, 8, tzinfo=_MSK) + timedelta(seconds=rng.randrange(50_000))
    account = None if rng.random() < 0.45 else f"+79{rng.randrange(10**9):09d}"
    lines = [_SKUS[rng.randrange(len(_SKUS))] for _ in range(1 + rng.randrange(3))]
    picked = [(sku, Decimal(1 + rng.randrange(3)), price) for sku, price in lines]
    kind = "return" if rng.random() < 0.05 else "sale"
    stored = moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return _Receipt(_uuid(rng), kind, stores[index % len(stores)], day, moment, str(100_000 + index), account,
                    picked, stored)  # fmt: skip


def _canonical(
    system: str, ref_kind: str, receipt: _Receipt, lines: list[tuple[str, Decimal, Decimal]]
) -> dict[str, Any]:
    """The canonical JSON of a receipt, as :func:`connector.model.dump_document` writes it."""
    rendered = [
        {"line_no": n, "sku": sku, "name": None, "category": None, "quantity": f"{qty:.3f}",
         "price": f"{price:.2f}", "amount": f"{qty * price:.2f}", "discount": "0.00", "bonus_redeemed": "0.00"}
        for n, (sku, qty, price) in enumerate(lines, start=1)
    ]  # fmt: skip
    total = f"{sum((qty * price for _, qty, price in lines), Decimal(0)):.2f}"
    customer: dict[str, Any] | None = None if receipt.account is None else {
        "phone": receipt.account, "card": None, "email": None, "name": None, "refs": {}}  # fmt: skip
    document: dict[str, Any] = {
        "ref": {"system": system, "kind": ref_kind, "id": receipt.id if system == "evotor" else ""},
        "number": receipt.number, "store": receipt.store, "register": None,
        "occurred_at": receipt.moment.isoformat(), "business_date": receipt.day.isoformat(),
        "customer": customer, "lines": rendered, "payments": [{"method": "card", "amount": total}],
        "total": total, "discount": "0.00", "bonus_redeemed": "0.00", "bonus_accrued": None, "fiscal": None,
        "status": "posted", "version": None, "type": receipt.kind,
    }  # fmt: skip
    if receipt.kind == "return":
        document |= {"original": None, "original_number": None}
    return document


def _row(
    system: str, source_id: str, receipt: _Receipt, canonical: dict[str, Any], raw: Any
) -> dict[str, Any]:
    """A journal row in the form SQLite stores it (see :data:`_STORED`): the column types' conversions done
    here once, not per row by SQLAlchemy."""
    return {
        "system": system, "kind": canonical["ref"]["kind"], "source_id": source_id, "store": receipt.store,
        "business_date": receipt.day.isoformat(), "occurred_at": receipt.stored_at, "number": receipt.number,
        "total": int(Decimal(canonical["total"]).scaleb(2)), "account": receipt.account, "version": "1",
        "status": "posted", "canonical": json_serializer(canonical), "raw": json_serializer(raw),
        "first_seen_at": receipt.stored_at, "last_seen_at": receipt.stored_at,
    }  # fmt: skip


def _onec_side(rng: random.Random, receipt: _Receipt, change: str | None) -> dict[str, Any]:
    """The 1C receipt the connector wrote for ``receipt``, with ``change`` injected."""
    lines = list(receipt.lines)
    if change == "amount_mismatch":  # one more line: the total is 10.00 higher
        lines.append(("A-99998", Decimal(1), Decimal("10.00")))
    elif change == "line_mismatch":  # a zero-amount line: the same total, other lines
        lines.append(("A-99999", Decimal(1), Decimal("0.00")))
    ref_kind = "ЧекККМ" if receipt.kind == "sale" else "ЧекККМВозврат"
    source_id = _uuid(rng)
    canonical = _canonical("onec", ref_kind, receipt, lines)
    canonical["ref"]["id"] = source_id
    left_id = receipt.id if change != "missing_in_left" else _uuid(rng)
    raw = {"Ref_Key": source_id, "Комментарий": f"onec:evotor:{left_id}:{receipt.kind}"}
    return _row("onec", source_id, receipt, canonical, raw)


def _rows(
    rows: int, differences: float, seed: int, stores: int, start: date, days: int, injected: Injected
) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311  # reproducible benchmark data, not a secret
    store_ids = [_uuid(rng) for _ in range(stores)]
    missing = round(rows * differences * _SHARES["missing"])
    amounts = round(rows * differences * _SHARES["amount_mismatch"])
    lines = round(rows * differences * _SHARES["line_mismatch"])
    plan = (["missing_in_right"] * missing + ["missing_in_left"] * missing + ["amount_mismatch"] * amounts
            + ["line_mismatch"] * lines)  # fmt: skip
    plan += [None] * (rows + missing - len(plan))  # type: ignore[list-item]  # each side holds `rows`
    rng.shuffle(plan)
    injected.expected = {kind: plan.count(kind) for kind in KINDS}
    for index, change in enumerate(plan):
        receipt = _receipt(rng, index, store_ids, start, days)
        if change != "missing_in_left":  # a 1C receipt naming a till receipt that does not exist
            evotor = _canonical("evotor", "receipt", receipt, receipt.lines)
            yield _row("evotor", receipt.id, receipt, evotor, {"uuid": receipt.id, "type": "SELL"})
        if change != "missing_in_right":
            yield _onec_side(rng, receipt, change)


def seed_sides(
    store: Store,
    rows: int,
    *,
    differences: float = 0.01,
    seed: int = 7,
    stores: int = 50,
    start: date = date(2026, 11, 1),
    days: int = 7,
) -> Injected:
    """Write ``rows`` receipts per side (``evotor``, ``onec``) into the journal of ``store``.

    Args:
        store: an open, empty state database.
        rows: receipts per side.
        differences: the share of receipts with an injected difference (1 %).
        seed: the RNG seed: same arguments, same rows.
        stores: stores the receipts spread over.
        start: the first business date.
        days: business dates, from ``start``.

    Returns:
        The window and the injected counts per discrepancy kind.
    """
    injected = Injected(rows, start, start + timedelta(days=days - 1))
    if store.engine.dialect.name != "sqlite":
        raise ValueError("the benchmark's data goes into a SQLite state database")
    statement = insert(JournalDocument).values(
        {name: bindparam(name, type_=kind) for name, kind in _STORED.items()}
    )
    chunk: list[dict[str, Any]] = []
    with store.engine.connect() as connection:
        for pragma in _PRAGMAS:
            connection.exec_driver_sql(pragma)
        connection.commit()
        with connection.begin():
            for row in _rows(rows, differences, seed, stores, start, days, injected):
                chunk.append(row)
                if len(chunk) >= _CHUNK:
                    connection.execute(statement, chunk)
                    chunk = []
            if chunk:
                connection.execute(statement, chunk)
    return injected
