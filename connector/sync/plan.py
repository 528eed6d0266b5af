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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from connector.config import Route
from connector.errors import ConfigError
from connector.model import DocRef, Posting, Return, Sale, dump_document
from connector.rules import return_postings, sale_postings
from connector.store.journal import JournalEntry
from connector.store.ledger import canonical_posting_json
from connector.store.tables import PostingRow
from connector.sync.batch import outbox_rows
from connector.sync.context import SyncContext
from connector.sync.failures import WaitingError

__all__ = ["PlannedWrite", "known_writes", "plan_document", "posting_payload", "receipt_key"]

_OPERATIONS = {"postings": "posting", "documents": "receipt", "bonus_documents": "bonus_document"}


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
    """

    key: str
    operation: str
    payload: dict[str, Any]
    source: DocRef
    store: str | None
    business_date: date | None
    posting: Posting | None = None
    after: str | None = None


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


def plan_document(ctx: SyncContext, route: Route, entry: JournalEntry) -> list[PlannedWrite]:
    """The writes ``route`` needs for one journaled document (none for drafts, deleted or anonymous ones).

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
        return [_write(route, entry, receipt_key(route.to, document), dump_document(document), after=after)]
    postings = _postings(ctx, document)
    return [
        _write(route, entry, f"{route.to}:{posting.key}", posting_payload(posting), posting=posting)
        for posting in postings
    ]


def _write(
    route: Route, entry: JournalEntry, key: str, payload: dict[str, Any], *, posting: Posting | None = None,
    after: str | None = None,
) -> PlannedWrite:  # fmt: skip
    return PlannedWrite(key, _OPERATIONS[route.write], payload, entry.ref, entry.store, entry.business_date,
                        posting=posting, after=after)  # fmt: skip


def _postings(ctx: SyncContext, document: Sale | Return) -> list[Posting]:
    """The document's postings: those already in our ledger, else the program's expected ones."""
    existing = ctx.store.ledger.postings(document=document.ref)
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
        spend = _spend_before(ctx, document.ref, document.account, document)
        return sale_postings(program, document, cumulative_spend=spend)
    return _return_postings(ctx, document)


def _spend_before(ctx: SyncContext, ref: DocRef, account: str, document: Sale | Return) -> Decimal:
    return ctx.journal.spend_before(ref.system, account, document.occurred_at, exclude=ref.id)


def _return_postings(ctx: SyncContext, ret: Return) -> list[Posting]:
    program = ctx.config.program
    assert program is not None
    if ret.original is None:
        return []  # return_without_sale: the reconciliation reports it; nothing to post
    entry = ctx.journal.get(ret.original)
    original = entry.document if entry is not None else None
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
    earlier = [r for r in ctx.journal.returns_of(original.ref) if (r.occurred_at, r.ref.id) < position]
    spend = _spend_before(ctx, original.ref, original.account, original)
    return return_postings(
        program, ret, original=original, earlier_returns=earlier, cumulative_spend_at_sale=spend
    )


def known_writes(
    ctx: SyncContext, route: Route, entries: Sequence[JournalEntry]
) -> dict[str, list[PlannedWrite]]:
    """The writes of documents planned by an earlier run, read back from the outbox (a few queries, no rules).

    A document counts as planned when every key it has — its postings in our ledger (``postings``), its receipt
    key (``documents``) or its posting's key (``bonus_documents``) — is in the outbox. Anonymous sales and the
    like have no key and are simply planned again (it costs nothing).
    """
    keys = _keys_by_document(ctx, route, entries)
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
    ctx: SyncContext, route: Route, entries: Sequence[JournalEntry]
) -> dict[str, list[tuple[str, str | None]]]:
    """``{document id: [(key, after)]}`` as far as it can be known without the rules."""
    if route.write == "postings":
        return _ledger_keys(ctx, route, entries)
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
    ctx: SyncContext, route: Route, entries: Sequence[JournalEntry]
) -> dict[str, list[tuple[str, str | None]]]:
    ids = [entry.ref.id for entry in entries]
    keys: dict[str, list[tuple[str, str | None]]] = {}
    with ctx.store.session() as session:
        for start in range(0, len(ids), 500):
            rows = session.execute(
                select(PostingRow.document_id, PostingRow.key)
                .where(PostingRow.document_system == route.from_, PostingRow.document_id.in_(ids[start : start + 500]))
                .order_by(PostingRow.id)
            )  # fmt: skip
            for document_id, key in rows:
                keys.setdefault(str(document_id), []).append((f"{route.to}:{key}", None))
    return keys
