"""Read every system a reconciliation involves for a window into a :class:`~connector.reconcile.model.Snapshot`.

This is the I/O layer; the compare stage never reads a system. Receipts are read in one of two ways:

* with a state database (``store``), **through the sync's pulls**: :func:`connector.sync.pull_window` refreshes
  the journal for the window (fresh reads; no watermark moves, nothing is written elsewhere), and the documents
  are then read back from the journal — so the journal the console shows is the one that was compared. A
  ``{left, right}`` comparison is not loaded here: the snapshot holds a reader
  (:func:`connector.reconcile.reader.window_pairs`) that the compare stage streams a store-day at a time
  (:attr:`Snapshot.pairs`); only the documents that feed a ledger reconciliation are parsed and kept whole;
* without one, **directly through the adapters and mappings** (tests, ad-hoc runs).

Ledgers are always read directly: balances need the whole history (the sync's ledger pull is bounded by its
window), and 1C's bonus documents are not a stream the sync pulls.

What is read, per configured reconciliation (``reconcile:`` in ``connector.yaml``):

* ``{left, right}`` — both systems' receipts of each store for the window, with a day's margin on each side
  (1C dates carry the infobase's clock, Evotor's the store's: the compare stage decides by business date);
* ``{documents, ledger}`` — the documents system's receipts, from ``lookback_days`` before the window (the
  return window: a return must find its sale), the ledger's whole history (or ``history_days`` before the
  window) (balances are sums over the whole history), and the same for every system the ledger is mirrored to
  (a route ``from: <ledger>`` that writes ``bonus_documents``).

Lines without a category get the one accounting's item catalog gives their sku: the tills know products by
their own ids, and the rules need the category (excluded and promotional ones).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import requests
from sqlalchemy import select

from adapters.base import RawRecord, build_adapter
from connector.categories import sku_categories, with_categories
from connector.config import ConnectorConfig
from connector.errors import ConfigError, MappingError
from connector.mapping import Mapping, load_mapping, load_system_mapping
from connector.model import Posting, Return, Sale
from connector.reconcile.model import DocRecord, LedgerEntry, LedgerSide, Snapshot, line_signature
from connector.reconcile.reader import window_pairs
from connector.store import Store
from connector.store.journal import Journal
from connector.store.tables import JournalDocument
from connector.sync import pull_window

__all__ = [
    "Progress",
    "SharedValues",
    "SnapshotSource",
    "document_record",
    "involved_systems",
    "load_snapshot",
    "mirrors_of",
    "spend_before",
]

Progress = Callable[[str, int, int], None]
"""``progress(step, done, total)``: called as each system and store is read."""

_BONUS_DOCUMENT = "Document_НачислениеИСписаниеБонусныхБаллов"
_LEDGER_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # before any loyalty ledger this connector will meet


def mirrors_of(config: ConnectorConfig, ledger: str) -> list[str]:
    """Systems the ledger is mirrored to: routes ``from: <ledger>`` that write ``bonus_documents``."""
    return [route.to for route in config.routes if route.from_ == ledger and route.write == "bonus_documents"]


def involved_systems(config: ConnectorConfig) -> tuple[set[str], set[str], set[str]]:
    """(document systems, of which those whose canonical documents are kept, ledger systems)."""
    documents: set[str] = set()
    canonical: set[str] = set()
    ledgers: set[str] = set()
    for spec in config.reconcile:
        if spec.left and spec.right:
            documents |= {spec.left, spec.right}
            canonical.add(spec.left)
        if spec.documents and spec.ledger:
            documents.add(spec.documents)
            canonical.add(spec.documents)
            ledgers |= {spec.ledger, *mirrors_of(config, spec.ledger)}
    return documents, canonical, ledgers


@dataclass
class SnapshotSource:
    """Reads systems through their adapters (built once) and mappings.

    Args:
        config: the connector configuration.
        session: an HTTP session for every adapter (tests pass one; None lets each adapter make its own).
        progress: optional progress callback.
    """

    config: ConnectorConfig
    session: requests.Session | None = None
    progress: Progress | None = None
    store: Store | None = None
    _adapters: dict[str, Any] = field(default_factory=dict)

    def adapter(self, name: str) -> Any:
        """The adapter of configured system ``name`` (built on first use)."""
        if name not in self._adapters:
            if name not in self.config.systems:
                raise ConfigError(f"reconcile names system {name!r}, which is not under systems:")
            self._adapters[name] = build_adapter(name, self.config.systems[name], session=self.session)
        return self._adapters[name]

    def _tick(self, step: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(step, done, total)

    def catalogs(self, name: str) -> dict[str, Any]:
        """The adapter's catalogs for the mapping, when it has any."""
        adapter = self.adapter(name)
        reader = getattr(adapter, "catalogs", None)
        return dict(reader()) if callable(reader) else {}

    def categories(self, names: Iterable[str]) -> dict[str, str]:
        """sku → category from every involved system's item catalog."""
        return sku_categories(self.catalogs(name) for name in names)

    def documents(
        self, name: str, stores: list[str], since: datetime, until: datetime, categories: dict[str, str]
    ) -> list[tuple[Sale | Return, str | None]]:
        """Canonical receipts of ``stores`` in ``[since, until)`` in the order they happened, each with the
        connector's key kept on it (1C ``Комментарий``: the adapter's ``key_field``), if any."""
        if self.store is not None:
            return self._journaled(name, stores, since.date(), (until - timedelta(days=1)).date(), categories)
        adapter, mapping = self.adapter(name), load_system_mapping(name, self.config.systems[name])
        catalogs = self.catalogs(name)
        key_field = getattr(adapter, "key_field", None)
        out: list[tuple[Sale | Return, str | None]] = []
        for done, store in enumerate(stores):
            self._tick(f"{name}: receipts", done, len(stores))
            for record in adapter.documents(store, since, until):
                document = _map(mapping, record, catalogs)
                if isinstance(document, Sale | Return):
                    key = record.payload.get(key_field) if isinstance(key_field, str) else None
                    out.append((with_categories(document, categories), str(key) if key else None))
        self._tick(f"{name}: receipts", len(stores), len(stores))
        out.sort(key=lambda pair: (pair[0].occurred_at, pair[0].ref.id))
        return out

    def key_field(self, name: str) -> str | None:
        """Where system ``name`` keeps the connector's key in its raw payload (its adapter's ``key_field``)."""
        key_field = getattr(self.adapter(name), "key_field", None)
        return key_field if isinstance(key_field, str) else None

    def pull(self, name: str, stores: list[str], first: date, last: date) -> None:
        """Refresh the journal of system ``name`` for business dates ``first`` … ``last`` (the sync's pull)."""
        assert self.store is not None
        self._tick(f"{name}: receipts", 0, 1)
        pull_window(self.config, self.store, name, first, last, stores)
        self._tick(f"{name}: receipts", 1, 1)

    def _journaled(
        self, name: str, stores: list[str], first: date, last: date, categories: dict[str, str]
    ) -> list[tuple[Sale | Return, str | None]]:
        """Refresh the journal for the window through the sync's pull, then read it back."""
        assert self.store is not None
        self.pull(name, stores, first, last)
        key_field = self.key_field(name)
        out: list[tuple[Sale | Return, str | None]] = []
        for entry in Journal(self.store.sessions).documents_in_window(name, stores, first, last):
            document = entry.document
            if document is not None:
                raw = entry.raw if isinstance(entry.raw, dict) else {}
                key = raw.get(key_field) if isinstance(key_field, str) else None
                out.append((with_categories(document, categories), str(key) if key else None))
        out.sort(key=lambda pair: (pair[0].occurred_at, pair[0].ref.id))
        return out

    def ledger(self, name: str, since: datetime, until: datetime, window: tuple[date, date]) -> LedgerSide:
        """Every operation of ledger system ``name`` in ``[since, until)`` as postings, and the system's own
        balances of the accounts with operations in the window."""
        self._tick(f"{name}: ledger", 0, 1)
        adapter = self.adapter(name)
        at = datetime.now(UTC)
        if callable(getattr(adapter, "accounts_catalog", None)):
            side = self._crm_ledger(name, adapter, since, until)
            side.balances = _crm_balances(adapter, side, window)
            at = datetime.now(UTC)  # "now" of the balances just read; every operation read is older
        else:
            side = self._onec_ledger(name, adapter, since, until)
            side.balances, side.balance_rule = _register_balances(adapter, at), "register"
        side.balances_at = at if side.balances else None
        self._tick(f"{name}: ledger", 1, 1)
        return side

    def _crm_ledger(self, name: str, adapter: Any, since: datetime, until: datetime) -> LedgerSide:
        accounts = adapter.accounts_catalog()
        system = self.config.systems[name]
        mapping = load_system_mapping(name, system) if system.mapping else load_mapping(adapter.mapping)
        side = LedgerSide(name, "account", holders=_holders(accounts))
        catalogs = {"accounts": accounts}
        for record in adapter.operations(since, until):
            posting = _map(mapping, record, catalogs)
            if isinstance(posting, Posting):
                holder = (record.payload.get("loyaltyAccount") or {}).get("id")
                side.entries.append(_entry(name, record.id, posting, str(holder) if holder else None, side))
        return side

    def _onec_ledger(self, name: str, adapter: Any, since: datetime, until: datetime) -> LedgerSide:
        catalogs = self.catalogs(name)
        mapping = load_system_mapping(name, self.config.systems[name])
        side = LedgerSide(name, "partner", holders=_holders(catalogs.get("partners", {})))
        for record in _bonus_documents(adapter, since, until):
            posting = _map(mapping, record, catalogs)
            if isinstance(posting, Posting):
                side.entries.append(_entry(name, record.id, posting, None, side))
        return side


