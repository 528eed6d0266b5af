"""What an operator can do from the console or the API, each written to the audit log with its outcome.

Failed items move through :class:`connector.store.failures.FailedItems` (the same state machine the CLI's
``failures retry|skip`` uses): a retry marks the item ``retried`` and the next sync works on it; a skip records
who and why. Fixes are applied by :func:`apply_fixes` through the reconciliation engine
(:func:`connector.reconcile.apply_fixes`): each automatic fix of an open discrepancy is recorded in the outbox
under its idempotency key and written to its target, its :class:`~connector.store.tables.Fix` is stamped with
who and when, and the discrepancy becomes ``fixed``. Applying twice writes nothing new.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from sqlalchemy import select

from connector.config import ConnectorConfig
from connector.discrepancies import Discrepancy as ReconcileDiscrepancy
from connector.discrepancies import FixAction, ReconcileResult
from connector.errors import ConnectorError, InputError
from connector.reconcile import apply_fixes as apply_planned
from connector.store import Store
from connector.store.failures import FailedItems, FailedRecord
from connector.store.tables import AuditEntry, Discrepancy, Run

from .queries import FailureFilter, failures

__all__ = [
    "ActionRefusedError",
    "FixOutcome",
    "apply_fixes",
    "audit",
    "retry_failure",
    "retry_failures",
    "skip_failure",
]

T = TypeVar("T")


class ActionRefusedError(InputError):
    """An action that the state of its target does not allow (already skipped, unknown id …)."""


def audit(store: Store, who: str, action: str, target: str | None, outcome: str, **detail: Any) -> None:
    """Write one audit entry: who did what to which target, and how it ended."""
    with store.transaction() as session:
        session.add(
            AuditEntry(who=who, action=action, target=target, outcome=outcome[:255], detail=detail or None)
        )


def _audited(store: Store, who: str, action: str, target: str, work: Callable[[], T], **detail: Any) -> T:
    try:
        result = work()
    except ConnectorError as exc:
        audit(store, who, action, target, f"refused: {exc}", **detail)
        raise ActionRefusedError(str(exc)) from exc
    audit(store, who, action, target, "ok", **detail)
    return result


def retry_failure(store: Store, item_id: int, who: str) -> FailedRecord:
    """Queue a failed item for the next sync (state ``retried``).

    Raises:
        ActionRefusedError: no such item, or it is not open.
    """
    items = FailedItems(store.sessions)
    return _audited(store, who, "failure.retry", f"failed_item:{item_id}", lambda: items.retry(item_id))


def skip_failure(store: Store, item_id: int, who: str, reason: str) -> FailedRecord:
    """Give up on a failed item on purpose, recording who and why.

    Raises:
        ActionRefusedError: no such item, it is resolved or skipped already, or the reason is empty.
    """
    items = FailedItems(store.sessions)
    work = lambda: items.skip(item_id, by=who, reason=reason)  # noqa: E731 - one call, audited below
    return _audited(store, who, "failure.skip", f"failed_item:{item_id}", work, reason=reason)


def retry_failures(store: Store, where: FailureFilter, who: str) -> list[int]:
    """Retry every open item the filter matches (bulk retry); returns the ids queued."""
    items = FailedItems(store.sessions)
    chosen = [row.id for row in failures(store, FailureFilter(**{**where.__dict__, "state": "open"}))]
    queued = [items.retry(item_id).id for item_id in chosen]
    audit(
        store,
        who,
        "failure.retry_bulk",
        None,
        f"ok: {len(queued)} queued",
        ids=queued,
        filter=where.as_params(),
    )
    return queued


@dataclass(frozen=True)
class FixOutcome:
    """What applying a run's fix plan did: outbox keys written now, written before, failed (key → reason), and
    the discrepancies left to a person."""

    written: list[str]
    already: list[str]
    failed: dict[str, str]
    manual: list[int]

    def summary(self) -> str:
        """One line for the audit log."""
        head = "ok" if not self.failed else f"failed: {len(self.failed)} write(s)"
        return f"{head}: {len(self.written)} written, {len(self.already)} already there, {len(self.manual)} manual"


def _as_discrepancy(row: Discrepancy) -> ReconcileDiscrepancy:
    fix = row.fix or {}
    action = FixAction(fix.get("action", "manual"), fix.get("target"), fix.get("key"), fix.get("payload"),
                       fix.get("description", ""))  # fmt: skip
    return ReconcileDiscrepancy(row.kind, row.store, row.business_date, dict(row.refs or {}), row.expected,
                                row.actual, row.delta, action)  # fmt: skip


def _result_of(run: Run, rows: list[Discrepancy]) -> ReconcileResult:
    days = [row.business_date for row in rows if row.business_date is not None] or [run.started_at.date()]
    stores = sorted({row.store for row in rows if row.store})
    return ReconcileResult(
        min(days), max(days), stores, [_as_discrepancy(row) for row in rows], run_id=run.id
    )


def _open_rows(store: Store, run_id: int, ids: Sequence[int] | None) -> tuple[Run | None, list[Discrepancy]]:
    query = select(Discrepancy).where(Discrepancy.run_id == run_id, Discrepancy.state == "open")
    if ids is not None:
        query = query.where(Discrepancy.id.in_(list(ids)))
    with store.session() as session:
        return session.get(Run, run_id), list(session.scalars(query.order_by(Discrepancy.id)))


def apply_fixes(
    store: Store,
    config: ConnectorConfig,
    run_id: int,
    who: str,
    ids: Sequence[int] | None = None,
    *,
    session: requests.Session | None = None,
) -> FixOutcome:
    """Apply the automatic fixes of a reconciliation run's open discrepancies (all, or only ``ids``).

    The writes go through :func:`connector.reconcile.apply_fixes`, the same path as ``reconcile --fix --apply``:
    recorded in the outbox under their keys first, written to the targets, and the fixes stamped with ``who``.

    Raises:
        ActionRefusedError: the run has no open discrepancy (among ``ids``) with an automatic fix.
    """
    run, rows = _open_rows(store, run_id, ids)
    manual = [row.id for row in rows if (row.fix or {}).get("action", "manual") == "manual"]
    if run is None or len(manual) == len(rows):
        audit(store, who, "reconcile.apply_fixes", f"run:{run_id}", "refused: nothing to apply")
        raise ActionRefusedError(
            f"run {run_id} has no open discrepancies to fix automatically", field="run_id"
        )
    report = apply_planned(config, _result_of(run, rows), store, session=session, who=who)
    outcome = FixOutcome(list(report.written), list(report.already), dict(report.failed), manual)
    audit(store, who, "reconcile.apply_fixes", f"run:{run_id}", outcome.summary(),
          written=outcome.written, failed=sorted(outcome.failed))  # fmt: skip
    return outcome
