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
import json.scanner
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import BigInteger, ColumnElement, Text, and_, case, cast, func, null, or_, select, type_coerce
from sqlalchemy.sql import Select
from sqlalchemy.types import NullType

from connector.categories import with_categories
from connector.model import dump_document, parse_document
from connector.reconcile.model import DocRecord, LineSig
from connector.store import Store, open_store
from connector.store.tables import JournalDocument

__all__ = ["JournalPairs", "own_peak_rss_mb", "record_query", "row_record", "window_pairs"]

_BATCH = 5_000
_PARALLEL_ROWS = 100_000
"""From this many documents in the window the store-days are shared between processes (one per core, two at most)."""
_IN_CHUNK = 500
_CACHE_LIMIT = 200_000

T = TypeVar("T")
Groups = tuple[list[DocRecord], list[DocRecord]]

_DOC = JournalDocument
_CANONICAL = _DOC.canonical


_LINES = 8
"""Lines extracted member by member; a receipt with more is read with its whole ``lines`` array."""
_MEMBERS: tuple[tuple[str | int, ...], ...] = (
    ("ref", "system"), ("ref", "id"), ("type",), ("occurred_at",), ("fiscal", "fn"), ("fiscal", "fd"),
    *(("lines", n, name) for n in range(_LINES) for name in ("sku", "line_no", "quantity", "amount")),
)  # fmt: skip
"""What a record needs of the canonical JSON, extracted by the database as one flat JSON array (one parse a row,
and only these values to decode in Python: a line object holds twice as many)."""
_SCALARS = 6
_RECEIPTS = ("sale", "return")
_RAW = NullType()


def _sqlite_path(path: tuple[str | int, ...]) -> str:
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f'."{part}"' for part in path)


def _members(dialect: str) -> ColumnElement[Any]:
    """:data:`_MEMBERS` of ``canonical`` as the text of a JSON array."""
    if dialect == "postgresql":
        return cast(func.jsonb_build_array(*(_CANONICAL[path] for path in _MEMBERS)), Text)
    return func.json_extract(_CANONICAL, *map(_sqlite_path, _MEMBERS))


def _more_lines() -> ColumnElement[Any]:
    """The whole ``lines`` array of a receipt with more than :data:`_LINES` lines, else NULL."""
    return case((_CANONICAL[("lines", _LINES)].as_string().is_not(None), _CANONICAL["lines"].as_string()))


def record_query(dialect: str, key_fields: Mapping[str, str | None]) -> Select[Any]:
    """The columns :func:`row_record` reads, in its order, for the mapped documents of the journal.

    Args:
        dialect: ``sqlite`` or ``postgresql``.
        key_fields: system → where its raw payload keeps the connector's key (None: it keeps none).
    """
    keyed = {system: _DOC.raw[name].as_string() for system, name in key_fields.items() if name}
    key = case(*((_DOC.system == system, value) for system, value in keyed.items())) if keyed else null()
    # Dates and money as stored (ISO text / a date, minor units): converted once per distinct value, not per row.
    day, total = type_coerce(_DOC.business_date, _RAW), type_coerce(_DOC.total, BigInteger)
    columns = (
        _DOC.system,
        _DOC.store,
        day,
        _DOC.number,
        total,
        _DOC.account,
        _DOC.status,
        _members(dialect),
        _more_lines(),
        key,
    )
    return select(*columns).where(_CANONICAL.is_not(None))