def spend_before(store: Store, system: str, accounts: set[str], day: date) -> dict[str, Decimal]:
    """Each customer's posted sales minus returns in ``system`` with a business date before ``day``."""
    wanted = sorted(accounts)
    out: dict[str, Decimal] = {}
    with store.session() as session:
        for start in range(0, len(wanted), 500):
            query = select(JournalDocument.account, JournalDocument.total, JournalDocument.canonical).where(
                JournalDocument.system == system,
                JournalDocument.account.in_(wanted[start : start + 500]),
                JournalDocument.business_date < day,
                JournalDocument.status == "posted",
            )
            for account, total, canonical in session.execute(query):
                if account and total is not None and isinstance(canonical, dict):
                    sign = -1 if canonical.get("type") == "return" else 1
                    out[account] = out.get(account, Decimal(0)) + sign * total
    return out


def _crm_balances(adapter: Any, side: LedgerSide, window: tuple[date, date]) -> dict[str, Decimal]:
    """The CRM's balance of each account with an operation in the window (one request per account)."""
    touched = {e.holder for e in side.entries if e.holder and window[0] <= e.occurred_at.date() <= window[1]}
    return {holder: adapter.account_balance(holder) for holder in sorted(touched)}


def _register_balances(adapter: Any, at: datetime) -> dict[str, Decimal]:
    """1C's available points per holder from the register's ``Balance`` (over every program)."""
    reader = getattr(adapter, "balance", None)
    if not callable(reader):
        return {}
    out: dict[str, Decimal] = {}
    for (holder, _program), points in reader(at=at).items():
        out[holder] = out.get(holder, Decimal(0)) + points
    return out


