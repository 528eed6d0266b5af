"""Crash safety, proven: a sync killed with SIGKILL at 20 random moments under injected faults still writes every
expected CRM posting and every 1C receipt exactly once, and parks only the malformed receipt put there on purpose.

The sandbox serves a clean world of 2,000 receipts (5 stores × 4 days × 100) in this process; the sync runs as
``loyalty-connector sync`` subprocesses on a SQLite state file, faults ``*:429=0.1,*:500=0.05,*:drop=0.02`` on.
Each of the first 20 runs is killed after a random delay; then runs go on until one ends with nothing left to do.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from connector.sandbox.generator import SandboxOptions, generate_world
from connector.sandbox.server import SandboxServer
from connector.store import open_store
from connector.store.failures import FailedItems
from connector.store.runs import Runs
from tests.e2e.sync_support import (
    crm_comments,
    expected_keys,
    inject_malformed_receipt,
    onec_comments,
    seed_opening_balances,
    write_config,
)

KILLS = 20
FAULTS = "*:429=0.1,*:500=0.05,*:drop=0.02"
RECEIPT_SETS = ("Document_ЧекККМ", "Document_ЧекККМВозврат")
BONUS_SET = "Document_НачислениеИСписаниеБонусныхБаллов"


def _sync(config: Path, env: dict[str, str], *, output: bool = True) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "connector", "sync", "--config", str(config), "--workers", "8",
               "--format", "json", "--wait", "30"]  # fmt: skip
    pipe = subprocess.PIPE if output else subprocess.DEVNULL
    return subprocess.Popen(command, stdout=pipe, stderr=pipe, text=True, env=env)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_at_20_moments_under_faults_loses_nothing_and_writes_nothing_twice(tmp_path: Path) -> None:
    world = generate_world(SandboxOptions(seed=21, stores=5, days=4, receipts=100, clean=True,
                                          start=date(2026, 11, 2)))  # fmt: skip
    crm_keys, receipt_keys = expected_keys(world)
    malformed = inject_malformed_receipt(world)
    assert len(world.receipts) >= 2001
    rng = random.Random(7)
    with SandboxServer(world, rate_per_second=0, fault_seed=3) as sandbox:
        seed_opening_balances(sandbox.base_url, world)
        sandbox.faults.update(FAULTS)
        sandbox.faults.retry_after = 0  # a 429's Retry-After: the test's clock is short
        http = {"backoff_base": 0.01, "backoff_max": 0.1, "max_retry_wait": 0.5, "max_retries": 8}
        config = write_config(world, sandbox.base_url, tmp_path, sync={"max_attempts": 100})
        _set_http_policy(config, http)
        env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
        started = time.monotonic()
        for _ in range(KILLS):
            process = _sync(config, env, output=False)
            time.sleep(rng.uniform(1.0, 6.0))  # from start-up and pulls to the middle of the writes
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        reports = []
        for _ in range(8):  # runs until one finds nothing left but the malformed receipt
            process = _sync(config, env)
            out, err = process.communicate(timeout=600)
            assert process.returncode in (0, 1), err
            reports.append(json.loads(out))
            if reports[-1]["failed_open"] == 1 and reports[-1]["totals"]["written"] == 0:
                break
        elapsed = time.monotonic() - started
        injected = dict(sandbox.faults.injected)
        sandbox.faults.update("")  # read the results back without faults
        crm = Counter(c for c in crm_comments(sandbox.base_url) if c.startswith("crm:"))
        receipts = Counter(c for s in RECEIPT_SETS for c in onec_comments(sandbox.base_url, s))
        bonus = Counter(c for c in onec_comments(sandbox.base_url, BONUS_SET) if c.startswith("onec:evotor:"))

    print(f"crash test: {len(reports)} final run(s), {elapsed:.0f} s, faults {injected}, last {reports[-1]}")
    assert set(crm) == crm_keys, "every expected CRM posting"
    assert max(crm.values()) == 1, [key for key, n in crm.items() if n > 1]
    assert set(receipts) == receipt_keys, "every 1C receipt"
    assert max(receipts.values()) == 1, [key for key, n in receipts.items() if n > 1]
    assert set(bonus) == {f"onec:{key.removeprefix('crm:')}" for key in crm_keys}
    assert max(bonus.values()) == 1
    assert sum(injected.values()) > 100, injected  # the faults really fired
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        (left,) = FailedItems(store.sessions).list()
        statuses = Counter(run.status for run in Runs(store.sessions).recent(100, "sync"))
    assert statuses["running"] == 0, "every killed run is recorded interrupted by the next one"
    assert statuses["interrupted"] >= KILLS // 2, statuses  # a few die before their run is recorded
    assert left.document is not None
    assert left.document.id == malformed
    assert (left.route, left.error_kind) == ("pull:evotor", "permanent")
    assert "customer.phone" in left.error


def _set_http_policy(config: Path, policy: dict[str, float]) -> None:
    """Short retry waits for every system (``options.http``), so faults cost milliseconds, not seconds."""
    import yaml

    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    for system in data["systems"].values():
        system.setdefault("options", {})["http"] = policy
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