class _Values:
    """Shared instances and parsed values of what a million records repeat (stores, dates, skus, amounts, zones:
    aware instants that share one zone object also compare without converting)."""

    def __init__(self) -> None:
        self.seen: dict[Any, Any] = {}
        self.decimals: dict[str, Decimal] = {}
        self.money_of: dict[int, Decimal] = {}
        self.days: dict[Any, date] = {}

    def trim(self) -> None:
        """Forget what was seen once there is much of it (a store-day's worth is plenty)."""
        if len(self.seen) > _CACHE_LIMIT:
            self.seen.clear()
        if len(self.decimals) > _CACHE_LIMIT:
            self.decimals.clear()

    def day(self, value: Any) -> date:
        """A business date as the database hands it (SQLite: ISO text; PostgreSQL: a date)."""
        found = self.days.get(value)
        if found is None:
            found = self.days[value] = date.fromisoformat(value) if isinstance(value, str) else value
        return found

    def money(self, minor: int) -> Decimal:
        """An :class:`~connector.store.types.Amount` from its stored minor units (a mapped receipt has a total)."""
        found = self.money_of.get(minor)
        if found is None:
            found = Decimal(int(minor)).scaleb(-2)
            if len(self.money_of) < _CACHE_LIMIT:
                self.money_of[minor] = found
        return found

    def decimal(self, value: Any) -> Decimal:
        text = value if isinstance(value, str) else str(value)
        found = self.decimals.get(text)
        if found is None:
            found = self.decimals[text] = Decimal(text)
        return found

    def lines(self, members: list[Any], more: str | None) -> LineSig:
        """The line signature from the flat members (``sku, line_no, quantity, amount`` a line), or from the
        whole array ``more`` of a long receipt."""
        if more is not None:
            whole = _DECODER.decode(more)
            members = [value for line in whole for value in
                       (line.get("sku"), line["line_no"], line["quantity"], line["amount"])]  # fmt: skip
        else:
            members = members[_SCALARS:]
        seen, signature = self.seen, []
        for at in range(0, len(members), 4):
            fields = tuple(members[at : at + 4])
            entry = seen.get(fields)
            if entry is None:
                if fields[1] is None:  # no line_no: past the last line
                    break
                entry = seen[fields] = self._line(*fields)
            signature.append(entry)
        if len(signature) > 1:
            signature.sort()
        return tuple(signature)

    def _line(self, sku: Any, line_no: Any, quantity: Any, amount: Any) -> tuple[str, Decimal, Decimal]:
        """One line's (sku, quantity, amount), shared by every line with the same values."""
        sku = sku or f"#{line_no}"
        entry = (self.seen.setdefault(sku, sku), self.decimal(quantity), self.decimal(amount))
        return self.seen.setdefault(entry, entry)  # type: ignore[no-any-return]


_DECODER = json.JSONDecoder(parse_float=Decimal)
_SCAN = json.scanner.make_scanner(_DECODER)  # type: ignore[arg-type]  # typeshed: it takes the decoder
"""The decoder's scanner called directly: the database's JSON text has no white space around it to skip."""


