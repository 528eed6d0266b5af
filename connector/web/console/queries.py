"""Read-only queries behind the console pages and the JSON API, straight from the store tables.

Rows come back as detached ORM objects (the store's sessions do not expire on commit), so templates and the
API read their attributes after the session is closed. Nothing here writes: see :mod:`.actions`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select

from connector.store import Store
from connector.store.tables import AuditEntry, Discrepancy, FailedItem, Fix, Lease, Run, SyncCursor

__all__ = [
    "DiscrepancyFilter",
    "FailureFilter",
    "RunFilter",
    "audit_entries",
    "discrepancies",
    "discrepancy_trend",
    "failure",
    "failures",
    "fixes_of",
    "leases",
    "open_failures_by_system",
    "reconciliations",
    "run",
    "runs",
    "sync_cursors",
]

_LIMIT = 500


@dataclass(frozen=True)
class RunFilter:
    """Filters of the runs page: kind (``sync``/``reconcile``), status, and a range of start dates."""

    kind: str | None = None
    status: str | None = None
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True)
class FailureFilter:
    """Filters of the failures page; None means any. ``state`` defaults to the open items."""

    system: str | None = None
    route: str | None = None
    store: str | None = None
    since: date | None = None
    until: date | None = None
    error_kind: str | None = None
    state: str | None = "open"

    def as_params(self) -> dict[str, str]:
        """The filter as query parameters (for links and the bulk retry form)."""
        values = {k: getattr(self, k) for k in ("system", "route", "store", "since", "until", "error_kind")}
        params = {k: str(v) for k, v in values.items() if v is not None}
        params["state"] = self.state or ""
        return params


@dataclass(frozen=True)
class DiscrepancyFilter:
    """Filters of a reconciliation's detail page."""

    kind: str | None = None
    store: str | None = None
    state: str | None = None


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def runs(store: Store, where: RunFilter = RunFilter(), limit: int = 100) -> list[Run]:
    """Runs, newest first, filtered."""
    query = select(Run)
    if where.kind:
        query = query.where(Run.kind == where.kind)
    if where.status:
        query = query.where(Run.status == where.status)
    if where.since:
        query = query.where(Run.started_at >= _day_start(where.since))
    if where.until:
        query = query.where(Run.started_at < _day_start(where.until + timedelta(days=1)))
    with store.session() as session:
        return list(session.scalars(query.order_by(Run.started_at.desc(), Run.id.desc()).limit(limit)))


def run(store: Store, run_id: int) -> Run | None:
    """One run by id."""
    with store.session() as session:
        return session.get(Run, run_id)


def _failure_query(where: FailureFilter) -> Select[FailedItem]:
    query = select(FailedItem)
    for column, value in (
        (FailedItem.system, where.system),
        (FailedItem.route, where.route),
        (FailedItem.store, where.store),
        (FailedItem.error_kind, where.error_kind),
        (FailedItem.state, where.state),
    ):
        if value:
            query = query.where(column == value)
    if where.since:
        query = query.where(FailedItem.created_at >= _day_start(where.since))
    if where.until:
        query = query.where(FailedItem.created_at < _day_start(where.until + timedelta(days=1)))
    return query


def failures(
    store: Store, where: FailureFilter = FailureFilter(), run_id: int | None = None
) -> list[FailedItem]:
    """Failed items matching the filter (and run), newest first."""
    query = _failure_query(where)
    if run_id is not None:
        query = query.where(FailedItem.run_id == run_id)
    with store.session() as session:
        return list(session.scalars(query.order_by(FailedItem.id.desc()).limit(_LIMIT)))


def failure(store: Store, item_id: int) -> FailedItem | None:
    """One failed item by id."""
    with store.session() as session:
        return session.get(FailedItem, item_id)


def open_failures_by_system(store: Store) -> dict[str, int]:
    """How many items are open in each system."""
    query = (
        select(FailedItem.system, func.count()).where(FailedItem.state == "open").group_by(FailedItem.system)
    )
    with store.session() as session:
        return dict(session.execute(query).all())


def reconciliations(store: Store, limit: int = 100) -> list[tuple[Run, dict[str, int]]]:
    """Reconciliation runs, newest first, each with its open/fixed/dismissed counts."""
    found = runs(store, RunFilter(kind="reconcile"), limit)
    query = (
        select(Discrepancy.run_id, Discrepancy.state, func.count())
        .where(Discrepancy.run_id.in_([r.id for r in found]))
        .group_by(Discrepancy.run_id, Discrepancy.state)
    )
    counts: dict[int, Counter[str]] = {r.id: Counter() for r in found}
    with store.session() as session:
        for run_id, state, count in session.execute(query):
            counts[run_id][state] += count
    return [(r, dict(counts[r.id])) for r in found]


def discrepancies(
    store: Store, run_id: int, where: DiscrepancyFilter = DiscrepancyFilter()
) -> list[Discrepancy]:
    """A run's discrepancies matching the filter, in kind order then by date."""
    query = select(Discrepancy).where(Discrepancy.run_id == run_id)
    for column, value in ((Discrepancy.kind, where.kind), (Discrepancy.store, where.store),
                          (Discrepancy.state, where.state)):  # fmt: skip
        if value:
            query = query.where(column == value)
    with store.session() as session:
        order = (Discrepancy.kind, Discrepancy.business_date, Discrepancy.id)
        return list(session.scalars(query.order_by(*order)))


def fixes_of(store: Store, discrepancy_ids: list[int]) -> dict[int, Fix]:
    """The applied fix of each discrepancy that has one."""
    query = select(Fix).where(Fix.discrepancy_id.in_(discrepancy_ids), Fix.applied_at.is_not(None))
    with store.session() as session:
        return {fix.discrepancy_id: fix for fix in session.scalars(query)}


def discrepancy_trend(store: Store, today: date, days: int = 14) -> list[tuple[date, int]]:
    """Discrepancies found per business day over the last ``days`` days (zeros included), oldest first."""
    first = today - timedelta(days=days - 1)
    query = (
        select(Discrepancy.business_date, func.count())
        .where(Discrepancy.business_date >= first, Discrepancy.business_date <= today)
        .group_by(Discrepancy.business_date)
    )
    with store.session() as session:
        found: dict[Any, int] = dict(session.execute(query).all())
    return [(first + timedelta(days=n), found.get(first + timedelta(days=n), 0)) for n in range(days)]


def leases(store: Store) -> list[Lease]:
    """Every lease (scheduler jobs, sync partitions), by name."""
    with store.session() as session:
        return list(session.scalars(select(Lease).order_by(Lease.name)))


def sync_cursors(store: Store) -> list[SyncCursor]:
    """Pull watermarks per system, stream and store: when each was last advanced by a successful pull."""
    with store.session() as session:
        order = (SyncCursor.system, SyncCursor.store, SyncCursor.stream)
        return list(session.scalars(select(SyncCursor).order_by(*order)))


def audit_entries(store: Store, who: str | None = None, limit: int = _LIMIT) -> list[AuditEntry]:
    """The audit log, newest first."""
    query = select(AuditEntry)
    if who:
        query = query.where(AuditEntry.who == who)
    with store.session() as session:
        return list(session.scalars(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)))
