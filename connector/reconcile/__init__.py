"""Nightly reconciliation: read each system for a window, compare, classify, propose fixes (DESIGN.md §7).

Two layers, so the part that must be fast has no I/O:

* **snapshot** (:mod:`connector.reconcile.snapshot`) reads every involved system for the window into plain
  records (:mod:`connector.reconcile.model`);
* **compare** (:mod:`connector.reconcile.compare`, over :mod:`~connector.reconcile.match` and
  :mod:`~connector.reconcile.ledger`) joins them on hash indexes and returns the discrepancies.

The result (:class:`~connector.discrepancies.ReconcileResult`) is stored with its run
(:mod:`connector.reconcile.persist`); fixes are planned and applied by :mod:`connector.reconcile.fixes`.

Example:
    >>> result = reconcile(config, date_from=date(2026, 11, 1), date_to=date(2026, 11, 7))  # doctest: +SKIP
    >>> result.summary()
    {'missing_accrual': 3, 'balance_mismatch': 1}
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import requests

from connector.config import ConnectorConfig
from connector.discrepancies import ReconcileResult
from connector.errors import ConnectorError, InputError
from connector.reconcile.compare import compare_snapshot
from connector.reconcile.fixes import ApplyReport, apply_fixes, plan_fixes
from connector.reconcile.model import DocRecord, LedgerEntry, LedgerSide, Snapshot
from connector.reconcile.persist import cross_refs, finish_run, save_result, start_run
from connector.reconcile.snapshot import Progress, involved_systems, load_snapshot, mirrors_of
from connector.store import Store

__all__ = [
    "ApplyReport",
    "DocRecord",
    "LedgerEntry",
    "LedgerSide",
    "Progress",
    "Snapshot",
    "apply_fixes",
    "compare_snapshot",
    "load_snapshot",
    "plan_fixes",
    "reconcile",
]


def reconcile(
    config: ConnectorConfig,
    *,
    date_from: date,
    date_to: date,
    stores: list[str] | None = None,
    store: Store | None = None,
    progress: Progress | None = None,
    session: requests.Session | None = None,
) -> ReconcileResult:
    """Reconcile every configured comparison for business dates ``date_from`` … ``date_to`` and ``stores``.

    Args:
        config: the connector configuration (``reconcile:``, ``routes:``, ``systems:``, ``program:``).
        date_from: first business date.
        date_to: last business date (inclusive).
        stores: canonical store ids; every store the tills hold when None.
        store: the state database: the run and its discrepancies are stored there, and the journal's
            cross-references join documents first. None reconciles without recording anything.
        progress: ``progress(step, done, total)`` as systems and stores are read.
        session: one HTTP session for every adapter.

    Raises:
        InputError: an empty window.
        ConnectorError: a system could not be read (the run is recorded as failed).
    """
    if date_to < date_from:
        raise InputError(f"the window ends ({date_to}) before it starts ({date_from})", field="date")
    if not config.reconcile:
        raise InputError("connector.yaml has no reconcile: section; nothing to compare", field="reconcile")
    args = {"from": date_from.isoformat(), "to": date_to.isoformat(), "stores": stores or []}
    run_id = start_run(store, args) if store is not None else None
    try:
        result = _run(config, date_from, date_to, stores, store, progress, session)
    except ConnectorError as exc:
        if store is not None and run_id is not None:
            finish_run(store, run_id, status="error", counts={}, error=str(exc))
        raise
    if store is not None and run_id is not None:
        save_result(store, run_id, result)
        status = "ok" if result.agrees else "discrepancies"
        finish_run(
            store, run_id, status=status, counts={**result.summary(), "documents": result.documents_compared}
        )
    return result


def _run(
    config: ConnectorConfig,
    date_from: date,
    date_to: date,
    stores: list[str] | None,
    store: Store | None,
    progress: Progress | None,
    session: requests.Session | None,
) -> ReconcileResult:
    snapshot = load_snapshot(
        config,
        date_from=date_from,
        date_to=date_to,
        stores=stores,
        progress=progress,
        session=session,
        store=store,
    )
    pairs = [(s.left, s.right) for s in config.reconcile if s.left and s.right]
    known = cross_refs(store, pairs) if store is not None and pairs else None
    _, _, ledgers = involved_systems(config)
    found = compare_snapshot(
        snapshot,
        config.reconcile,
        program=config.program,
        mirrors={name: mirrors_of(config, name) for name in ledgers},
        today=datetime.now(UTC).date(),
        cross_refs=known,
    )
    compared = {
        name: sum(1 for d in docs if date_from <= d.business_date <= date_to)
        for name, docs in snapshot.documents.items()
    }
    for source in snapshot.pairs.values():
        compared.update(source.counts)
    return ReconcileResult(date_from, date_to, snapshot.stores, found, documents_compared=compared)