def row_record(row: Sequence[Any], values: _Values | None = None) -> DocRecord | None:
    """A row of :func:`record_query` as the compare stage's record; None when it is not a sale or a return."""
    values = values or _Values()
    share = values.seen.setdefault
    _, store, day, number, total, account, status, flat, more, key = row
    members = _SCAN(flat, 0)[0]
    system, doc_id, kind, occurred, fn, fd = members[:_SCALARS]
    if kind not in _RECEIPTS:
        return None
    instant = datetime.fromisoformat(occurred)
    zone = instant.tzinfo
    return DocRecord(
        share(system, system),
        doc_id,
        share(kind, kind),
        share(store, store),
        values.days.get(day) or values.day(day),
        instant.replace(tzinfo=share(zone, zone)),
        number,
        values.money_of.get(total) or values.money(total),
        account,
        values.lines(members, more),
        (fn, fd) if fn is not None and fd is not None else None,
        str(key) if key else None,
        share(status, status),
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
        workers: processes that share the store-days (:meth:`passes`); None: one per core (two at most) from
            :data:`_PARALLEL_ROWS` documents in the window, else one.

    Attributes:
        counts: system → records read with a business date in ``window`` (after :meth:`groups` has run).
        read_s: seconds spent reading and building records (the rest of a streamed compare is the compare);
            with several processes, the longest process's.
        worker_peak_rss_mb: each other process's own peak RSS (:meth:`passes`).
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
    workers: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    read_s: float = 0.0
    worker_peak_rss_mb: list[float] = field(default_factory=list)

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
        left_system = self.left
        for row in self._rows(query):
            group = (row[1], row[2])
            if group != current:
                if left or right:
                    yield from self._hand_out(left, right, first, last, started)
                    left, right, started = [], [], time.perf_counter()
                values.trim()
                current = group
            record = row_record(row, values)
            if record is not None:
                (left if row[0] == left_system else right).append(record)
        if left or right:
            yield from self._hand_out(left, right, first, last, started)

    def _rows(self, query: Select[Any]) -> Iterator[Sequence[Any]]:
        """The rows of ``query`` in batches (a server-side cursor on PostgreSQL)."""
        with self.store.engine.connect() as connection:
            yield from connection.execution_options(yield_per=_BATCH).execute(query)

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

    def passes(self, run: Callable[[Iterator[Groups]], T]) -> list[T]:
        """``run`` over the store-days, in this process or shared by store between :attr:`workers` processes.

        Each process reads its stores' store-days itself and hands back only what ``run`` returns (what the
        store-days left unpaired and their discrepancies), so the records are built where they are used. This
        process takes the first share meanwhile.
        """
        parts = self._partitions()
        if len(parts) == 1:
            return [run(self.groups())]
        self.counts, self.read_s = {self.left: 0, self.right: 0}, 0.0
        context = multiprocessing.get_context("fork" if threading.active_count() == 1 else "forkserver")
        with ProcessPoolExecutor(max_workers=len(parts) - 1, mp_context=context) as pool:
            futures = [pool.submit(_share, part, run) for part in parts[1:]]
            mine = run(parts[0].groups())
            results: list[tuple[T, dict[str, int], float, float | None]] = [
                (mine, parts[0].counts, parts[0].read_s, None),
                *(future.result() for future in futures),
            ]
        self.worker_peak_rss_mb = [peak for *_, peak in results if peak is not None]
        for _, counts, read_s, _ in results:
            self.read_s = max(self.read_s, read_s)
            for system, count in counts.items():
                self.counts[system] += count
        return [result for result, *_ in results]

    def _partitions(self) -> list[JournalPairs]:
        """This reader split by store into :attr:`workers` readers (just itself for one)."""
        workers = self.workers
        if workers is None:
            workers = min(2, os.cpu_count() or 1) if self._size() >= _PARALLEL_ROWS else 1
        if workers <= 1:
            return [self]
        stores = list(self.stores) if self.stores is not None else self._stores()
        if len(stores) < 2:
            return [self]
        shares = [sorted(stores)[n::workers] for n in range(workers)]
        return [replace(self, stores=share, counts={}, read_s=0.0, worker_peak_rss_mb=[]) for share in shares]

    def _span(self, query: Select[Any]) -> Select[Any]:
        """The window's dates (and stores) only: answered from the ``(store, business_date)`` index alone."""
        query = query.where(_DOC.business_date.between(min(self.left_from, self.right_from), self.last))
        return query.where(_DOC.store.in_(list(self.stores))) if self.stores is not None else query

    def _size(self) -> int:
        """How many documents the window holds (an upper bound: every system's, postings too)."""
        with self.store.engine.connect() as connection:
            return int(connection.execute(self._span(select(func.count()).select_from(_DOC))).scalar() or 0)

    def _stores(self) -> list[str]:
        query = self._span(select(_DOC.store).distinct()).where(_DOC.store.is_not(None))
        with self.store.engine.connect() as connection:
            return list(connection.execute(query).scalars())

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled for another process as its database URL and parameters; it opens the database itself."""
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "store"}
        return (_reopened, (self.store.engine.url.render_as_string(hide_password=False), fields))

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
    workers: int | None = None,
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
        workers: processes sharing the store-days (:attr:`JournalPairs.workers`).
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
        workers=workers,
    )


def _reopened(url: str, fields: dict[str, Any]) -> JournalPairs:
    return JournalPairs(open_store(url, migrate=False), **fields)


def _share(
    part: JournalPairs, run: Callable[[Iterator[Groups]], T]
) -> tuple[T, dict[str, int], float, float | None]:
    """One process's share (:meth:`JournalPairs.passes`): the result, counts, reading seconds and its peak RSS."""
    try:
        result = run(part.groups())
    finally:
        part.store.close()
    return result, part.counts, part.read_s, own_peak_rss_mb()


def own_peak_rss_mb() -> float | None:
    """This process's own peak RSS in MB (``VmHWM``), or None where ``/proc`` has none."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None
