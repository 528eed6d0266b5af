"""The customer view: every document and posting of one account in each system, side by side, with what the
loyalty rules expected, balances per system, pending and expiring points, discrepancies and failed items.

An account is the ledger identity (E.164 phone, else ``card:<number>``). Documents of different systems are put
on one row when a cross-reference joins them. Postings are grouped by the system they were read from
(``ref_system``); postings without a ref are the connector's own (``connector``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import String, cast, or_, select
from sqlalchemy.orm import Session

from connector.config import ConnectorConfig
from connector.errors import ConnectorError
from connector.model import DocRef, Posting, Return, Sale, normalize_phone, parse_document
from connector.rules import evaluate
from connector.store import Store
from connector.store.tables import CrossRef, Discrepancy, FailedItem, JournalDocument, PostingRow

__all__ = [
    "OWN_LEDGER",
    "Balances",
    "CustomerView",
    "ExpectedRow",
    "LinkedRef",
    "PostingView",
    "account_for",
    "customer_view",
    "document_ref",
]

OWN_LEDGER = "connector"
_EXPIRING_WITHIN = timedelta(days=30)
_ZERO = Decimal("0.00")
# A phone as people type it: +7…, 8…/7… with 11 digits, or 10 digits starting with 9; anything else is a card.
_PHONE = re.compile(r"\+[\d\s()\-]{10,20}|[78][\s(\-]*9[\d\s()\-]{9,16}|9[\d\s()\-]{9,14}")


def account_for(query: str) -> str:
    """The account a search means: a phone (any common spelling) in E.164, else ``card:<number>``.

    Example:
        >>> account_for("8 (916) 123-45-67"), account_for("2000123")
        ('+79161234567', 'card:2000123')
    """
    text = query.strip()
    if text.startswith("card:"):
        return text
    if _PHONE.fullmatch(text):
        try:
            return normalize_phone(text)
        except ConnectorError:
            pass
    return f"card:{text}"


@dataclass(frozen=True)
class Balances:
    """Points of one account in one system: the sum, the pending part, and what expires within 30 days."""

    total: Decimal
    pending: Decimal
    expiring: Decimal
    expired: Decimal

    @property
    def available(self) -> Decimal:
        """Points the customer can spend now."""
        return self.total - self.pending - self.expired


@dataclass(frozen=True)
class LinkedRef:
    """A document known in a system only by a cross-reference (written there, not read back yet)."""

    system: str
    kind: str
    source_id: str


Cell = JournalDocument | LinkedRef


@dataclass(frozen=True)
class PostingView:
    """One posting as one system holds it (``connector`` for the connector's own ledger)."""

    system: str
    key: str
    kind: str
    amount: Decimal
    status: str
    document_id: str | None
    occurred_at: datetime
    available_at: datetime | None
    expires_at: datetime | None


@dataclass(frozen=True)
class ExpectedRow:
    """A posting the rules expect, and where it was found (system → the amount there, or absent)."""

    posting: Posting
    found: dict[str, Decimal]


@dataclass
class CustomerView:
    """Everything the customer page shows."""

    account: str
    systems: list[str]
    documents: list[dict[str, Cell]] = field(default_factory=list)
    ledgers: list[str] = field(default_factory=list)
    postings: dict[str, list[PostingView]] = field(default_factory=dict)
    balances: dict[str, Balances] = field(default_factory=dict)
    expected: list[ExpectedRow] = field(default_factory=list)
    expected_error: str | None = None
    discrepancies: list[Discrepancy] = field(default_factory=list)
    failures: list[FailedItem] = field(default_factory=list)

    def posting_rows(self) -> list[tuple[str, str, dict[str, PostingView]]]:
        """Postings side by side: one row per posting key (the cause, the same in every system), a cell per
        system that holds it; the row is labelled with the source document when one is known."""
        rows: dict[str, dict[str, PostingView]] = {}
        for system, postings in sorted(self.postings.items()):
            for posting in postings:
                rows.setdefault(posting.key, {}).setdefault(system, posting)
        labelled = []
        for key, cells in rows.items():
            document = next((p.document_id for p in cells.values() if p.document_id), None)
            labelled.append((document or key, next(iter(cells.values())).kind, cells))
        return labelled

    @property
    def found(self) -> bool:
        """Whether the account appears anywhere."""
        return bool(self.documents or self.postings or self.failures)


def _documents(store: Store, account: str) -> list[JournalDocument]:
    query = select(JournalDocument).where(JournalDocument.account == account)
    with store.session() as session:
        return list(
            session.scalars(query.order_by(JournalDocument.occurred_at, JournalDocument.id).limit(500))
        )


def _rows(store: Store, documents: list[JournalDocument]) -> list[dict[str, Cell]]:
    """Documents put side by side: one row per business document, a cell per system (a :class:`LinkedRef`
    where the other system's copy is known by a cross-reference but not read back into the journal yet)."""
    by_ref = {(d.system, d.kind, d.source_id): d for d in documents}
    rows: list[dict[str, Cell]] = []
    placed: dict[tuple[str, str, str], dict[str, Cell]] = {}
    with store.session() as session:
        for key, document in by_ref.items():
            row = placed.get(key)
            if row is None:
                row = {}
                rows.append(row)
            row.setdefault(document.system, document)
            placed[key] = row
            for other in _linked(session, key):
                placed.setdefault(other, row)
                row.setdefault(other[0], by_ref.get(other) or LinkedRef(*other))
    return rows


def _linked(session: Session, key: tuple[str, str, str]) -> list[tuple[str, str, str]]:
    system, kind, source_id = key
    query = select(CrossRef).where(
        or_(
            (CrossRef.left_system == system) & (CrossRef.left_kind == kind) & (CrossRef.left_id == source_id),
            (CrossRef.right_system == system)
            & (CrossRef.right_kind == kind)
            & (CrossRef.right_id == source_id),
        )
    )
    linked = []
    for ref in session.scalars(query):
        left = (ref.left_system, ref.left_kind, ref.left_id)
        right = (ref.right_system, ref.right_kind, ref.right_id)
        linked.append(right if left == key else left)
    return linked


def _is_receipt(document: JournalDocument) -> bool:
    return bool(document.canonical) and (document.canonical or {}).get("type") in ("sale", "return")


def _from_ledger_row(row: PostingRow) -> PostingView:
    return PostingView(row.ref_system or OWN_LEDGER, row.key, row.kind, row.amount, row.status, row.document_id,
                       row.occurred_at, row.available_at, row.expires_at)  # fmt: skip


def _from_journal(document: JournalDocument) -> PostingView | None:
    """A ledger system's operation as journaled (its canonical form is a posting), or None if unreadable."""
    try:
        posting = Posting.model_validate(document.canonical)
    except ValueError:
        return None
    return PostingView(document.system, posting.key, posting.kind, posting.amount, posting.status,
                       posting.document.id if posting.document else None, posting.occurred_at,
                       posting.available_at, posting.expires_at)  # fmt: skip


def _postings(store: Store, account: str, operations: list[JournalDocument]) -> dict[str, list[PostingView]]:
    """The connector's ledger (by where each posting was read from) and each ledger system's journaled operations."""
    query = (
        select(PostingRow)
        .where(PostingRow.account == account)
        .order_by(PostingRow.occurred_at, PostingRow.id)
    )
    with store.session() as session:
        found = [_from_ledger_row(row) for row in session.scalars(query)]
    found += [view for view in map(_from_journal, operations) if view is not None]
    grouped: dict[str, dict[str, PostingView]] = defaultdict(dict)
    for posting in sorted(found, key=lambda p: p.occurred_at):
        grouped[posting.system].setdefault(posting.key, posting)  # read twice (ledger and journal): once
    return {system: list(by_key.values()) for system, by_key in grouped.items()}


def _balances(rows: list[PostingView], now: datetime) -> Balances:
    total = pending = expiring = expired = _ZERO
    for row in rows:
        if row.status == "cancelled" or row.occurred_at > now:
            continue
        total += row.amount
        if row.amount > 0 and row.available_at is not None and now < row.available_at:
            pending += row.amount
        elif row.amount > 0 and row.expires_at is not None and row.expires_at <= now:
            expired += row.amount
        elif row.amount > 0 and row.expires_at is not None and row.expires_at <= now + _EXPIRING_WITHIN:
            expiring += row.amount
    return Balances(total, pending, expiring, expired)


def _source_documents(documents: list[JournalDocument], config: ConnectorConfig) -> list[Sale | Return]:
    """The canonical documents the rules read: those of the systems routes take postings from."""
    sources = {route.from_ for route in config.routes if route.write == "postings"}
    chosen = [d for d in documents if d.canonical and (not sources or d.system in sources)]
    return [parse_document(d.canonical) for d in chosen if d.canonical is not None]


def _expected(view: CustomerView, documents: list[JournalDocument], config: ConnectorConfig) -> None:
    if config.program is None:
        view.expected_error = "no program in the configuration"
        return
    try:
        evaluation = evaluate(config.program, _source_documents(documents, config))
    except (ConnectorError, ValueError) as exc:
        view.expected_error = str(exc)
        return
    for posting in evaluation.postings:
        if posting.account != view.account:
            continue
        found = {
            system: row.amount
            for system, rows in view.postings.items()
            for row in rows
            if row.key == posting.key
            or (posting.document and row.document_id == posting.document.id and row.kind == posting.kind)
        }
        view.expected.append(ExpectedRow(posting, found))


def _touching(
    store: Store, account: str, documents: list[JournalDocument]
) -> tuple[list[Discrepancy], list[FailedItem]]:
    ids = sorted({d.source_id for d in documents})[:200]
    text = cast(Discrepancy.refs, String)
    touches = or_(text.contains(f'"{account}"'), *(text.contains(f'"{i}"') for i in ids))
    failed = select(FailedItem).where(FailedItem.document_id.in_(ids)).order_by(FailedItem.id.desc())
    with store.session() as session:
        found = list(
            session.scalars(select(Discrepancy).where(touches).order_by(Discrepancy.id.desc()).limit(200))
        )
        return found, list(session.scalars(failed))


def _document_systems(config: ConnectorConfig) -> list[str]:
    """Systems that hold receipts: sources of sale/return routes and targets of document writes, in config order."""
    holding = {r.from_ for r in config.routes if {"sale", "return"} & set(r.documents)}
    holding |= {r.to for r in config.routes if r.write == "documents"}
    return [name for name in config.systems if name in holding]


def _ledger_systems(config: ConnectorConfig, postings: dict[str, list[PostingView]]) -> list[str]:
    """Where postings should be: the connector's ledger, every target of a postings route, and any system
    that holds some — so a ledger without the customer's postings shows as a column of gaps."""
    wanted = [OWN_LEDGER, *(r.to for r in config.routes if r.write == "postings")]
    return list(dict.fromkeys([*wanted, *sorted(postings)]))


def customer_view(store: Store, config: ConnectorConfig, query: str, now: datetime) -> CustomerView:
    """Everything known about the customer a phone or card search names.

    Args:
        store: the state database.
        config: the connector configuration (systems, routes, the loyalty program).
        query: a phone in any common spelling, a card number, or an account as stored.
        now: the moment balances are computed for (aware).
    """
    account = account_for(query)
    journaled = _documents(store, account)
    documents = [d for d in journaled if _is_receipt(d) or not d.canonical]
    view = CustomerView(account=account, systems=_document_systems(config))
    view.documents = _rows(store, documents)
    view.postings = _postings(store, account, [d for d in journaled if d not in documents])
    view.ledgers = _ledger_systems(config, view.postings)
    view.balances = {system: _balances(view.postings.get(system, []), now) for system in view.ledgers}
    _expected(view, documents, config)
    view.discrepancies, view.failures = _touching(store, account, documents)
    for extra in sorted({s for row in view.documents for s in row} - set(view.systems)):
        view.systems.append(extra)
    return view


def document_ref(document: JournalDocument) -> DocRef:
    """The ``DocRef`` of a journal row."""
    return DocRef(system=document.system, kind=document.kind, id=document.source_id)