def _holders(catalog: dict[str, Any]) -> dict[str, str]:
    """Customer identity (phone, ``card:<n>``) → the account's id, from an ``accounts``/``partners`` catalog."""
    out: dict[str, str] = {}
    for holder, entry in catalog.items():
        if not isinstance(entry, dict):
            continue
        if entry.get("card"):
            out.setdefault(f"card:{entry['card']}", str(holder))
        if entry.get("phone"):
            out.setdefault(str(entry["phone"]), str(holder))
    return out


def _entry(
    system: str, remote_id: str, posting: Posting, holder: str | None, side: LedgerSide
) -> LedgerEntry:
    return LedgerEntry(
        system=system,
        id=str(remote_id),
        key=posting.key,
        kind=posting.kind,
        amount=posting.amount,
        account=posting.account,
        holder=holder or side.holders.get(posting.account),
        occurred_at=posting.occurred_at,
        available_at=posting.available_at,
        expires_at=posting.expires_at,
        status=posting.status,
    )


def _map(mapping: Mapping, record: RawRecord, catalogs: dict[str, Any]) -> Any:
    try:
        return mapping.map(record.payload, system=record.system, entity=record.entity, catalogs=catalogs)
    except MappingError as exc:
        raise MappingError(
            exc.message, **{**exc.context, "system": record.system, "document": record.id}
        ) from None


def _bonus_documents(adapter: Any, since: datetime, until: datetime) -> Iterator[RawRecord]:
    """Posted, unmarked 1C bonus documents dated in the window.

    The 1C adapter has no reader for them yet; until it has (``bonus_documents(since, until)``), they are
    queried through its OData client here.
    """
    reader = getattr(adapter, "bonus_documents", None)
    if callable(reader):
        yield from reader(since, until)
        return
    from adapters.odata import and_, datetime_literal, eq, ge, lt

    flt = and_(
        ge("Date", datetime_literal(since, adapter.tz)),
        lt("Date", datetime_literal(until, adapter.tz)),
        eq("DeletionMark", False),
        eq("Posted", True),
    )
    for row in adapter.odata.query(_BONUS_DOCUMENT, filter=flt, orderby=("Date",), decode=False):
        yield RawRecord(
            adapter.system, _BONUS_DOCUMENT, str(row["Ref_Key"]), row.get("DataVersion"), None, row
        )


