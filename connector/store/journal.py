"""The document journal: raw and canonical forms of every document read, deduplicated by id and version.

One row per (system, kind, source id). A re-read of a document is recognised by its version — 1C's
``DataVersion``, or for a system without one (Evotor) the SHA-256 of the raw payload (:func:`raw_version`) — and
leaves the row alone; a new version replaces the raw and canonical forms. A payload that could not be mapped is
kept raw (``canonical`` null) beside the failed item that names the field. Deleted and unposted documents stay
in the journal with their ``status`` (``deleted``, ``draft``): nothing read is ever dropped.

Cross-references (:meth:`Journal.link`) record that two refs are the same business document, e.g. an Evotor
receipt and the 1C ``ЧекККМ`` the connector created for it.

A pull journals a page at a time with :meth:`Journal.upsert_many`: one transaction, one query for the page's
known versions, one multi-row insert and one update per changed shape — the same outcomes as :meth:`Journal.upsert`
document by document.

Example:
    >>> journal = Journal(store.sessions)                                        # doctest: +SKIP
    >>> journal.upsert(record_system, "receipt", doc_id, version=v, raw=payload, document=sale)
    'new'
    >>> journal.documents_in_window("evotor", None, date(2026, 11, 1), date(2026, 11, 7))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from itertools import chain
from typing import Any, Literal

from sqlalchemy import ColumnElement, Dialect, String, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, defer, sessionmaker

from connector.model import DocRef, Posting, Return, Sale, dump_document, dump_posting, parse_document
from connector.store.tables import CrossRef, JournalDocument, utc_now
from connector.store.types import JSONBytes, stable_json

__all__ = [
    "Journal",
    "JournalEntry",
    "JournalPage",
    "JournalWrite",
    "Upserted",
    "raw_version",
    "sent_version",
]

Upserted = Literal["new", "changed", "unchanged"]
_IN_CHUNK = 500  # bound parameters per IN (...) query: far below SQLite's and PostgreSQL's limits
_JSON_EACH = func.json_each(bindparam("ids", type_=String)).table_valued("value")
"""SQLite's ``json_each(:ids)``: the values of a JSON array given as one parameter, as rows."""


def raw_version(payload: Any) -> str:
    """The version of a payload from a system without one: SHA-256 of its canonical JSON (keys sorted).

    The JSON is :func:`~connector.store.types.stable_json`: the text of ``canonical_json`` without its walk for
    floats (raw payloads are decoded with ``parse_float=Decimal`` and hold none), so versions journaled before
    are unchanged and nothing is re-mapped.
    """
    return hashlib.sha256(stable_json(payload).encode()).hexdigest()


