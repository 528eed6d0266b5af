"""What an operator can do from the console or the API, each written to the audit log with its outcome.

Failed items move through :class:`connector.store.failures.FailedItems` (the same state machine the CLI's
``failures retry|skip`` uses): a retry marks the item ``retried`` and the next sync works on it; a skip records
who and why. Fixes are applied by :func:`apply_fixes`: each automatic fix of an open discrepancy is recorded in
the outbox under its idempotency key (the next sync pushes it), a :class:`~connector.store.tables.Fix` row says
who applied it and when, and the discrepancy becomes ``fixed``. Applying twice writes nothing new.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select

from connector.errors import ConnectorError, InputError
from connector.store import Store
from connector.store.failures import FailedItems, FailedRecord
from connector.store.tables import AuditEntry, Discrepancy, Fix, utc_now

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
    """What applying a fix plan did: discrepancies fixed now, already fixed before, and manual ones left."""

    applied: list[int]
    already: list[int]
    manual: list[int]


def _apply_one(store: Store, row: Discrepancy, who: str) -> str:
    plan = row.fix or {}
    if plan.get("action", "manual") == "manual" or not plan.get("key") or not plan.get("target"):
        return "manual"
    if row.state != "open":
        return "already"
    store.outbox.record(plan["key"], plan["target"], plan["action"], plan.get("payload") or {})
    with store.transaction() as session:
        current = session.get(Discrepancy, row.id)
        if current is None or current.state != "open":
            return "already"
        current.state = "fixed"
        session.add(
            Fix(
                discrepancy_id=row.id, plan=plan, outbox_key=plan["key"], applied_by=who, applied_at=utc_now()
            )
        )
    return "applied"


def apply_fixes(store: Store, run_id: int, who: str, ids: Sequence[int] | None = None) -> FixOutcome:
    """Apply the automatic fixes of a reconciliation run (all open ones, or only ``ids``).

    Raises:
        ActionRefusedError: the run has no such discrepancies, or the outbox refused a write (same key, other payload).
    """
    query = select(Discrepancy).where(Discrepancy.run_id == run_id)
    if ids is not None:
        query = query.where(Discrepancy.id.in_(list(ids)))
    with store.session() as session:
        rows = list(session.scalars(query.order_by(Discrepancy.id)))
    if not rows:
        audit(store, who, "reconcile.apply_fixes", f"run:{run_id}", "refused: nothing to apply")
        raise ActionRefusedError(f"run {run_id} has no such discrepancies", field="run_id")
    done: dict[str, list[int]] = {"applied": [], "already": [], "manual": []}

    def work() -> FixOutcome:
        for row in rows:
            done[_apply_one(store, row, who)].append(row.id)
        return FixOutcome(done["applied"], done["already"], done["manual"])

    return _audited(store, who, "reconcile.apply_fixes", f"run:{run_id}", work, applied=done["applied"])