class SharedValues:
    """One instance per distinct value (stores, dates, skus, quantities): a million records repeat them.

    Example:
        >>> shared = SharedValues()
        >>> records = [document_record(d, None, shared) for d in documents]  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._seen: dict[Any, Any] = {}

    def __call__(self, value: Any) -> Any:
        return self._seen.setdefault(value, value)


def document_record(
    document: Sale | Return, external_key: str | None, shared: SharedValues | None = None
) -> DocRecord:
    """A canonical document as the compare stage's record; ``shared`` dedupes values repeated across records."""
    shared = shared or SharedValues()
    lines = tuple(shared((shared(sku), shared(qty), amount)) for sku, qty, amount in line_signature(document))
    return DocRecord(
        system=shared(document.ref.system),
        id=document.ref.id,
        kind=shared(document.type),
        store=shared(document.store),
        business_date=shared(document.business_date),
        occurred_at=document.occurred_at,
        number=document.number,
        total=document.total,
        account=document.account,
        lines=lines,
        fiscal=(document.fiscal.fn, document.fiscal.fd) if document.fiscal else None,
        external_key=external_key,
        status=shared(document.status),
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def load_snapshot(
    config: ConnectorConfig,
    *,
    date_from: date,
    date_to: date,
    stores: list[str] | None = None,
    progress: Progress | None = None,
    session: requests.Session | None = None,
    store: Store | None = None,
    lookback_days: int | None = None,
    history_days: int | None = None,
) -> Snapshot:
    """Read every system the configured reconciliations involve for the window.

    Args:
        config: the connector configuration (its ``reconcile:`` and ``routes:``).
        date_from: first business date.
        date_to: last business date (inclusive).
        stores: canonical store ids; all the documents system holds when None.
        progress: called as each system and store is read.
        session: one HTTP session for every adapter.
        store: the state database: receipts are pulled into its journal and read back from it; None reads
            them directly.
        lookback_days: days of documents read before the window so that returns find their sales; the
            program's ``activation_delay_days`` (the return window) by default.
        history_days: days of ledger history read before the window; None (the default) reads it all, because
            a balance is only explained by every operation since the account was opened.
    """
    source = SnapshotSource(config, session, progress, store)
    doc_systems, canonical, ledger_systems = involved_systems(config)
    if stores is None:
        first = sorted(canonical)[0] if canonical else sorted(doc_systems)[0] if doc_systems else None
        stores = sorted(source.adapter(first).stores()) if first else []
    if lookback_days is None:
        lookback_days = config.program.activation_delay_days if config.program else 14
    snapshot = Snapshot(date_from, date_to, list(stores))
    until = _day_start(date_to + timedelta(days=2))
    categories = source.categories(
        s for s in doc_systems if callable(getattr(source.adapter(s), "catalogs", None))
    )
    streamed = _streamed(config) if store is not None else []
    in_pairs = {name for pair in streamed for name in pair}
    backs = {name: 1 + (lookback_days if name in canonical else 0) for name in doc_systems}
    for name in sorted(doc_systems):
        since = _day_start(date_from - timedelta(days=backs[name]))
        if name in in_pairs and name not in _ledger_documents(config):
            source.pull(name, snapshot.stores, since.date(), date_to + timedelta(days=1))
            continue
        _read_documents(source, snapshot, name, name in canonical, since, until, categories,
                        records=name not in in_pairs)  # fmt: skip
    for left, right in streamed:
        snapshot.pairs[(left, right)] = window_pairs(
            source.store,  # type: ignore[arg-type]  # streamed only with a store
            (left, right),
            (date_from, date_to),
            margins=(backs[left], backs[right]),
            stores=snapshot.stores,
            key_fields={name: source.key_field(name) for name in (left, right)},
            categories=categories,
        )
    now = datetime.now(UTC) + timedelta(days=1)
    for name in sorted(ledger_systems):
        since = (
            _LEDGER_EPOCH if history_days is None else _day_start(date_from - timedelta(days=history_days))
        )
        snapshot.ledgers[name] = source.ledger(name, since, max(now, until), (date_from, date_to))
    return snapshot


def _streamed(config: ConnectorConfig) -> list[tuple[str, str]]:
    """The ``{left, right}`` comparisons, read from the journal a store-day at a time."""
    return list(
        dict.fromkeys((spec.left, spec.right) for spec in config.reconcile if spec.left and spec.right)
    )


def _ledger_documents(config: ConnectorConfig) -> set[str]:
    """Systems whose canonical documents feed a ledger reconciliation (the rules run over them)."""
    return {spec.documents for spec in config.reconcile if spec.documents and spec.ledger}


def _read_documents(
    source: SnapshotSource,
    snapshot: Snapshot,
    name: str,
    keep: bool,
    since: datetime,
    until: datetime,
    categories: dict[str, str],
    *,
    records: bool = True,
) -> None:
    """One documents system into the snapshot: records when ``records`` (not when its comparison streams
    them from the journal); canonical documents and spend when ``keep``."""
    documents = source.documents(name, snapshot.stores, since, until, categories)
    if records:
        shared = SharedValues()
        snapshot.documents[name] = [document_record(document, key, shared) for document, key in documents]
    if keep:
        snapshot.canonical[name] = [document for document, _ in documents]
        if source.store is not None:
            accounts = {d.account for d, _ in documents if d.account}
            snapshot.spend_before[name] = spend_before(source.store, name, accounts, since.date())
