"""Routes → writes: what each journaled document must become in the route's target (DESIGN.md §6).

==================  =====================================================================================
``write``           writes of one source document, each under its idempotency key (DESIGN.md §4)
==================  =====================================================================================
``postings``        the program's expected postings of a posted sale or return (redemption, accrual;
                    reversal, refund), appended to our ledger and written as ``{target}:<posting key>``
``documents``       the posted sale or return itself, as ``{target}:{source system}:{source id}:sale|return``
``bonus_documents`` a ledger operation read from the CRM, as ``{target}:<posting key>`` (the key read back
                    from the CRM comment; operations made in the CRM itself have ``{system}:{id}:{kind}``)
==================  =====================================================================================

A sale's postings depend on the customer's spend before it (the tier), read from the journal; a return's on its
original sale and the sale's earlier returns. A return whose original sale is not journaled yet raises
:class:`~connector.sync.failures.WaitingError`: it is retried later, never dropped. Once a document's postings
are in the ledger they are its postings for good (postings are immutable), so re-planning is stable.

A partition plans its documents with a :class:`History`: the ledger's booked documents, the customers' journaled
documents and the returns' original sales and sibling returns, read in a few queries for the whole partition
instead of several per document (the customer's spend alone read every document of the customer, raw payload
included, once per sale). The answers are those of the per-document reads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from connector.config import Route
from connector.errors import ConfigError
from connector.model import DocRef, Posting, Return, Sale, dump_document, parse_document
from connector.rules import return_postings, sale_postings
from connector.store.journal import JournalEntry
from connector.store.ledger import canonical_posting_json
from connector.store.tables import JournalDocument, PostingRow
from connector.sync.batch import outbox_rows
from connector.sync.context import SyncContext
from connector.sync.failures import WaitingError

__all__ = [
    "History",
    "JournaledReturns",
    "PlannedWrite",
    "known_writes",
    "plan_document",
    "posting_payload",
    "receipt_key",
]

_OPERATIONS = {"postings": "posting", "documents": "receipt", "bonus_documents": "bonus_document"}
_IN_CHUNK = 500


@dataclass(frozen=True)
class PlannedWrite:
    """One write a route needs, before it is recorded in the outbox.

    Attributes:
        key: the idempotency key (``crm:evotor:<id>:accrual``, ``onec:evotor:<id>:sale`` …).
        operation: ``posting``, ``receipt`` or ``bonus_document``.
        payload: the canonical JSON written (recorded in the outbox).
        source: the journaled document it comes from (failed items name it).
        posting: for ``postings``, the posting appended to our ledger.
        after: a key that must be confirmed first (a return's sale in 1C), or None.
        document: for ``documents``, the document ``payload`` is the JSON of (spares parsing it again to write
            it); None when the write was read back from the outbox.
    """

    key: str
    operation: str
    payload: dict[str, Any]
    source: DocRef
    store: str | None
    business_date: date | None
    posting: Posting | None = None
    after: str | None = None
    document: Sale | Return | None = None


def posting_payload(posting: Posting) -> dict[str, Any]:
    """A posting as an outbox payload: its JSON with every time in UTC, the same whether it was just computed
    (source offsets) or read back from the ledger (UTC), so a re-plan never looks like a different write."""
    payload: dict[str, Any] = json.loads(canonical_posting_json(posting))
    return payload


def receipt_key(target: str, document: Sale | Return | DocRef) -> str:
    """``{target}:{source system}:{source id}:sale|return`` (a ``DocRef`` is taken as a sale)."""
    if isinstance(document, DocRef):
        return f"{target}:{document.system}:{document.id}:sale"
    return f"{target}:{document.ref.system}:{document.ref.id}:{document.type}"


def plan_document(
    ctx: SyncContext, route: Route, entry: JournalEntry, history: History | None = None
) -> list[PlannedWrite]:
    """The writes ``route`` needs for one journaled document (none for drafts, deleted or anonymous ones).

    Args:
        history: the partition's :class:`History` (read up front); None reads what is needed per document.

    Raises:
        WaitingError: a return whose original sale is not journaled yet.
        ConfigError: a postings route without a ``program:``.
    """
    if entry.status != "posted":
        return []
    if route.write == "bonus_documents":
        posting = entry.posting
        return (
            []
            if posting is None
            else [_write(route, entry, f"{route.to}:{posting.key}", posting_payload(posting))]
        )
    document = entry.document
    if document is None:
        return []
    if route.write == "documents":
        after = (
            receipt_key(route.to, document.original)
            if isinstance(document, Return) and document.original
            else None
        )
        key = receipt_key(route.to, document)
        return [_write(route, entry, key, dump_document(document), after=after, document=document)]
    postings = _postings(ctx, document, history or History(ctx))
    return [
        _write(route, entry, f"{route.to}:{posting.key}", posting_payload(posting), posting=posting)
        for posting in postings
    ]


def _write(
    route: Route, entry: JournalEntry, key: str, payload: dict[str, Any], *, posting: Posting | None = None,
    after: str | None = None, document: Sale | Return | None = None,
) -> PlannedWrite:  # fmt: skip
    return PlannedWrite(key, _OPERATIONS[route.write], payload, entry.ref, entry.store, entry.business_date,
                        posting=posting, after=after, document=document)  # fmt: skip


def _postings(ctx: SyncContext, document: Sale | Return, history: History) -> list[Posting]:
    """The document's postings: those already in our ledger, else the program's expected ones."""
    existing = history.booked(document.ref)
    if existing:
        return existing
    program = ctx.config.program
    if program is None:
        raise ConfigError(
            "a postings route needs the loyalty program: add a program: section to connector.yaml"
        )
    if isinstance(document, Sale):
        if document.account is None:
            return []
        spend = history.spend_before(document.ref, document.account, document.occurred_at)
        return sale_postings(program, document, cumulative_spend=spend)
    return _return_postings(ctx, document, history)


def _return_postings(ctx: SyncContext, ret: Return, history: History) -> list[Posting]:
    program = ctx.config.program
    assert program is not None
    if ret.original is None:
        return []  # return_without_sale: the reconciliation reports it; nothing to post
    original = history.original(ret.original)
    if not isinstance(original, Sale):
        raise WaitingError(
            "the original sale of this return is not in the journal yet; retried after the next pull",
            system=ret.ref.system,
            document=ret.ref.id,
            original=ret.original.id,
        )
    if original.account is None:
        return []
    position = (ret.occurred_at, ret.ref.id)
    earlier = [r for r in history.returns_of(original) if (r.occurred_at, r.ref.id) < position]
    spend = history.spend_before(original.ref, original.account, original.occurred_at)
    return return_postings(
        program, ret, original=original, earlier_returns=earlier, cumulative_spend_at_sale=spend
    )


@dataclass(frozen=True)
class _Past:
    """A journaled document of a customer, as far as the customer's spend needs it."""

    source_id: str
    occurred_at: datetime | None
    posted: bool
    total: Decimal | None
    kind: str | None  # the canonical type (sale, return); None when the payload is not mapped


@dataclass
class History:
    """What planning postings reads besides the document itself, read for a whole partition at once.

    Built empty (``History(ctx)``) it answers every question with the per-document reads of the journal and the
    ledger; :meth:`load` reads a partition's answers up front, in a few queries, and falls back to those reads
    for anything it did not load. Either way the answers are the same.

    Attributes:
        system: the route's source system (what was loaded is of this system).
        ledger_keys: ``{document id: [(outbox key, None)]}`` of the partition's documents with postings in our
            ledger, in booking order (None: not loaded).
    """

    ctx: SyncContext
    system: str = ""
    ledger_keys: dict[str, list[tuple[str, str | None]]] | None = None
    _spend: dict[str, list[_Past]] = field(default_factory=dict)
    _originals: dict[DocRef, Sale | Return | None] = field(default_factory=dict)
    _returns: dict[DocRef, list[Return]] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        ctx: SyncContext,
        route: Route,
        entries: Sequence[JournalEntry],
        returns: JournaledReturns | None = None,
    ) -> History:
        """The history a partition of ``route`` needs (a ``postings`` route; the others need none).

        Args:
            returns: the route's returns read once for all its partitions; None reads those of the partition's
                sales.
        """
        history = cls(ctx, route.from_)
        if route.write != "postings":
            return history
        history.ledger_keys = _ledger_keys(ctx, route, [entry.ref.id for entry in entries])
        fresh = [
            entry.canonical
            for entry in entries
            if entry.status == "posted"
            and entry.canonical is not None
            and entry.ref.id not in history.ledger_keys
        ]
        accounts = {
            entry.account for entry in entries if entry.account and entry.ref.id not in history.ledger_keys
        }
        originals = [
            DocRef.model_validate(canonical["original"])
            for canonical in fresh
            if canonical.get("type") == "return" and canonical.get("original")
        ]
        history._load_originals([ref for ref in originals if ref.system == route.from_])
        sales = [sale for sale in history._originals.values() if isinstance(sale, Sale) and sale.account]
        history._load_returns(sales, returns)
        history._load_spend(accounts | {sale.account for sale in sales if sale.account})
        return history

    def booked(self, ref: DocRef) -> list[Posting]:
        """The document's postings in our ledger, oldest first."""
        if self.ledger_keys is not None and ref.system == self.system and ref.id not in self.ledger_keys:
            return []
        return self.ctx.store.ledger.postings(document=ref)

    def spend_before(self, ref: DocRef, account: str, before: datetime) -> Decimal:
        """The customer's posted sales minus returns in ``ref``'s system before ``before``, ``ref`` left out
        (:meth:`~connector.store.journal.Journal.spend_before`)."""
        past = self._spend.get(account) if ref.system == self.system else None
        if past is None:
            return self.ctx.journal.spend_before(ref.system, account, before, exclude=ref.id)
        spend = Decimal("0.00")
        for item in past:
            if item.occurred_at is None or item.occurred_at >= before or item.source_id == ref.id:
                continue
            if not item.posted or item.kind is None or item.total is None:
                continue
            spend += item.total if item.kind == "sale" else -item.total
        return spend

    def original(self, ref: DocRef) -> Sale | Return | None:
        """The journaled document ``ref`` (a return's original sale), or None."""
        if ref in self._originals:
            return self._originals[ref]
        entry = self.ctx.journal.get(ref)
        return entry.document if entry is not None else None

    def returns_of(self, sale: Sale) -> list[Return]:
        """The journaled returns of ``sale``, oldest first (:meth:`~connector.store.journal.Journal.returns_of`)."""
        found = self._returns.get(sale.ref)
        return list(found) if found is not None else self.ctx.journal.returns_of(sale.ref)

    # -- loading -------------------------------------------------------------------------------------------

    def _load_originals(self, refs: Sequence[DocRef]) -> None:
        row = JournalDocument
        for chunk in _chunks(list(dict.fromkeys(ref.id for ref in refs))):
            query = select(row.kind, row.source_id, row.canonical).where(
                row.system == self.system, row.source_id.in_(chunk)
            )
            for kind, source_id, canonical in self._rows(query):
                self._originals[DocRef(system=self.system, kind=kind, id=source_id)] = _document(canonical)
        for ref in refs:
            self._originals.setdefault(ref, None)

    def _load_returns(self, sales: Sequence[Sale], journaled: JournaledReturns | None) -> None:
        """The returns of these sales: of the sale's customer or anonymous, not before the sale, any status."""
        by_id: dict[str, list[Sale]] = {}
        for sale in sales:
            self._returns[sale.ref] = []
            by_id.setdefault(sale.ref.id, []).append(sale)
        if not by_id:
            return
        found = journaled.of(by_id) if journaled is not None else _returns_of(self.ctx, self.system, sales)
        for account, occurred_at, canonical in found:
            original = canonical.get("original") or {}
            for sale in by_id.get(str(original.get("id")), []):
                ref = {"system": sale.ref.system, "kind": sale.ref.kind, "id": sale.ref.id}
                if original == ref and occurred_at >= sale.occurred_at and account in (None, sale.account):
                    self._returns[sale.ref].append(Return.model_validate(canonical))
        for returns in self._returns.values():
            returns.sort(key=lambda ret: (ret.occurred_at, ret.ref.id))

    def _load_spend(self, accounts: set[str]) -> None:
        row = JournalDocument
        kind = row.canonical["type"].as_string()
        for chunk in _chunks(sorted(accounts)):
            self._spend.update({account: [] for account in chunk})
            query = select(row.source_id, row.account, row.occurred_at, row.status, row.total, kind).where(
                row.system == self.system, row.account.in_(chunk)
            )
            for source_id, account, occurred_at, status, total, type_ in self._rows(query):
                self._spend[account].append(_Past(source_id, occurred_at, status == "posted", total, type_))

    def _rows(self, query: Any) -> list[Any]:
        with self.ctx.store.session() as session:
            return list(session.execute(query))


