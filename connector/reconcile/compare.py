"""The compare stage: every configured reconciliation over a snapshot, as one sorted list (pure; no I/O).

``{left, right}`` reconciliations match documents (:mod:`connector.reconcile.match`); ``{documents, ledger}``
ones compare expected postings with the ledger and the ledger's balances with each of its mirrors
(:mod:`connector.reconcile.ledger`). The return of a document pair feeds the ledger check, so a
``return_without_sale`` names the return in accounting too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from functools import partial

from connector.config import ReconcileSpec
from connector.discrepancies import DISCREPANCY_KINDS, Discrepancy
from connector.errors import ConfigError
from connector.model import dump_document
from connector.program import Program
from connector.reconcile.ledger import compare_balances, compare_postings, compare_system_balances
from connector.reconcile.match import final_pass, match_documents, store_day_pass
from connector.reconcile.model import Snapshot

__all__ = ["compare_snapshot", "sort_key"]


def sort_key(item: Discrepancy) -> tuple[int, date, str, list[tuple[str, str]]]:
    """Report order: by kind (as :data:`DISCREPANCY_KINDS` lists them), date, store, ids."""
    return (
        DISCREPANCY_KINDS.index(item.kind),
        item.business_date or date.min,
        item.store or "",
        sorted(item.refs.items()),
    )


def compare_snapshot(
    snapshot: Snapshot,
    specs: Sequence[ReconcileSpec],
    *,
    program: Program | None,
    mirrors: Mapping[str, Sequence[str]],
    today: date,
    cross_refs: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
) -> list[Discrepancy]:
    """Every discrepancy the configured reconciliations find in ``snapshot``, in report order.

    Args:
        snapshot: what was read.
        specs: the configured reconciliations.
        program: the loyalty program (needed by ledger reconciliations).
        mirrors: ledger system → the systems mirroring it.
        today: the date of an account-level discrepancy no single operation explains.
        cross_refs: (left system, right system) → {right id: left id} pairs the journal already holds.
    """
    window = (snapshot.date_from, snapshot.date_to)
    found: list[Discrepancy] = []
    counterparts: dict[str, tuple[str, Mapping[str, str]]] = {}
    ledger_documents = {spec.documents for spec in specs if spec.documents and spec.ledger}
    for spec in specs:
        if not (spec.left and spec.right):
            continue
        systems = (spec.left, spec.right)
        known = (cross_refs or {}).get(systems)
        source = snapshot.pairs.get(systems)
        if source is not None:
            run = partial(store_day_pass, systems=systems, window=window, tolerance=spec.tolerance,
                          cross_refs=known, keep_pairs=spec.left in ledger_documents)  # fmt: skip
            result = final_pass(source.passes(run), systems=systems, window=window, tolerance=spec.tolerance,
                                known_left=source.left_ids, cross_refs=known, payloads=source.payloads)  # fmt: skip
        else:
            originals = {d.ref.id: d for d in snapshot.canonical.get(spec.left, [])}
            result = match_documents(
                snapshot.documents.get(spec.left, []),
                snapshot.documents.get(spec.right, []),
                window=window,
                tolerance=spec.tolerance,
                cross_refs=known,
                systems=systems,
                payload_of=lambda i, o=originals: dump_document(o[i]) if i in o else None,  # type: ignore[misc]
            )
        found += result.discrepancies
        counterparts.setdefault(spec.left, (spec.right, result.pairs))
    for spec in specs:
        if spec.documents and spec.ledger:
            found += _ledger(snapshot, spec, program, mirrors, today, counterparts.get(spec.documents))
    return sorted(found, key=sort_key)


def _ledger(
    snapshot: Snapshot,
    spec: ReconcileSpec,
    program: Program | None,
    mirrors: Mapping[str, Sequence[str]],
    today: date,
    counterpart: tuple[str, Mapping[str, str]] | None,
) -> list[Discrepancy]:
    assert spec.documents is not None
    assert spec.ledger is not None
    if program is None:
        raise ConfigError(f"reconcile {spec.name!r} compares a ledger: the config needs a program: section")
    ledger = snapshot.ledgers[spec.ledger]
    sides = [snapshot.ledgers[name] for name in mirrors.get(spec.ledger, ()) if name in snapshot.ledgers]
    found = compare_postings(
        program,
        snapshot.canonical.get(spec.documents, []),
        window=(snapshot.date_from, snapshot.date_to),
        ledger=ledger,
        mirror=sides[0] if sides else None,
        tolerance=spec.tolerance,
        counterpart=counterpart,
        spend_before=snapshot.spend_before.get(spec.documents),
    )
    for mirror in sides:
        found += compare_balances(ledger, mirror, tolerance=spec.tolerance, today=today)
    for side in (ledger, *sides):
        found += compare_system_balances(side, tolerance=spec.tolerance)
    return found
