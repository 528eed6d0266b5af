"""What one sync run shares across its worker threads: config, repositories, adapters, mappings and counts.

Adapters are built once per run and shared by every worker (they are thread-safe and keep their key indexes:
one CRM feed read and one 1C catalog read per run). Counts are per system and store::

    {"evotor": {"<store>": {"fetched": 120, "mapped": 119, "failed": 1, ...}},
     "crm":    {"<store>": {"written": 80, "skipped": 3, "failed": 0}}}

* ``fetched`` documents read from the source; ``mapped`` of them new or changed and mapped; ``unchanged`` the
  same version as journaled;
* ``written`` writes created in the target; ``skipped`` writes found there already (confirmed, not written
  again); ``failed`` documents parked as failed items.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from adapters.base import build_adapter
from connector.categories import sku_categories
from connector.config import ConnectorConfig, Route
from connector.logs import get_logger
from connector.mapping import Mapping, load_system_mapping
from connector.model import DocRef
from connector.store import Store
from connector.store.cursors import Cursors
from connector.store.failures import FailedItems, Failure
from connector.store.journal import Journal
from connector.store.runs import Runs
from connector.sync.failures import WaitingError, classify, excerpt, next_attempt_at

__all__ = ["COUNTS", "STAGES", "SyncContext", "failure_for", "route_name"]

COUNTS = ("fetched", "mapped", "unchanged", "written", "skipped", "failed")
STAGES = ("pull", "map", "write")
"""A run's stages, timed in seconds: ``pull`` reads the sources into the journal (wall time), ``map`` maps what
the pulls landed (summed over the pool's threads: it runs inside the write stage, beside the network waits) and
``write`` plans and pushes the partitions (wall time, the map included)."""
_log = get_logger("connector.sync")


def route_name(route: Route) -> str:
    """A route's stable name, as failed items and runs show it: ``evotor->crm:postings``."""
    return f"{route.from_}->{route.to}:{route.write}"


@dataclass
class SyncContext:
    """Everything a run's workers share; see the module docstring for the counts."""

    config: ConnectorConfig
    store: Store
    now: datetime
    run_id: int | None = None
    journal: Journal = field(init=False)
    cursors: Cursors = field(init=False)
    runs: Runs = field(init=False)
    failures: FailedItems = field(init=False)
    counts: dict[str, dict[str, dict[str, int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: dict.fromkeys(COUNTS, 0)))
    )
    _adapters: dict[str, Any] = field(default_factory=dict)
    _mappings: dict[str, Mapping] = field(default_factory=dict)
    _catalogs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _categories: dict[str, str] | None = None
    waiting: set[tuple[str, str, str]] = field(default_factory=set)
    """(route name, store, document id) of documents that waited on another this run (retried once at its end)."""
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _write_lock: threading.RLock = field(default_factory=threading.RLock)
    _live: set[tuple[str, str]] | None = None
    _map_locks: dict[tuple[str, str, date], threading.Lock] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    """Seconds per stage of the run (see :data:`STAGES`)."""
    mapped_days: set[tuple[str, str, date]] = field(default_factory=set)
    """(system, store, business date) whose landed documents this run mapped already (once per run)."""

    def __post_init__(self) -> None:
        sessions = self.store.sessions
        self.journal, self.cursors = Journal(sessions), Cursors(sessions)
        self.runs, self.failures = Runs(sessions), FailedItems(sessions)

    def count(self, system: str, store: str | None, name: str, by: int = 1) -> None:
        """Add ``by`` to a count of ``system`` and ``store``."""
        with self._lock:
            self.counts[system][store or ""][name] += by

    def plain_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """The counts as plain dicts (for the run record and JSON)."""
        with self._lock:
            return {
                system: {store: dict(c) for store, c in stores.items()}
                for system, stores in self.counts.items()
            }

    def adapter(self, system: str) -> Any:
        """The run's adapter of a configured system, built on first use."""
        with self._lock:
            if system not in self._adapters:
                self._adapters[system] = build_adapter(system, self.config.systems[system])
            return self._adapters[system]

    def mapping(self, system: str) -> Mapping:
        """The mapping of a configured system, loaded once per run (for the CRM, its preset's mapping)."""
        with self._lock:
            if system not in self._mappings:
                config = self.config.systems[system]
                if not config.mapping and config.adapter == "crm":
                    config = config.model_copy(update={"mapping": self.adapter(system).mapping})
                self._mappings[system] = load_system_mapping(system, config)
            return self._mappings[system]

    def catalogs(self, system: str) -> dict[str, Any]:
        """The lookups the system's mapping needs, read once per run (1C catalogs, CRM accounts)."""
        with self._lock:
            if system not in self._catalogs:
                adapter, kind = self.adapter(system), self.config.systems[system].adapter
                if kind == "onec":
                    self._catalogs[system] = adapter.catalogs()
                elif kind == "crm":
                    self._catalogs[system] = {"accounts": adapter.accounts_catalog()}
                else:
                    self._catalogs[system] = {}
            return self._catalogs[system]

    def categories(self) -> dict[str, str]:
        """sku → category from accounting's item catalogs, read once per run (the rules need categories)."""
        if self._categories is None:
            names = [name for name, system in self.config.systems.items() if system.adapter == "onec"]
            found = sku_categories(self.catalogs(name) for name in names)
            with self._lock:
                self._categories = found
        return self._categories

    def fail(self, failure: Failure, error: BaseException) -> None:
        """Park a failed document: transient with its next attempt time, or permanent once out of attempts."""
        kind = classify(error)
        if isinstance(error, WaitingError) and failure.document is not None:
            with self._lock:
                self.waiting.add((failure.route, failure.store or "", failure.document.id))
        attempts = self.failures.attempts(failure.document, failure.route) + 1 if failure.document else 1
        due = next_attempt_at(self.config.sync, attempts, self.now) if kind == "transient" else None
        if kind == "transient" and due is None:
            kind = "permanent"
        parked = replace(failure, error_kind=kind, next_attempt_at=due)
        with self.writing():
            self.failures.park(parked, self.run_id)
        with self._lock:
            if self._live is not None and failure.document is not None:
                self._live.add((failure.route, failure.document.id))
        _log.warning("sync.failed", system=failure.system, route=failure.route, kind=kind,
                     document=failure.document.id if failure.document else None, error=str(error)[:300])  # fmt: skip

    def take_waiting(self, route: str) -> set[tuple[str, str]]:
        """(store, document id) of this route's documents that waited this run; forgotten once taken."""
        with self._lock:
            taken = {(store, doc) for route_, store, doc in self.waiting if route_ == route}
            self.waiting -= {(route, store, doc) for store, doc in taken}
        return taken

    def resolve(self, ref: DocRef, route: str) -> None:
        """A document went through ``route``: its failed item, if any, is resolved.

        The live items are read once per run, so the common case (nothing failed) costs no query.
        """
        with self._lock:
            if self._live is None:
                self._live = self.failures.live_documents()
            if (route, ref.id) not in self._live:
                return
            self._live.discard((route, ref.id))
        with self.writing():
            self.failures.resolve(ref, route)

    def timed(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` to a stage's time."""
        with self._lock:
            self.stages[stage] += seconds

    def map_lock(self, system: str, store: str, day: date) -> threading.Lock:
        """The lock under which one thread of the run maps a store's day (the routes' partitions share it)."""
        with self._lock:
            return self._map_locks.setdefault((system, store, day), threading.Lock())

    def writing(self) -> AbstractContextManager[object]:
        """Hold while writing to a SQLite state database: one writer thread at a time.

        SQLite allows one writer; threads colliding on its lock would wait in its busy handler, which sleeps
        up to 100 ms a try. A Python lock hands the turn over at once. PostgreSQL needs no such lock.
        """
        return self._write_lock if self.store.dialect == "sqlite" else nullcontext()


def failure_for(
    system: str, route: str, error: BaseException, *, document: DocRef | None, store: str | None,
    business_date: Any = None, payload: Any = None,
) -> Failure:  # fmt: skip
    """A :class:`Failure` (its kind is decided by :meth:`SyncContext.fail`)."""
    return Failure(system=system, route=route, error_kind="permanent", error=f"{type(error).__name__}: {error}",
                   document=document, store=store, business_date=business_date,
                   payload_excerpt=excerpt(payload) if payload is not None else None)  # fmt: skip
