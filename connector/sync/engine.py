"""One sync run: pull each route's source, then plan and push each partition on a thread pool.

Work is partitioned by (route, store, business day). Partitions run on ``workers`` threads; the request budget
of each system is kept by its adapter's HTTP policy (a token bucket shared by every thread of the run). Between
processes: on PostgreSQL each partition is taken with an advisory lock (another process skips it), on SQLite the
whole run holds a file lock (see :mod:`connector.sync.locks`).

Routes run in their configured order, and a route's source is pulled just before its first route, so
``crm → onec`` bonus documents see the postings ``evotor → crm`` wrote earlier in the same run. Consecutive routes
that only read the same source (``evotor → crm``, ``evotor → onec``) share one pool, so that the workers stay
busy while the last partitions of one of them finish.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, Literal

from adapters.base import RawRecord
from connector.config import ConnectorConfig, Route
from connector.errors import ConnectorError
from connector.heap import frozen_heap
from connector.logs import get_logger
from connector.model import DocRef
from connector.store import Store, open_store
from connector.store.failures import FailedRecord
from connector.store.journal import JournalEntry
from connector.store.tables import utc_now
from connector.sync.context import SyncContext, failure_for, route_name
from connector.sync.locks import abandoned_runs, partition_lock, process_lock, run_presence, run_registry
from connector.sync.plan import History, JournaledReturns, PlannedWrite, known_writes, plan_document
from connector.sync.pull import (
    PullReport,
    Window,
    incremental_window,
    journal_record,
    map_unmapped,
    run_pulls,
    source_streams,
    window_bounds,
)
from connector.sync.push import push_writes, record_writes

__all__ = ["Partition", "SyncReport", "SyncScope", "run_sync"]

_log = get_logger("connector.sync")


@dataclass(frozen=True)
class SyncScope:
    """What a run covers. The default is an incremental sync of everything configured.

    Attributes:
        rerun_failed: no pull; work again on every open or retried failed item (not the skipped ones).
        document: one document by source id (fetched first when a ``stores`` entry says where and the source
            can read one document).
        date_from: with ``date_to``: a backfill of these business dates; moves no watermark.
        date_to: the last business date of a backfill, inclusive.
        stores: only these stores.
    """

    rerun_failed: bool = False
    document: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    stores: tuple[str, ...] | None = None
    documents: tuple[tuple[str, str], ...] = ()
    """(store, document id) pairs to fetch and sync, as the webhook intake hands them over."""

    @property
    def kind(self) -> Literal["incremental", "rerun_failed", "document", "window"]:
        """Which of the four scopes this is."""
        if self.rerun_failed:
            return "rerun_failed"
        if self.document is not None or self.documents:
            return "document"
        if self.date_from is not None or self.date_to is not None:
            return "window"
        return "incremental"

    def as_args(self) -> dict[str, Any]:
        """The run's arguments as stored in ``runs.args``."""
        return {
            "scope": self.kind,
            "document": self.document,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "stores": list(self.stores) if self.stores else None,
            "documents": [document for _, document in self.documents] or None,
        }


@dataclass(frozen=True)
class Partition:
    """One unit of work: a route's documents of one store and business day (store ``""``: a ledger)."""

    route: Route
    store: str
    day: date

    @property
    def name(self) -> str:
        """The lock name: ``evotor->crm:postings:<store>:<day>``."""
        return f"{route_name(self.route)}:{self.store}:{self.day.isoformat()}"


@dataclass
class SyncReport:
    """The outcome of :func:`run_sync`.

    Attributes:
        run_id: the ``runs`` row of this run.
        counts: per system and store (see :mod:`connector.sync.context`).
        failed_open: failed items open after the run (any run's).
        failed_now: items parked or retried in vain by this run.
        partitions: partitions processed (skipped ones held by another process not included).
        duration_s: wall time.
    """

    run_id: int
    counts: dict[str, dict[str, dict[str, int]]]
    failed_open: int
    failed_now: int
    partitions: int
    duration_s: float
    totals: dict[str, int] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)
    """Seconds per stage (:data:`~connector.sync.context.STAGES`): pull, map, write."""

    @property
    def exit_code(self) -> int:
        """0 when everything in scope was written, 1 when failed items are left."""
        return 1 if self.failed_open else 0