def sent_version(data: bytes) -> str:
    """The version of a payload kept as its system sent it (no version of its own): SHA-256 of its UTF-8."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class JournalWrite:
    """One document for :meth:`Journal.upsert_many`; the fields are :meth:`Journal.upsert`'s arguments.

    Attributes:
        aliases: other kinds the same document may already be journaled under — a payload that did not map is
            journaled under its entity (``SELL``), and once mapped it is the same row (``receipt``).
        landing: a receipt journaled raw under its place (kind, store, business date) to be mapped later
            (:meth:`Journal.unmapped`, :meth:`Journal.set_canonical`): a row at the same version that is not
            mapped yet is given this place again, so that the map stage finds it; its outcome stays
            ``unchanged``.
    """

    kind: str
    source_id: str
    version: str
    raw: Any
    document: Sale | Return | Posting | None
    store: str | None = None
    business_date: date | None = None
    aliases: tuple[str, ...] = ()
    landing: bool = False


@dataclass
class _Known:
    """A journal row as :meth:`Journal.upsert_many` sees it: stored (``id``) or inserted by this page."""

    kind: str
    version: str | None
    mapped: bool
    id: int | None = None
    pending: tuple[int, int] | None = None  # a new row of this landing: its (page, write) indexes
    store: str | None = None
    business_date: date | None = None


def _pick(rows: Sequence[_Known], kind: str) -> _Known | None:
    """The row an upsert under ``kind`` updates: the one of that kind, else the oldest of another."""
    if not rows:
        return None
    return next((row for row in rows if row.kind == kind), rows[0])


@dataclass(frozen=True)
class JournalEntry:
    """One journaled document as stored.

    Attributes:
        ref: the document's ``DocRef`` (system, kind, source id).
        status: ``posted``, ``draft`` or ``deleted``.
        canonical: the canonical JSON, or None when the raw payload is waiting or failed to map.
        raw: the payload as the system sent it (numbers as strings).
    """

    id: int
    ref: DocRef
    store: str | None
    business_date: date | None
    occurred_at: datetime | None
    number: str | None
    total: Decimal | None
    account: str | None
    version: str | None
    status: str
    canonical: dict[str, Any] | None
    raw: Any
    last_seen_at: datetime

    @property
    def document(self) -> Sale | Return | None:
        """The canonical sale or return (None for an unmapped payload or a posting)."""
        if self.canonical is None or self.canonical.get("type") not in ("sale", "return"):
            return None
        return parse_document(self.canonical)

    @property
    def posting(self) -> Posting | None:
        """The canonical posting of a ledger operation (None for documents)."""
        if self.canonical is None or "type" in self.canonical:
            return None
        return Posting.model_validate(self.canonical)


def _entry(row: JournalDocument, *, raw: bool = True) -> JournalEntry:
    return JournalEntry(
        id=row.id,
        ref=DocRef(system=row.system, kind=row.kind, id=row.source_id),
        store=row.store,
        business_date=row.business_date,
        occurred_at=row.occurred_at,
        number=row.number,
        total=row.total,
        account=row.account,
        version=row.version,
        status=row.status,
        canonical=row.canonical,
        raw=row.raw if raw else None,
        last_seen_at=row.last_seen_at,
    )


def _columns(document: Sale | Return | Posting | None) -> dict[str, Any]:
    """The indexed columns of a canonical object (all None for an unmapped payload)."""
    if isinstance(document, Posting):
        return {
            "store": None,
            "business_date": document.occurred_at.date(),
            "occurred_at": document.occurred_at,
            "number": None,
            "total": document.amount,
            "account": document.account,
            "status": "posted" if document.status != "cancelled" else "deleted",
            "canonical": dump_posting(document),
        }
    if document is None:  # nothing of an older version's mapping stays beside a raw payload not mapped (yet)
        return dict.fromkeys(("occurred_at", "number", "total", "account", "canonical"))
    return {
        "store": document.store,
        "business_date": document.business_date,
        "occurred_at": document.occurred_at,
        "number": document.number,
        "total": document.total,
        "account": document.account,
        "status": document.status,
        "canonical": dump_document(document),
    }


_MAPPED_COLUMNS = (
    "store",
    "business_date",
    "occurred_at",
    "number",
    "total",
    "account",
    "status",
    "canonical",
)
"""The columns a canonical object fills (:func:`_columns` of a document)."""

_INSERT_DEFAULTS: dict[str, Any] = {
    **dict.fromkeys(("store", "business_date", "occurred_at", "number", "total", "account", "canonical")),
    "status": "posted",
}
"""What a new row holds in the columns an unmapped payload does not give (the table's defaults)."""
_ROW_COLUMNS = (
    "system", "kind", "source_id", "store", "business_date", "occurred_at", "number", "total", "account",
    "version", "status", "canonical", "raw", "first_seen_at", "last_seen_at",
)  # fmt: skip
"""Every column of a journal row but its generated id, as a new row names them."""


def _values(
    kind: str, version: str, raw: Any, document: Sale | Return | Posting | None, store: str | None,
    business_date: date | None, now: datetime,
) -> dict[str, Any]:  # fmt: skip
    """The columns an upsert writes (see :meth:`Journal.upsert` for ``store`` and ``business_date``)."""
    values = {"kind": kind, "version": version, "raw": raw, "last_seen_at": now, **_columns(document)}
    if store is not None and values.get("store") is None:
        values["store"] = store
    if business_date is not None:
        values["business_date"] = business_date
    return values


_TABLE = JournalDocument.metadata.tables[JournalDocument.__tablename__]


@dataclass(frozen=True)
class _InsertPlan:
    """The journal's INSERT compiled for one dialect: its SQL, its parameters in order, and each one's bind
    processor (what SQLAlchemy would apply to the value: zones, JSON, minor units).

    On SQLite, rows go in multi-row ``VALUES`` statements of up to :data:`_ROWS_PER_INSERT` rows: one statement
    steps once, with the interpreter lock released for the whole page, where ``executemany`` released it and
    took it back for every row, waiting its turn among the pull's threads each time. Elsewhere (psycopg
    pipelines it) one ``executemany``.
    """

    sql: str
    names: tuple[str, ...]
    positional: bool
    processors: tuple[Any, ...]
    multirow: bool

    def params(self, rows: Sequence[dict[str, Any]]) -> list[Any]:
        """Each row's parameters, processed: a tuple (positional) or a dict. A value the row before shares (a
        page's timestamps, its store and day) is processed once."""
        processed = [(index, process) for index, process in enumerate(self.processors) if process is not None]
        last: list[Any] = [None] * len(self.names)
        done: list[Any] = [None] * len(self.names)
        params: list[Any] = []
        for row in rows:
            full = {**_INSERT_DEFAULTS, **row}
            values = [full[name] for name in self.names]
            for index, process in processed:
                value = values[index]
                if value is None:
                    continue
                if value is not last[index]:
                    last[index], done[index] = value, process(value)
                values[index] = done[index]
            params.append(tuple(values) if self.positional else dict(zip(self.names, values, strict=True)))
        return params

    def execute(self, session: Session, params: Sequence[Any]) -> None:
        """Insert rows of :meth:`params` on the session's connection."""
        connection = session.connection()
        if not self.multirow:
            connection.exec_driver_sql(self.sql, list(params))
            return
        driver = connection.connection.dbapi_connection
        assert driver is not None
        limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        size = max(1, min(_ROWS_PER_INSERT, limit // len(self.names)))
        for start in range(0, len(params), size):
            batch = params[start : start + size]
            connection.exec_driver_sql(_multirow_sql(self.sql, len(batch)), tuple(chain.from_iterable(batch)))


_ROWS_PER_INSERT = 1000
"""Rows per multi-row INSERT on SQLite at most (15,000 parameters: a pull's page in one statement), fewer where
the library allows fewer parameters per statement (999 before SQLite 3.32)."""
_INSERT_PLANS: dict[tuple[str, str], _InsertPlan] = {}  # by (dialect, driver): the driver sets the paramstyle


def _insert_plan(dialect: Dialect) -> _InsertPlan:
    plan = _INSERT_PLANS.get((dialect.name, dialect.driver))
    if plan is None:
        compiled = insert(_TABLE).compile(dialect=dialect, column_keys=list(_ROW_COLUMNS))
        names = tuple(compiled.positiontup or ()) if compiled.positional else _ROW_COLUMNS
        processors: tuple[Callable[[Any], Any] | None, ...] = tuple(
            _TABLE.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        )
        sql, multirow = str(compiled), dialect.name == "sqlite" and bool(compiled.positional)
        if multirow:  # a raw payload kept as sent goes in as its bytes, cast to text by SQLite (JSONBytes)
            head, _, _ = sql.partition(" VALUES ")
            marks = ", ".join("CAST(? AS TEXT)" if name == "raw" else "?" for name in names)
            sql = f"{head} VALUES ({marks})"
            processors = tuple(
                _sent_as_is(process) if name == "raw" and process is not None else process
                for name, process in zip(names, processors, strict=True)
            )
        plan = _InsertPlan(sql, names, bool(compiled.positional), processors, multirow)
        _INSERT_PLANS[dialect.name, dialect.driver] = plan
    return plan


def _sent_as_is(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A JSON column's bind processor that lets :class:`JSONBytes` through as bytes (the SQL casts them)."""

    def bind(value: Any) -> Any:
        return value if isinstance(value, JSONBytes) else process(value)

    return bind


@lru_cache(maxsize=8)
def _multirow_sql(sql: str, rows: int) -> str:
    """``INSERT … VALUES (?, …)`` for ``rows`` rows (the same text for the same count, so the driver's
    statement cache keeps it prepared)."""
    head, _, values = sql.partition(" VALUES ")
    return f"{head} VALUES {', '.join([values] * rows)}"


def _decide(
    number: int, page: JournalPage, known: dict[str, list[_Known]], pages: Sequence[JournalPage],
    inserts: list[tuple[int, int]], merged: dict[tuple[int, int], dict[str, Any]],
    updates: dict[int, dict[str, Any]],
) -> list[Upserted]:  # fmt: skip
    """Each write's outcome in a landing (see :meth:`Journal.upsert`), against the rows known so far: a new row
    is added to ``inserts`` (and to ``known``, as pending), a change of a pending row merged into a copy of it
    (``merged``: the pages are left as prepared, to be landed again if the transaction fails), a change of a
    stored one into ``updates``."""
    outcomes: list[Upserted] = []
    for index, (write, value) in enumerate(zip(page.writes, page.values, strict=True)):
        found = known.setdefault(write.source_id, [])
        row = _pick(found, write.kind)
        if row is None:
            inserts.append((number, index))
            found.append(
                _Known(write.kind, write.version, write.document is not None, pending=(number, index))
            )
            outcomes.append("new")
            continue
        same = row.version == write.version
        if same and (row.mapped or (write.document is None and not write.landing)):
            outcomes.append("unchanged")
            continue
        if row.pending is not None:
            page_no, write_no = row.pending
            merged.setdefault(row.pending, dict(pages[page_no].rows[write_no])).update(value)
        else:
            assert row.id is not None
            updates.setdefault(row.id, {}).update(value)
        row.kind, row.version, row.mapped = write.kind, write.version, write.document is not None
        outcomes.append("unchanged" if same and write.landing else "changed")
    return outcomes


def _writes_of(pages: Sequence[JournalPage], system: str) -> list[JournalWrite]:
    return [write for page in pages if page.system == system for write in page.writes]


@dataclass(frozen=True)
class JournalPage:
    """A page of journal writes made ready for the database by :meth:`Journal.prepare`: each write's columns,
    its row as if new, and that row's parameters processed for the dialect's INSERT."""

    system: str
    writes: list[JournalWrite]
    values: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    params: list[Any]
    plan: _InsertPlan


class Journal:
    """The journal over the state database; obtain it as ``Journal(store.sessions)``.

    Args:
        sessions: the store's session factory.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def upsert(
        self,
        system: str,
        kind: str,
        source_id: str,
        *,
        version: str,
        raw: Any,
        document: Sale | Return | Posting | None,
        store: str | None = None,
        business_date: date | None = None,
    ) -> Upserted:
        """Journal a document read from ``system``: new, a new version of a known one, or unchanged.

        A row journaled under another kind for the same source id (a raw payload that failed to map, journaled
        under its entity) is the same document and is updated, not duplicated. An unchanged version whose
        earlier read did not map is mapped again (the mapping may have been fixed).

        Args:
            system: the configured system name.
            kind: the document's ``DocRef.kind`` (the entity when it did not map).
            source_id: the id in the source system.
            version: the source's version, or :func:`raw_version` of ``raw``.
            raw: the raw payload as read.
            document: the canonical object, or None when the payload did not map.
            store: the store when known without mapping, or the store a ledger operation belongs to.
            business_date: the business date a ledger operation belongs to (its source document's), when known.
        """
        now = utc_now()
        values = _values(kind, version, raw, document, store, business_date, now)
        with self._sessions.begin() as session:
            row = self._row(session, system, source_id, kind)
            if row is None:
                session.add(JournalDocument(system=system, source_id=source_id, first_seen_at=now, **values))
                return "new"
            if row.version == version and (row.canonical is not None or document is None):
                return "unchanged"
            for name, value in values.items():
                setattr(row, name, value)
            return "changed"

    def upsert_many(
        self,
        system: str,
        writes: Sequence[JournalWrite],
        *,
        lock: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> list[Upserted]:
        """Journal a page of documents of ``system`` in one transaction; the outcome of each, in order.

        Each write has exactly :meth:`upsert`'s semantics, as if they were upserted one after the other: a row
        under another kind of the same source id (its ``aliases``) is the same document; an unchanged version
        whose row did not map is mapped again; a source id twice in the page is new, then changed or unchanged.
        The page's known rows are read in one query (SQLite: every id in one JSON parameter; PostgreSQL: per 500
        ids, locked); new rows go in multi-row inserts, changed ones in one update per shape.

        Args:
            system: the configured system name.
            writes: the page.
            lock: held around the transaction only (a SQLite writer's turn, see
                :meth:`connector.sync.context.SyncContext.writing`): every write's values are made ready for the
                database as if it were new before it is taken (:meth:`prepare`).
        """
        if not writes:
            return []
        return self.land([self.prepare(system, writes)], lock=lock)[0]

    def prepare(self, system: str, writes: Sequence[JournalWrite]) -> JournalPage:
        """A page of :meth:`upsert_many` made ready for the database, without touching it: every write's
        values processed as if its row were new (JSON, zones, dates, minor units). Land it with :meth:`land`."""
        now = utc_now()
        values = [_values(write.kind, write.version, write.raw, write.document, write.store, write.business_date,
                          now) for write in writes]  # fmt: skip
        rows = [
            {"system": system, "source_id": write.source_id, "first_seen_at": now, **value}
            for write, value in zip(writes, values, strict=True)
        ]
        plan = _insert_plan(self._dialect())
        return JournalPage(system, list(writes), values, rows, plan.params(rows), plan)

    def land(
        self,
        pages: Sequence[JournalPage],
        *,
        lock: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> list[list[Upserted]]:
        """Journal prepared pages in one transaction, in order, under ``lock``; each page's outcomes.

        The pages land exactly as :meth:`upsert_many` after one another would land them (a later page sees what
        an earlier one journaled), but with one read of the known rows per system and one commit.
        """
        with lock(), self._sessions.begin() as session:
            known = {
                system: self._known(session, system, _writes_of(pages, system))
                for system in dict.fromkeys(page.system for page in pages if page.writes)
            }
            outcomes: list[list[Upserted]] = []
            inserts: list[tuple[int, int]] = []  # (page, write) of each new row, in order
            merged: dict[tuple[int, int], dict[str, Any]] = {}  # new rows a later write changed
            updates: dict[int, dict[str, Any]] = {}
            for number, page in enumerate(pages):
                outcomes.append(
                    _decide(number, page, known.get(page.system, {}), pages, inserts, merged, updates)
                )
            if inserts:
                plan = pages[0].plan
                again = {at: plan.params([row])[0] for at, row in merged.items()}
                plan.execute(session, [again.get(at) or pages[at[0]].params[at[1]] for at in inserts])
            if updates:
                session.execute(
                    update(JournalDocument), [{"id": id_, **changes} for id_, changes in updates.items()]
                )
        return outcomes

    def _dialect(self) -> Dialect:
        dialect: Dialect = self._sessions.kw["bind"].dialect
        return dialect

    def unchanged(
        self, system: str, writes: Sequence[JournalWrite]
    ) -> dict[str, tuple[str | None, date | None]]:
        """Which of ``writes`` :meth:`upsert_many` would find unchanged once mapped, without mapping them.

        A write here names the kind its document maps to and its version (``document`` is ignored): it is
        unchanged when the row an upsert would update is mapped and at that version. Answers source id → the
        row's (store, business date). A re-read of the lookback window is then not mapped again.
        """
        if not writes:
            return {}
        with self._sessions() as session:
            known = self._known(session, system, writes, lock=False)
        found: dict[str, tuple[str | None, date | None]] = {}
        for write in writes:
            row = _pick(known.get(write.source_id, []), write.kind)
            if row is not None and row.mapped and row.version == write.version:
                found[write.source_id] = (row.store, row.business_date)
        return found

    def _known(
        self, session: Session, system: str, writes: Sequence[JournalWrite], *, lock: bool = True
    ) -> dict[str, list[_Known]]:
        """The stored rows of the writes' source ids under their kinds and aliases, oldest first, locked.

        The query is served by the unique (system, source id, kind) index (migration 0004), the kinds narrowing
        each source id's entries.
        """
        kinds = sorted({kind for write in writes for kind in (write.kind, *write.aliases)})
        wanted = list(dict.fromkeys(write.source_id for write in writes))
        row = JournalDocument
        mapped = row.canonical.is_not(
            None
        )  # not decoded: only whether it is mapped (SQL NULL, migration 0003)
        known: dict[str, list[_Known]] = {}
        # SQLite: every id in one JSON parameter, read by json_each (one statement, compiled once, however many
        # ids); elsewhere IN lists of _IN_CHUNK.
        one_parameter = session.get_bind().dialect.name == "sqlite"
        step = len(wanted) if one_parameter else _IN_CHUNK
        for start in range(0, len(wanted), max(step, 1)):
            chunk = wanted[start : start + step]
            ids = (
                row.source_id.in_(select(_JSON_EACH.c.value).select_from(_JSON_EACH))
                if one_parameter
                else row.source_id.in_(chunk)
            )
            query = (
                select(row.id, row.kind, row.source_id, row.version, mapped, row.store, row.business_date)
                .where(row.system == system, row.kind.in_(kinds), ids)
                .order_by(JournalDocument.id)
            )
            if lock:
                query = query.with_for_update()
            parameters = {"ids": json.dumps(chunk)} if one_parameter else {}
            for id_, kind, source_id, version, is_mapped, store, day in session.execute(query, parameters):
                entry = _Known(kind, version, bool(is_mapped), id=id_, store=store, business_date=day)
                known.setdefault(source_id, []).append(entry)
        return known

    def places(self, system: str, source_ids: Iterable[str]) -> dict[str, tuple[str | None, date | None]]:
        """The (store, business date) of each of ``source_ids`` of ``system`` that is journaled (any kind).

        One query per 500 ids; where a source id is journaled under several kinds, the oldest row answers.
        """
        wanted, row = list(dict.fromkeys(source_ids)), JournalDocument
        found: dict[str, tuple[str | None, date | None]] = {}
        with self._sessions() as session:
            for start in range(0, len(wanted), _IN_CHUNK):
                query = (
                    select(row.source_id, row.store, row.business_date)
                    .where(row.system == system, row.source_id.in_(wanted[start : start + _IN_CHUNK]))
                    .order_by(row.id)
                )
                for source_id, store, day in session.execute(query):
                    found.setdefault(source_id, (store, day))
        return found

    def unmapped(self, system: str, store: str | None, day: date) -> list[JournalEntry]:
        """The documents of ``system`` journaled raw under (``store``, ``day``) and not mapped, in id order.

        What a pull landed (:attr:`JournalWrite.landing`) and what did not map before: the map stage of the
        store's day maps them (:meth:`set_canonical`).
        """
        row = JournalDocument
        query = (
            select(row)
            .where(
                row.system == system,
                row.store.is_(None) if store is None else row.store == store,
                row.business_date == day,
                row.canonical.is_(None),
            )
            .order_by(row.id)
        )
        with self._sessions() as session:
            return [_entry(found) for found in session.scalars(query)]

    def set_canonical(self, mapped: Sequence[tuple[JournalEntry, Sale | Return | Posting]]) -> None:
        """Store what the map stage made of entries from :meth:`unmapped` (one statement for all of them).

        A row is written only at the version that was mapped: one a pull has replaced meanwhile keeps its newer
        raw payload, waiting to be mapped in turn.
        """
        if not mapped:
            return
        table = JournalDocument.metadata.tables[JournalDocument.__tablename__]
        statement = (
            update(table)
            .where(table.c.id == bindparam("row_id"), table.c.version == bindparam("row_version"))
            .values({name: bindparam(f"new_{name}") for name in _MAPPED_COLUMNS})
        )
        rows = [
            {
                "row_id": entry.id,
                "row_version": entry.version,
                **{f"new_{name}": value for name, value in _columns(document).items()},
            }
            for entry, document in mapped
        ]
        with self._sessions.begin() as session:
            session.execute(statement, rows)

    def _row(self, session: Session, system: str, source_id: str, kind: str) -> JournalDocument | None:
        rows = session.scalars(
            select(JournalDocument)
            .where(JournalDocument.system == system, JournalDocument.source_id == source_id)
            .with_for_update()
        ).all()
        exact = [row for row in rows if row.kind == kind]
        return exact[0] if exact else (rows[0] if rows else None)

    def get(self, ref: DocRef | tuple[str, str]) -> JournalEntry | None:
        """The journaled document with this ref (or ``(system, source id)`` in any kind), or None."""
        system, source_id = (ref.system, ref.id) if isinstance(ref, DocRef) else ref
        query = select(JournalDocument).where(
            JournalDocument.system == system, JournalDocument.source_id == source_id
        )
        if isinstance(ref, DocRef):
            query = query.where(JournalDocument.kind == ref.kind)
        with self._sessions() as session:
            row = session.scalars(query.limit(1)).first()
            return _entry(row) if row else None

    def find(self, source_id: str) -> list[JournalEntry]:
        """Every journaled document with this source id, in any system (``sync --document ID``)."""
        with self._sessions() as session:
            rows = session.scalars(select(JournalDocument).where(JournalDocument.source_id == source_id))
            return [_entry(row) for row in rows]

    def documents_in_window(
        self,
        system: str,
        stores: Sequence[str] | None,
        date_from: date,
        date_to: date,
        *,
        statuses: Sequence[str] | None = None,
        raw: bool = True,
    ) -> list[JournalEntry]:
        """Documents of ``system`` with a business date in ``[date_from, date_to]`` (inclusive).

        Args:
            system: the configured system name.
            stores: only these stores; None for every store.
            date_from: the first business date.
            date_to: the last business date, inclusive.
            statuses: only these statuses (``posted`` …); None for all.
            raw: False leaves the raw payloads unread (``raw`` None): faster when only the canonical is needed.

        Returns:
            Entries ordered by business date, time and id; unmapped payloads have ``canonical`` None.
        """
        query = select(JournalDocument).where(
            JournalDocument.system == system,
            JournalDocument.business_date >= date_from,
            JournalDocument.business_date <= date_to,
        )
        if stores is not None:
            query = query.where(JournalDocument.store.in_(list(stores)))
        if statuses is not None:
            query = query.where(JournalDocument.status.in_(list(statuses)))
        query = query.order_by(JournalDocument.business_date, JournalDocument.occurred_at, JournalDocument.id)
        if not raw:
            query = query.options(defer(JournalDocument.raw))
        with self._sessions() as session:
            return [_entry(row, raw=raw) for row in session.scalars(query)]

    def by_account(self, account: str, *, system: str | None = None) -> list[JournalEntry]:
        """Every journaled document of a customer account (E.164 phone or ``card:<n>``), oldest first."""
        query = select(JournalDocument).where(JournalDocument.account == account)
        if system is not None:
            query = query.where(JournalDocument.system == system)
        query = query.order_by(JournalDocument.occurred_at, JournalDocument.id)
        with self._sessions() as session:
            return [_entry(row) for row in session.scalars(query)]

    def spend_before(self, system: str, account: str, before: datetime, *, exclude: str) -> Decimal:
        """The customer's posted sales minus returns in ``system`` before ``before`` (it picks the tier).

        Args:
            exclude: the source id of the document being evaluated (never part of its own history).
        """
        spend = Decimal("0.00")
        for entry in self.by_account(account, system=system):
            if entry.occurred_at is None or entry.occurred_at >= before or entry.ref.id == exclude:
                continue
            if entry.status != "posted" or entry.canonical is None or entry.total is None:
                continue
            spend += entry.total if entry.canonical.get("type") == "sale" else -entry.total
        return spend

    def returns_of(self, sale: DocRef) -> list[Return]:
        """The returns journaled whose ``original`` is ``sale`` (any status), oldest first."""
        original = self.get(sale)
        if original is None or original.occurred_at is None:
            return []
        same_customer: ColumnElement[bool] = JournalDocument.account.is_(None)
        if original.account:
            same_customer = or_(same_customer, JournalDocument.account == original.account)
        query = select(JournalDocument.canonical).where(
            JournalDocument.system == sale.system,
            JournalDocument.occurred_at >= original.occurred_at,
            JournalDocument.canonical.is_not(None),
            same_customer,
        )
        wanted = {"system": sale.system, "kind": sale.kind, "id": sale.id}
        with self._sessions() as session:
            # Filtered on the decoded JSON, parsed only when it matches: anonymous receipts are many.
            matches = [
                parse_document(canonical)
                for canonical in session.scalars(query)
                if canonical.get("type") == "return" and canonical.get("original") == wanted
            ]
        return sorted(
            (ret for ret in matches if isinstance(ret, Return)), key=lambda ret: (ret.occurred_at, ret.ref.id)
        )

    def link(self, one: DocRef, other: DocRef, method: str) -> None:
        """Record that two refs are the same business document (idempotent)."""
        row = CrossRef.between(one, other, method)
        values = {column: getattr(row, column) for column in _CROSS_COLUMNS}
        with self._sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            session.execute(
                insert(CrossRef)
                .values(**values, created_at=utc_now())
                .on_conflict_do_nothing(index_elements=list(_CROSS_COLUMNS[:-1]))
            )

    def linked(self, ref: DocRef) -> list[tuple[DocRef, str]]:
        """The refs cross-referenced with ``ref`` and how each match was made."""
        with self._sessions() as session:
            rows = session.scalars(
                select(CrossRef).where(
                    or_(
                        (CrossRef.left_system == ref.system)
                        & (CrossRef.left_kind == ref.kind)
                        & (CrossRef.left_id == ref.id),
                        (CrossRef.right_system == ref.system)
                        & (CrossRef.right_kind == ref.kind)
                        & (CrossRef.right_id == ref.id),
                    )
                )
            ).all()
        found = []
        for row in rows:
            left = DocRef(system=row.left_system, kind=row.left_kind, id=row.left_id)
            right = DocRef(system=row.right_system, kind=row.right_kind, id=row.right_id)
            found.append((right if left == ref else left, row.method))
        return found

    def existing(self, system: str, source_ids: Iterable[str]) -> set[str]:
        """Which of ``source_ids`` of ``system`` are journaled (one query per 500 ids)."""
        wanted, found = list(dict.fromkeys(source_ids)), set()
        with self._sessions() as session:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                found |= set(
                    session.scalars(
                        select(JournalDocument.source_id).where(
                            JournalDocument.system == system, JournalDocument.source_id.in_(chunk)
                        )
                    )
                )
        return found


_CROSS_COLUMNS = ("left_system", "left_kind", "left_id", "right_system", "right_kind", "right_id", "method")