_Journaled = tuple[str | None, datetime, dict[str, Any]]
"""A journaled return as :class:`History` reads it: account, time, canonical JSON."""


def _returns_query(system: str) -> Any:
    row = JournalDocument
    return select(row.account, row.occurred_at, row.canonical).where(
        row.system == system, row.occurred_at.is_not(None), row.canonical["type"].as_string() == "return"
    )


def _returns_of(ctx: SyncContext, system: str, sales: Sequence[Sale]) -> list[_Journaled]:
    """The journaled returns naming any of ``sales`` as their original, not before the earliest of them."""
    found: list[_Journaled] = []
    earliest = min(sale.occurred_at for sale in sales)
    original_id = JournalDocument.canonical[("original", "id")].as_string()
    with ctx.store.session() as session:
        for chunk in _chunks(list(dict.fromkeys(sale.ref.id for sale in sales))):
            query = _returns_query(system).where(
                JournalDocument.occurred_at >= earliest, original_id.in_(chunk)
            )
            found += [(account, at, canonical) for account, at, canonical in session.execute(query)]
    return found


class JournaledReturns:
    """The journaled returns of one system by their original sale's id, read once, when first needed.

    A return names its sale only inside its canonical JSON, and one made without the customer's card has no
    account to find it by, so finding a sale's returns reads every document of the system. The partitions of a
    route share one such read (made by the first that needs it, after the route's source was pulled); the
    returns journaled after it are those a later pull brings, which a later run sees.

    Args:
        ctx: the run.
        system: the route's source system.
    """

    def __init__(self, ctx: SyncContext, system: str) -> None:
        self.ctx, self.system = ctx, system
        self._by_original: dict[str, list[_Journaled]] | None = None
        self._lock = threading.Lock()

    def of(self, original_ids: Iterable[str]) -> list[_Journaled]:
        """The returns naming any of these source ids as their original (unfiltered otherwise)."""
        with self._lock:
            if self._by_original is None:
                self._by_original = {}
                with self.ctx.store.session() as session:
                    for account, at, canonical in session.execute(_returns_query(self.system)):
                        original = str((canonical.get("original") or {}).get("id"))
                        self._by_original.setdefault(original, []).append((account, at, canonical))
            by_original = self._by_original
        return [item for original in original_ids for item in by_original.get(original, [])]


