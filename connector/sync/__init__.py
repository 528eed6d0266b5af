"""The sync engine: pull documents into the journal, plan each route's writes, push them through the outbox.

Public surface (stable; the scheduler, the demo, the benchmark and the reconciliation call it)::

    from connector.sync import SyncScope, run_sync, pull_window

    report = run_sync(config, workers=4)                              # incremental, every route
    report = run_sync(config, scope=SyncScope(rerun_failed=True))     # sync --rerun-failed
    report = run_sync(config, scope=SyncScope(document="<id>"))       # sync --document ID
    report = run_sync(config, scope=SyncScope(date_from=d1, date_to=d2, stores=("S",)))  # backfill
    report.exit_code                                                  # 0 all written, 1 failed items left

    pull_window(config, store, "evotor", d1, d2)     # fresh reads for a window; writes nowhere, moves no cursor
    Journal(store.sessions).documents_in_window("evotor", None, d1, d2)

Stages: :mod:`~connector.sync.pull` (sources → journal), :mod:`~connector.sync.plan` (routes → writes),
:mod:`~connector.sync.push` (outbox → targets), :mod:`~connector.sync.engine` (partitions, threads, locks,
runs), :mod:`~connector.sync.failures` (transient or permanent, backoff), :mod:`~connector.sync.locks`.
"""

from connector.store.journal import Journal, JournalEntry
from connector.sync.context import COUNTS, route_name
from connector.sync.engine import Partition, SyncReport, SyncScope, run_sync
from connector.sync.failures import WaitingError, classify
from connector.sync.locks import SyncBusyError
from connector.sync.pull import PullReport, pull_window

__all__ = [
    "COUNTS",
    "Journal",
    "JournalEntry",
    "Partition",
    "PullReport",
    "SyncBusyError",
    "SyncReport",
    "SyncScope",
    "WaitingError",
    "classify",
    "pull_window",
    "route_name",
    "run_sync",
]
