"""The journal's receipts of two systems as compare records, streamed one store-day at a time.

The reconciliation's fast path over the state database (issue 6, item 7). One SQLAlchemy Core query reads both
systems of a ``{left, right}`` comparison, selecting only what a :class:`~connector.reconcile.model.DocRecord`
needs: the journal's indexed columns (store, business date, number, total, account, status) and, extracted by the
database from the JSON columns, the document's ref, type, instant, lines and fiscal ids, and the connector's key
kept in the raw payload (1C ``Комментарий``) — SQLite ``json_extract``, PostgreSQL ``jsonb_build_array`` of ``->``/``#>`` on ``JSONB`` — as one JSON array a row.
No ORM objects, no raw payloads in Python, no pydantic: each row becomes a record directly
(:func:`row_record`, equal to what :func:`connector.reconcile.snapshot.document_record` makes of the parsed
document — a test holds the two to each other).

Rows arrive ordered by ``(store, business_date)`` in batches (``yield_per``; a server-side cursor on PostgreSQL),
and :meth:`JournalPairs.groups` hands out one store-day at a time, each side sorted as the compare stage sorts
(instant, then id), so the compare stage can match a store-day and drop it
(:func:`connector.reconcile.match.match_grouped`): memory is bounded by a store-day, not by the window.

Example:
    >>> pairs = window_pairs(store, ("evotor", "onec"), (d1, d7), key_fields={"onec": "Комментарий"})  # doctest: +SKIP
    >>> for left, right in pairs.groups():  # doctest: +SKIP
    ...     ...
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, case, cast, func, null, or_, select
from sqlalchemy.sql import Select

from connector.categories import with_categories
from connector.model import dump_document, parse_document
from connector.reconcile.model import DocRecord, LineSig
from connector.store import Store
from connector.store.tables import JournalDocument

__all__ = ["JournalPairs", "record_query", "row_record", "window_pairs"]

_BATCH = 5_000
_IN_CHUNK = 500
_CACHE_LIMIT = 200_000

_DOC = JournalDocument
_CANONICAL = _DOC.canonical


_MEMBERS = (("ref", "system"), ("ref", "id"), ("type",), ("occurred_at",), ("lines",), ("fiscal",))
"""What a record needs of the canonical JSON, extracted by the database as one JSON array (one parse a row)."""
_RECEIPTS = ("sale", "return")


def _members(dialect: str) -> ColumnElement[Any]:
    """:data:`_MEMBERS` of ``canonical`` as the text of a JSON array."""
    if dialect == "postgresql":
        return cast(func.jsonb_build_array(*(_CANONICAL[path] for path in _MEMBERS)), Text)
    paths = ("$." + ".".join(f'"{name}"' for name in path) for path in _MEMBERS)
    return func.json_extract(_CANONICAL, *paths)


def record_query(dialect: str, key_fields: Mapping[str, str | None]) -> Select[Any]:
    """The columns :func:`row_record` reads, in its order, for the mapped documents of the journal.

    Args:
        dialect: ``sqlite`` or ``postgresql``.
        key_fields: system → where its raw payload keeps the connector's key (None: it keeps none).
    """
    keyed = {system: _DOC.raw[name].as_string() for system, name in key_fields.items() if name}
    key = case(*((_DOC.system == system, value) for system, value in keyed.items())) if keyed else null()
    columns = (_DOC.system, _DOC.store, _DOC.business_date, _DOC.number, _DOC.total, _DOC.account, _DOC.status,
               _members(dialect), key)  # fmt: skip
    return select(*columns).where(_CANONICAL.is_not(None))


class _Values:
    """Shared instances and parsed values of what a million records repeat (stores, dates, skus, amounts, zones:
    aware instants that share one zone object also compare without converting)."""

    def __init__(self) -> None:
        self.seen: dict[Any, Any] = {}
        self.decimals: dict[str, Decimal] = {}

    def trim(self) -> None:
        """Forget what was seen once there is much of it (a store-day's worth is plenty)."""
        if len(self.seen) > _CACHE_LIMIT:
            self.seen.clear()
        if len(self.decimals) > _CACHE_LIMIT:
            self.decimals.clear()

    def decimal(self, value: Any) -> Decimal:
        text = value if isinstance(value, str) else str(value)
        found = self.decimals.get(text)
        if found is None:
            found = self.decimals[text] = Decimal(text)
        return found

    def lines(self, lines: list[dict[str, Any]] | None) -> LineSig:
        if not lines:
            return ()
        share, known, decimal = self.seen.setdefault, self.decimals.get, self.decimal
        signature = []
        for line in lines:
            sku, quantity, amount = line.get("sku") or f"#{line['line_no']}", line["quantity"], line["amount"]
            signature.append(
                (share(sku, sku), known(quantity) or decimal(quantity), known(amount) or decimal(amount))
            )
        if len(signature) > 1:
            signature.sort()
        return tuple(share(entry, entry) for entry in signature)


_DECODER = json.JSONDecoder(parse_float=Decimal)


def row_record(row: Sequence[Any], values: _Values | None = None) -> DocRecord | None:
    """A row of :func:`record_query` as the compare stage's record; None when it is not a sale or a return."""
    values = values or _Values()
    share = values.seen.setdefault
    _, store, day, number, total, account, status, members, key = row
    system, doc_id, kind, occurred, lines, fiscal = _DECODER.decode(members)
    if kind not in _RECEIPTS:
        return None
    instant = datetime.fromisoformat(occurred)
    zone = instant.tzinfo
    return DocRecord(
        system=share(system, system),
        id=doc_id,
        kind=share(kind, kind),
        store=share(store, store),
        business_date=share(day, day),
        occurred_at=instant.replace(tzinfo=share(zone, zone)),
        number=number,
        total=total,
        account=account,
        lines=values.lines(lines),
        fiscal=(fiscal["fn"], fiscal["fd"]) if fiscal else None,
        external_key=str(key) if key else None,
        status=share(status, status),
    )


def _order(record: DocRecord) -> tuple[datetime, str]:
    return (record.occurred_at, record.id)


@dataclass
class JournalPairs:
    """Both systems' journaled receipts of a ``{left, right}`` comparison, one store-day at a time.

    Args:
        store: the state database.
        left: the left system (the tills).
        right: the right system (accounting).
        left_from: the left system's first business date read (the window's, or earlier for a lookback).
        right_from: the right system's first business date read.
        last: the last business date read (inclusive), both systems.
        stores: only these stores; None for every store.
        key_fields: system → where it keeps the connector's key in its raw payload (1C ``Комментарий``).
        window: the reconciliation's window; :attr:`counts` counts each system's records dated in it.
        categories: sku → category, for the lines of a payload that have none (:meth:`payloads`).

    Attributes:
        counts: system → records read with a business date in ``window`` (after :meth:`groups` has run).
        read_s: seconds spent reading and building records (the rest of a streamed compare is the compare).
    """

    store: Store
    left: str
    right: str
    left_from: date
    right_from: date
    last: date
    stores: Sequence[str] | None = None
    key_fields: Mapping[str, str | None] = field(default_factory=dict)
    window: tuple[date, date] | None = None
    categories: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    read_s: float = 0.0

    def _where(self, query: Select[Any], *, ordered: bool = False) -> Select[Any]:
        """The reader's documents; ``ordered`` steers SQLite to walk the ``(store, business_date)`` index in
        order (its planner would rather find the systems by the unique index and sort the whole window)."""
        system: Any = _DOC.system
        if ordered:
            system = system + ""  # not indexable: the index that yields store-days in order wins
        query = query.where(
            or_(
                and_(system == self.left, _DOC.business_date >= self.left_from),
                and_(system == self.right, _DOC.business_date >= self.right_from),
            ),
            _DOC.business_date <= self.last,
        )
        if self.stores is not None:
            query = query.where(_DOC.store.in_(list(self.stores)))
        return query

    def groups(self) -> Iterator[tuple[list[DocRecord], list[DocRecord]]]:
        """(left records, right records) of each store-day in turn, each sorted by instant then id."""
        self.counts = {self.left: 0, self.right: 0}
        self.read_s = 0.0
        dialect = self.store.engine.dialect.name
        query = self._where(record_query(dialect, self.key_fields), ordered=dialect == "sqlite")
        query = query.order_by(_DOC.store, _DOC.business_date)
        values = _Values()
        first, last = self.window or (date.min, date.max)
        left: list[DocRecord] = []
        right: list[DocRecord] = []
        current: tuple[Any, Any] | None = None
        started = time.perf_counter()
        with self.store.engine.connect() as connection:
            for row in connection.execution_options(yield_per=_BATCH).execute(query):
                group = (row[1], row[2])
                if group != current:
                    if left or right:
                        yield from self._hand_out(left, right, first, last, started)
                        left, right, started = [], [], time.perf_counter()
                    values.trim()
                    current = group
                record = row_record(row, values)
                if record is not None:
                    (left if row[0] == self.left else right).append(record)
            if left or right:
                yield from self._hand_out(left, right, first, last, started)

    def _hand_out(
        self, left: list[DocRecord], right: list[DocRecord], first: date, last: date, started: float
    ) -> Iterator[tuple[list[DocRecord], list[DocRecord]]]:
        left.sort(key=_order)
        right.sort(key=_order)
        day = (left or right)[0].business_date
        if first <= day <= last:
            self.counts[self.left] += len(left)
            self.counts[self.right] += len(right)
        self.read_s += time.perf_counter() - started
        yield left, right

    def left_ids(self, ids: set[str]) -> set[str]:
        """Which of ``ids`` name a left record this reader reads (the compare stage dropped them already)."""
        query = self._where(select(_DOC.source_id)).where(
            _DOC.system == self.left, _CANONICAL["type"].as_string().in_(_RECEIPTS)
        )
        return {doc_id for doc_id, _ in self._by_id(query, ids)}

    def payloads(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The canonical JSON of each left document of ``ids``, lines completed with :attr:`categories` (for
        the fix that creates it on the right)."""
        query = self._where(select(_DOC.source_id, _CANONICAL)).where(_DOC.system == self.left)
        return {
            doc_id: dump_document(with_categories(parse_document(canonical), self.categories))
            for doc_id, canonical in self._by_id(query, ids)
            if isinstance(canonical, dict)
        }

    def _by_id(self, query: Select[Any], ids: Iterable[str]) -> list[Any]:
        """Rows of ``query`` whose source id is one of ``ids`` (one query per 500 ids)."""
        wanted, rows = sorted(set(ids)), []
        with self.store.engine.connect() as connection:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                rows += [
                    (row[0], row[-1]) for row in connection.execute(query.where(_DOC.source_id.in_(chunk)))
                ]
        return rows


def window_pairs(
    store: Store,
    systems: tuple[str, str],
    window: tuple[date, date],
    *,
    margins: tuple[int, int] = (1, 1),
    stores: Sequence[str] | None = None,
    key_fields: Mapping[str, str | None] | None = None,
    categories: dict[str, str] | None = None,
) -> JournalPairs:
    """The journal's documents of a ``{left, right}`` comparison for a window of business dates.

    Args:
        store: the state database.
        systems: (left, right).
        window: first and last business date of the reconciliation.
        margins: days read before the window for (left, right): a day's margin each (1C dates carry the
            infobase's clock), more for a system whose documents feed the rules (the return window). A day's
            margin is always read after it.
        stores: only these stores; None for every store.
        key_fields: system → where it keeps the connector's key in its raw payload.
        categories: sku → category, for the payload of a document to create.
    """
    (left, right), (first, last) = systems, window
    return JournalPairs(
        store,
        left,
        right,
        left_from=first - timedelta(days=margins[0]),
        right_from=first - timedelta(days=margins[1]),
        last=last + timedelta(days=1),
        stores=stores,
        key_fields=dict(key_fields or {}),
        window=window,
        categories=dict(categories or {}),
    )