def _document(canonical: Any) -> Sale | Return | None:
    """:attr:`JournalEntry.document` of a stored canonical."""
    if not isinstance(canonical, dict) or canonical.get("type") not in ("sale", "return"):
        return None
    return parse_document(canonical)


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield list(items[start : start + _IN_CHUNK])


def known_writes(
    ctx: SyncContext, route: Route, entries: Sequence[JournalEntry], history: History | None = None
) -> dict[str, list[PlannedWrite]]:
    """The writes of documents planned by an earlier run, read back from the outbox (a few queries, no rules).

    A document counts as planned when every key it has — its postings in our ledger (``postings``), its receipt
    key (``documents``) or its posting's key (``bonus_documents``) — is in the outbox. Anonymous sales and the
    like have no key and are simply planned again (it costs nothing).

    Args:
        history: the partition's :class:`History`, whose ledger keys are then not read again.
    """
    keys = _keys_by_document(ctx, route, entries, history)
    rows = outbox_rows(ctx.store, (key for doc_keys in keys.values() for key, _ in doc_keys))
    known: dict[str, list[PlannedWrite]] = {}
    for entry in entries:
        doc_keys = keys.get(entry.ref.id)
        if doc_keys and all(key in rows for key, _ in doc_keys):
            known[entry.ref.id] = [
                PlannedWrite(
                    key,
                    rows[key].operation,
                    rows[key].payload,
                    entry.ref,
                    entry.store,
                    entry.business_date,
                    after=after,
                )
                for key, after in doc_keys
            ]
    return known