def run_sync(
    config: ConnectorConfig,
    *,
    store: Store | None = None,
    workers: int | None = None,
    scope: SyncScope | None = None,
    wait: float = 0.0,
) -> SyncReport:
    """Run one sync: what the CLI's ``sync``, the scheduler and the demo call.

    Args:
        config: the loaded ``connector.yaml``.
        store: the open state database (opened from ``config.state`` and closed after when None).
        workers: threads (default ``sync.workers``, 4).
        scope: what to cover (default: incremental, everything).
        wait: on SQLite, seconds to wait for another running sync before giving up.

    Raises:
        SyncBusyError: another sync holds the SQLite state database.
        ConnectorError: the run could not start or a whole stage failed (config, unreachable system); the run
            is recorded with status ``error``.

    Example:
        >>> report = run_sync(load_config(), workers=8)                    # doctest: +SKIP
        >>> report.exit_code, report.failed_open
        (0, 0)
    """
    opened = store or open_store(config.state)
    try:
        with process_lock(opened, wait=wait), frozen_heap():
            return _run(config, opened, workers or config.sync.workers, scope or SyncScope())
    finally:
        if store is None:
            opened.close()


def _run(config: ConnectorConfig, store: Store, workers: int, scope: SyncScope) -> SyncReport:
    started = time.monotonic()
    ctx = SyncContext(config, store, utc_now())
    with ExitStack() as alive:
        with run_registry(store):  # no other sync sees our run row before its presence lock is held
            dead = abandoned_runs(store, ctx.runs.running("sync"))
            ctx.run_id = ctx.runs.start("sync", {**scope.as_args(), "workers": workers})
            alive.enter_context(run_presence(store, ctx.run_id))
        if dead:
            ctx.runs.interrupt(dead, found_by=ctx.run_id)
            _log.warning("sync.runs_interrupted", runs=dead, found_by=ctx.run_id)
        try:
            partitions = _routes(ctx, scope, workers)
        except ConnectorError as exc:
            ctx.runs.finish(ctx.run_id, "error", ctx.plain_counts(), error=str(exc))
            raise
        failed_now = _count_failed(ctx)
        failed_open = ctx.failures.count_open()
        counts = ctx.plain_counts()
        ctx.runs.finish(ctx.run_id, "failed_items" if failed_open else "ok", counts)
    stages = {stage: round(seconds, 3) for stage, seconds in ctx.stages.items()}
    return SyncReport(ctx.run_id, counts, failed_open, failed_now, partitions,
                      round(time.monotonic() - started, 3), _totals(counts), stages)  # fmt: skip


def _count_failed(ctx: SyncContext) -> int:
    """Count this run's items still open: under the source system for a pull, the target for a write."""
    left = [item for item in ctx.failures.list(limit=1_000_000) if item.run_id == ctx.run_id]
    for item in left:
        route = item.route or ""
        system = (
            item.system
            if ":" not in route or route.startswith(("pull:", "webhook:"))
            else route.split("->")[-1].split(":")[0]
        )
        ctx.count(system, item.store, "failed")
    return len(left)


