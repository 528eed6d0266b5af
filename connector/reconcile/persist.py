"""A reconciliation in the state database: its ``Run`` (kind ``reconcile``; status ``ok`` when everything agrees,
``discrepancies``, or ``error``), each ``Discrepancy`` and the ``Fix`` planned for it; applied fixes are stamped
with who applied them and when, and their discrepancies become ``fixed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from connector.discrepancies import ReconcileResult
from connector.store import Store
from connector.store.runs import Runs
from connector.store.tables import CrossRef, Fix
from connector.store.tables import Discrepancy as DiscrepancyRow

__all__ = ["cross_refs", "finish_run", "mark_applied", "save_result", "start_run"]


def start_run(store: Store, args: Mapping[str, Any]) -> int:
    """Open a ``reconcile`` run (status ``running``) and return its id."""
    return Runs(store.sessions).start("reconcile", dict(args))


def finish_run(
    store: Store, run_id: int, *, status: str, counts: Mapping[str, Any], error: str | None = None
) -> None:
    """Close the run: ``ok`` (everything agrees), ``discrepancies`` or ``error``, with its counts."""
    Runs(store.sessions).finish(run_id, status, dict(counts), error=error)


def save_result(store: Store, run_id: int, result: ReconcileResult) -> None:
    """Store every discrepancy of ``result`` under the run, and a planned ``Fix`` for each automatic one."""
    with store.transaction() as session:
        for item in result.discrepancies:
            data = item.as_json()
            row = DiscrepancyRow(
                run_id=run_id,
                kind=item.kind,
                store=item.store,
                business_date=item.business_date,
                refs=data["refs"],
                expected=data["expected"],
                actual=data["actual"],
                delta=item.delta,
                fix=data["fix"],
                state="open",
            )
            session.add(row)
            if item.fix.automatic:
                session.flush()
                session.add(Fix(discrepancy_id=row.id, plan=data["fix"], outbox_key=item.fix.key))
    result.run_id = run_id


def mark_applied(store: Store, keys: Iterable[str], *, who: str) -> int:
    """Stamp the planned fixes with these outbox keys as applied (and their discrepancies ``fixed``)."""
    wanted = set(keys)
    if not wanted:
        return 0
    now = datetime.now(UTC)
    count = 0
    with store.transaction() as session:
        rows = session.scalars(select(Fix).where(Fix.outbox_key.in_(wanted), Fix.applied_at.is_(None)))
        for fix in rows:
            fix.applied_at, fix.applied_by = now, who
            discrepancy = session.get(DiscrepancyRow, fix.discrepancy_id)
            if discrepancy is not None:
                discrepancy.state = "fixed"
            count += 1
    return count


def cross_refs(store: Store, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    """For each (left, right) system pair, the journal's cross-references as {right id: left id}."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    with store.session() as session:
        for left, right in pairs:
            found = out.setdefault((left, right), {})
            for row in session.scalars(select(CrossRef).where(CrossRef.left_system.in_((left, right)))):
                if (row.left_system, row.right_system) == (left, right):
                    found[row.right_id] = row.left_id
                elif (row.left_system, row.right_system) == (right, left):
                    found[row.left_id] = row.right_id
    return out