def _keys_by_document(
    ctx: SyncContext, route: Route, entries: Sequence[JournalEntry], history: History | None
) -> dict[str, list[tuple[str, str | None]]]:
    """``{document id: [(key, after)]}`` as far as it can be known without the rules."""
    if route.write == "postings":
        if history is not None and history.ledger_keys is not None:
            return history.ledger_keys
        return _ledger_keys(ctx, route, [entry.ref.id for entry in entries])
    keys: dict[str, list[tuple[str, str | None]]] = {}
    for entry in entries:
        canonical = entry.canonical or {}
        if route.write == "bonus_documents" and canonical.get("key"):
            keys[entry.ref.id] = [(f"{route.to}:{canonical['key']}", None)]
        elif route.write == "documents" and canonical.get("type") in ("sale", "return"):
            ref, original = canonical["ref"], canonical.get("original")
            after = f"{route.to}:{original['system']}:{original['id']}:sale" if original else None
            keys[entry.ref.id] = [(f"{route.to}:{ref['system']}:{ref['id']}:{canonical['type']}", after)]
    return keys


def _ledger_keys(
    ctx: SyncContext, route: Route, ids: Sequence[str]
) -> dict[str, list[tuple[str, str | None]]]:
    keys: dict[str, list[tuple[str, str | None]]] = {}
    with ctx.store.session() as session:
        for chunk in _chunks(ids):
            rows = session.execute(
                select(PostingRow.document_id, PostingRow.key)
                .where(PostingRow.document_system == route.from_, PostingRow.document_id.in_(chunk))
                .order_by(PostingRow.id)
            )
            for document_id, key in rows:
                keys.setdefault(str(document_id), []).append((f"{route.to}:{key}", None))
    return keys