def _totals(counts: dict[str, dict[str, dict[str, int]]]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for stores in counts.values():
        for figures in stores.values():
            for name, value in figures.items():
                totals[name] += value
    return dict(totals)


def _routes(ctx: SyncContext, scope: SyncScope, workers: int) -> int:
    pulled: dict[str, PullReport] = {}
    due = ctx.failures.due(ctx.now) if scope.kind in ("incremental", "rerun_failed") else []
    if scope.kind == "rerun_failed":
        due = ctx.failures.list(states=("open", "retried"), limit=1_000_000)
    pulling = time.monotonic()
    remapped = _remap_failed_pulls(ctx, due)
    ctx.timed("pull", time.monotonic() - pulling)
    only = _only_documents(scope)
    processed = 0
    for group in _groups(ctx.config.routes):
        work: list[_RouteWork] = []
        for route in group:
            if route.from_ not in pulled:
                pulling = time.monotonic()
                pulled[route.from_] = _pull(ctx, route.from_, scope, workers)
                ctx.timed("pull", time.monotonic() - pulling)
            pulled[route.from_].add(remapped.pop(route.from_, PullReport()))
            partitions = sorted(_partitions(route, pulled[route.from_], due, scope), key=_order)
            held = ctx.failures.held(route_name(route), ctx.now, parked=scope.kind == "incremental")
            # the route's journaled returns, read once if one of its partitions needs them
            work.append(_RouteWork(route, partitions, held, JournaledReturns(ctx, route.from_)))
        jobs = sorted(
            ((item, partition) for item in work for partition in item.partitions),
            key=lambda job: (-_REQUESTS_PER_DOCUMENT[job[0].route.write], _order(job[1])),
        )
        writing = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sync") as pool:
            processed += sum(pool.map(partial(_job, ctx, only), jobs))
        for item in work:
            _second_pass(ctx, item.route, item.partitions, item.held, only, item.returns)
        ctx.timed("write", time.monotonic() - writing)
    if scope.kind == "incremental":
        _advance(ctx, pulled.values())
    return processed


_REQUESTS_PER_DOCUMENT = {"documents": 2, "bonus_documents": 2, "postings": 1}
"""Roughly what a source document's writes cost a route (a 1C document is a create and a Post; a sale has a
posting or two): partitions of the costlier routes start first, and the short ones fill the workers at the end."""


@dataclass(frozen=True)
class _RouteWork:
    """A route's partitions in a run, with what they share."""

    route: Route
    partitions: list[Partition]
    held: set[str]
    returns: JournaledReturns


def _groups(routes: Iterable[Route]) -> list[list[Route]]:
    """Consecutive routes from one source, none writing to it: their partitions run on one pool at once.

    A route whose source another route of the run writes to (``crm → onec`` bonus documents after
    ``evotor → crm``) starts a new group, so its source is pulled after those writes, as the configured order
    says; routes that only read the same source (``evotor → crm``, ``evotor → onec``) share the workers, so
    that none of them idles while the last partitions of one route finish.
    """
    groups: list[list[Route]] = []
    for route in routes:
        group = groups[-1] if groups else []
        if group and route.from_ == group[0].from_ and route.from_ not in {r.to for r in [*group, route]}:
            group.append(route)
        else:
            groups.append([route])
    return groups


def _job(ctx: SyncContext, only: set[str] | None, job: tuple[_RouteWork, Partition]) -> int:
    work, partition = job
    return _partition(ctx, partition, work.held, only, work.returns)


def _advance(ctx: SyncContext, reports: Iterable[PullReport]) -> None:
    """Move each stream read completely to the end of its window — only now that every route has run.

    Moved right after the pull, a crash before the writes would leave the window's partitions to nobody: the
    next run would read from the new watermark on. Moved here, a crashed run's successor reads the window
    again (unchanged documents cost a fetch, not a write) and finishes its partitions.
    """
    for report in reports:
        for window in report.windows:
            with ctx.writing():
                ctx.cursors.advance(window.system, window.stream, window.store, window.until)


def _second_pass(
    ctx: SyncContext, route: Route, partitions: list[Partition], held: set[str], only: set[str] | None,
    returns: JournaledReturns | None = None,
) -> None:  # fmt: skip
    """Once more for documents that waited on another document of this run (a return on its sale's partition)."""
    waited = ctx.take_waiting(route_name(route))
    if not waited:
        return
    stores = {store for store, _ in waited}
    for partition in partitions:
        if partition.store in stores:
            _partition(ctx, partition, held - {doc for _, doc in waited}, {doc for _, doc in waited}, returns)


def _order(partition: Partition) -> tuple[date, str]:
    # Earlier days first: a return's sale is usually in an earlier partition and is then written first.
    return partition.day, partition.store


def _pull(ctx: SyncContext, system: str, scope: SyncScope, workers: int) -> PullReport:
    stores = list(scope.stores) if scope.stores else None
    if scope.kind == "rerun_failed":  # no pull, except of the streams a run could not read
        unread = {store for route, store in ctx.failures.live_streams() if route == f"pull:{system}"}
        windows = [
            incremental_window(ctx, system, stream, store)
            for stream, store in source_streams(ctx, system, stores)
            if store in unread
        ] if unread else []  # fmt: skip
        return run_pulls(ctx, windows, advance=False, workers=workers)
    if scope.kind == "document":
        return _pull_document(ctx, system, scope)
    if scope.kind == "window":
        since, until = window_bounds(scope.date_from or scope.date_to or ctx.now.date(),
                                     scope.date_to or scope.date_from or ctx.now.date())  # fmt: skip
        # A ledger operation is dated when it is written (often by this very run), not on its receipt's date:
        # a backfill reads the ledger up to now, so what the run wrote to the CRM reaches its 1C mirror.
        windows = [
            Window(
                system, stream, store, since, max(until, _ledger_until()) if stream == "operations" else until
            )
            for stream, store in source_streams(ctx, system, stores)
        ]
        return run_pulls(ctx, windows, advance=False, workers=workers)
    windows = [
        incremental_window(ctx, system, stream, store)
        for stream, store in source_streams(ctx, system, stores)
    ]
    return run_pulls(ctx, windows, advance=False, workers=workers)  # moved by _advance at the end of the run


def _ledger_until() -> datetime:
    """Now, with slack for the ledger's clock: operations written moments ago by this run are included."""
    return utc_now() + timedelta(hours=1)


def _pull_document(ctx: SyncContext, system: str, scope: SyncScope) -> PullReport:
    """Fetch the documents again where the source can (Evotor, by store and id), else use the journal."""
    report = PullReport()
    wanted = list(scope.documents)
    if scope.document is not None:
        journaled = [entry for entry in ctx.journal.find(scope.document) if entry.ref.system == system]
        store = scope.stores[0] if scope.stores else next((e.store for e in journaled if e.store), None)
        wanted.append((store or "", scope.document))
        report.days |= {
            (entry.store or "", entry.business_date) for entry in journaled if entry.business_date
        }
    adapter = ctx.adapter(system)
    for store, document_id in wanted:
        if store and hasattr(adapter, "document"):
            try:
                record = adapter.document(store, document_id)
            except ConnectorError as exc:
                ref = DocRef(system=system, kind="document", id=document_id)
                ctx.fail(failure_for(system, f"pull:{system}", exc, document=ref, store=store), exc)
                continue
            report.fetched += 1
            ctx.count(system, store, "fetched")
            journal_record(ctx, record, report)
    return report


def _remap_failed_pulls(ctx: SyncContext, items: Iterable[FailedRecord]) -> dict[str, PullReport]:
    """Map again the raw payloads of pulls that failed to map and are due (the mapping may have been fixed)."""
    reports: dict[str, PullReport] = defaultdict(PullReport)
    for item in items:
        if not (item.route or "").startswith("pull:") or item.document is None:
            continue
        entry = ctx.journal.get(item.document)
        if entry is None or entry.canonical is not None:
            continue
        record = RawRecord(
            entry.ref.system, entry.ref.kind, entry.ref.id, entry.version, entry.store, entry.raw
        )
        journal_record(ctx, record, reports[entry.ref.system])
    return reports


def _only_documents(scope: SyncScope) -> set[str] | None:
    if scope.kind != "document":
        return None
    return {document for _, document in scope.documents} | ({scope.document} if scope.document else set())


def _partitions(
    route: Route, pulled: PullReport, due: Iterable[FailedRecord], scope: SyncScope
) -> set[Partition]:
    """The route's partitions: the days its source pull touched, and those of its failed items now due."""
    name = route_name(route)
    days = set(pulled.days)
    days |= {
        (item.store or "", item.business_date) for item in due if item.route == name and item.business_date
    }
    wanted = set(scope.stores) if scope.stores else None
    return {
        Partition(route, store, day) for store, day in days if wanted is None or store in wanted or not store
    }


def _wanted(route: Route, entry: JournalEntry) -> bool:
    if entry.canonical is None:
        return False
    kind = entry.canonical.get("type", "posting")
    return kind in route.documents


def _partition(
    ctx: SyncContext, partition: Partition, held: set[str], only: set[str] | None,
    returns: JournaledReturns | None = None,
) -> int:  # fmt: skip
    """Plan, record and push one partition; returns 1, or 0 when another process holds it."""
    route = partition.route
    with partition_lock(ctx.store, partition.name) as mine:
        if not mine:
            return 0
        if partition.store:  # what the pull landed for this store's day is mapped first (once per run)
            map_unmapped(ctx, route.from_, partition.store, partition.day)
        stores = [partition.store] if partition.store else None
        entries = [
            entry
            for entry in ctx.journal.documents_in_window(
                route.from_, stores, partition.day, partition.day, raw=False
            )
            if entry.ref.id not in held and (only is None or entry.ref.id in only) and _wanted(route, entry)
        ]
        history = History.load(ctx, route, entries, returns)
        known = known_writes(ctx, route, entries, history)
        ordered: list[PlannedWrite] = []  # in the journal's time order: a sale before its returns
        fresh: list[PlannedWrite] = []
        for entry in entries:
            planned = known.get(entry.ref.id)
            if planned is None:
                planned = _plan(ctx, route, entry, history)
                fresh += planned
            ordered += planned
        refused = record_writes(ctx, route, fresh)
        push_writes(ctx, route, [write for write in ordered if write.source not in refused])
    return 1


def _plan(ctx: SyncContext, route: Route, entry: JournalEntry, history: History) -> list[PlannedWrite]:
    try:
        planned = plan_document(ctx, route, entry, history)
    except Exception as exc:  # one document's error never stops the partition
        ctx.fail(failure_for(entry.ref.system, route_name(route), exc, document=entry.ref, store=entry.store,
                             business_date=entry.business_date, payload=entry.canonical), exc)  # fmt: skip
        return []
    if not planned:
        ctx.resolve(entry.ref, route_name(route))
    return planned
