"""The canonical rows a reconciliation compares: a snapshot of each system for the window, as plain records.

A :class:`Snapshot` is what the loader (:mod:`connector.reconcile.snapshot`) reads and what the compare stage
(:mod:`connector.reconcile.match`, :mod:`connector.reconcile.ledger`) consumes without any I/O. Records are
small named tuples and slotted dataclasses rather than the pydantic documents, so a million of them fit in a few
hundred megabytes; the full canonical documents are kept only for the system whose documents feed the loyalty
rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple, Protocol, TypeVar

from connector.model import Return, Sale

__all__ = ["DocRecord", "LedgerEntry", "LedgerSide", "PairSource", "Snapshot", "line_signature"]

LineSig = tuple[tuple[str, Decimal, Decimal], ...]
T = TypeVar("T")


def line_signature(document: Sale | Return) -> LineSig:
    """The lines as a sorted tuple of (sku, quantity, amount): order-free, so a renumbered line still agrees."""
    return tuple(
        sorted((line.sku or f"#{line.line_no}", line.quantity, line.amount) for line in document.lines)
    )


class DocRecord(NamedTuple):
    """One receipt of one system, reduced to what matching and comparing need.

    A named tuple: immutable, and built about five times faster than a frozen dataclass (the journal reader
    builds millions of them).

    Attributes:
        system: the configured system name.
        id: the source id (Evotor uuid, 1C ``Ref_Key``).
        kind: ``sale`` or ``return``.
        store: canonical store id.
        business_date: the store-local date.
        occurred_at: aware instant.
        number: the document number in its system.
        total: money.
        account: the customer's ledger identity (phone, else ``card:<n>``), or None when anonymous.
        lines: :func:`line_signature`.
        fiscal: (fn, fd) or None.
        external_key: the connector's key kept on the document (1C ``Комментарий``), or None.
        status: ``posted``, ``draft`` or ``deleted``.
    """

    system: str
    id: str
    kind: str
    store: str
    business_date: date
    occurred_at: datetime
    number: str
    total: Decimal
    account: str | None
    lines: LineSig
    fiscal: tuple[str, str] | None = None
    external_key: str | None = None
    status: str = "posted"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One operation of a bonus ledger (a CRM operation, a 1C bonus document) as a posting.

    Attributes:
        system: the configured system name.
        id: the operation's id there (CRM operation id, 1C ``Ref_Key``).
        key: the posting key (``evotor:<id>:accrual``; ``crm:<op id>:adjustment`` for a manual operation).
        kind: the posting kind.
        amount: signed points.
        account: the customer's ledger identity (phone, else ``card:<n>``).
        holder: the account's id in that system (CRM account id, 1C partner), when known.
        occurred_at: when it was made (aware).
        available_at: when the points become available, for a pending accrual.
        expires_at: when they expire.
        status: ``pending``, ``active`` or ``cancelled``.
    """

    system: str
    id: str
    key: str
    kind: str
    amount: Decimal
    account: str
    holder: str | None
    occurred_at: datetime
    available_at: datetime | None = None
    expires_at: datetime | None = None
    status: str = "active"


@dataclass
class LedgerSide:
    """Everything read from one ledger system: its operations and how its accounts are named.

    Attributes:
        system: the configured system name.
        holder_label: what the system calls an account (``account`` for a CRM, ``partner`` for 1C); refs name
            an account ``<system>_<holder_label>``.
        entries: every operation of the history read.
        holders: customer identity (phone / ``card:<n>``) → the account's id in the system.
        balances: the system's own available balance per holder id, as read at ``balances_at``.
        balances_at: when ``balances`` were read (None: not read).
        balance_rule: how the system derives a balance from operations (:mod:`connector.reconcile.balances`):
            ``buckets`` (a CRM) or ``register`` (1C).
    """

    system: str
    holder_label: str
    entries: list[LedgerEntry] = field(default_factory=list)
    holders: dict[str, str] = field(default_factory=dict)
    balances: dict[str, Decimal] = field(default_factory=dict)
    balances_at: datetime | None = None
    balance_rule: str = "buckets"


class PairSource(Protocol):
    """Both systems' documents of a ``{left, right}`` comparison, read one store-day at a time while compared.

    :class:`connector.reconcile.reader.JournalPairs` reads them from the journal; the compare stage
    (:func:`connector.reconcile.match.match_grouped`) holds a store-day at a time instead of the window.
    """

    counts: dict[str, int]
    """system → documents read with a business date in the window (once :meth:`groups` has run)."""

    def groups(self) -> Iterator[tuple[list[DocRecord], list[DocRecord]]]:
        """(left, right) documents of each store-day, each side sorted by instant then id."""
        ...

    def passes(self, run: Callable[[Iterator[tuple[list[DocRecord], list[DocRecord]]]], T]) -> list[T]:
        """``run`` over the store-days: once over :meth:`groups`, or once per share of them when the source
        shares them between processes (``run`` must then be picklable)."""
        ...

    def left_ids(self, ids: set[str]) -> set[str]:
        """Which of ``ids`` are left documents this source reads."""
        ...

    def payloads(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The canonical JSON of each left document of ``ids`` (those found)."""
        ...


@dataclass
class Snapshot:
    """Every involved system read for a window of business dates and a set of stores.

    Attributes:
        date_from: first business date (inclusive).
        date_to: last business date (inclusive).
        stores: canonical store ids.
        documents: system → its receipts read for the window (a day's margin on each side: the compare stage
            keeps what falls in the window by business date).
        canonical: system → its full canonical documents, for the systems whose documents feed the rules, in
            the order they happened (with the lookback before the window, so returns find their sales).
        ledgers: system → its ledger.
        spend_before: system → customer → spend (sales − returns) before the documents read, from the journal
            (it picks the tier of the first purchases); empty when read without a journal.
        pairs: (left, right) → the documents of that comparison as a stream of store-days (read from the
            journal); a comparison found here is matched from it rather than from ``documents``.
    """

    date_from: date
    date_to: date
    stores: list[str]
    documents: dict[str, list[DocRecord]] = field(default_factory=dict)
    canonical: dict[str, list[Sale | Return]] = field(default_factory=dict)
    ledgers: dict[str, LedgerSide] = field(default_factory=dict)
    spend_before: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    pairs: dict[tuple[str, str], PairSource] = field(default_factory=dict)

    def in_window(self, day: date) -> bool:
        """Whether a business date falls in the window."""
        return self.date_from <= day <= self.date_to
