"""The main job on embedded defaults: what ``loyalty-connector demo`` (and ``make demo``) runs.

1. start the sandbox in-process (emulated 1C, Evotor cloud and CRM, a generated week of receipts, with the
   discrepancies an earlier, imperfect integration left behind);
2. write ``connector.yaml`` for it into the demo directory (SQLite state beside it);
3. sync the generated week: till receipts into the journal, expected postings into the CRM, receipts into 1C,
   the CRM ledger into 1C — every write through the outbox, nothing written twice;
4. run the nightly reconciliation over the week and write its HTML report.

What sync could repair by writing (a receipt missing in 1C, a missing accrual) is repaired by step 3; the report
shows what is left for a person or for ``reconcile --fix --apply``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from connector.config import load_config
from connector.discrepancies import ReconcileResult
from connector.reconcile import reconcile
from connector.report import write_report
from connector.sandbox.generator import SandboxOptions
from connector.sandbox.rehearsal import write_sandbox_config
from connector.sandbox.server import SandboxServer
from connector.store import open_store
from connector.sync import SyncReport, SyncScope, run_sync

__all__ = ["DemoOutcome", "run_demo"]


@dataclass(frozen=True)
class DemoOutcome:
    """What the demo did, for the command to print."""

    directory: Path
    config: Path
    report: Path
    sync: SyncReport
    result: ReconcileResult
    seconds: float


def run_demo(directory: Path, options: SandboxOptions | None = None, *, workers: int = 4) -> DemoOutcome:
    """Run the main job against an in-process sandbox; everything it writes goes into ``directory``.

    Args:
        directory: where ``connector.yaml``, ``connector.db`` and ``report.html`` go (created; a previous
            demo's files there are replaced, so every run starts from the same state).
        options: the sandbox world (default: seed 7, 3 stores, the week from 2026-11-01).
        workers: sync threads.
    """
    started = time.perf_counter()
    options = options or SandboxOptions()
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in ("connector.db", "connector.db-wal", "connector.db-shm"):
        (directory / leftover).unlink(missing_ok=True)
    date_from, date_to = options.start, options.start + timedelta(days=options.days - 1)
    with SandboxServer(options) as sandbox:
        config_path = write_sandbox_config(sandbox.base_url, directory, force=True)
        config = load_config(config_path)
        with open_store(config.state) as store:
            sync = run_sync(
                config, store=store, workers=workers, scope=SyncScope(date_from=date_from, date_to=date_to)
            )
            result = reconcile(config, date_from=date_from, date_to=date_to, store=store)
    report = write_report(result, "html", directory / "report.html", title="loyalty-connector demo")
    return DemoOutcome(directory, config_path, report, sync, result, time.perf_counter() - started)
