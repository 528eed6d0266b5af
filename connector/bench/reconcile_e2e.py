"""``bench reconcile --end-to-end``: the nightly reconciliation against a sandbox, beside plain ``requests``.

Issue 6, item 7 (last sentence). The sandbox (a child process, the default world — 1C and the CRM hold what an
earlier connector run wrote, with injected discrepancies) counts every request and records every ``GET`` URL
while :func:`connector.reconcile.reconcile` runs over the generated week with a fresh state database, as the
nightly job does (fresh pulls into the journal, then compare). The baseline then downloads exactly those URLs
again with plain ``requests`` on ``workers`` threads: the same pages, nothing done with them.
"""

from __future__ import annotations

import math
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

from connector.bench.common import Target, load_average, peak_rss_mb, timed, verdict_lines
from connector.bench.sandbox_proc import SandboxProcess, system_of
from connector.bench.sync_bench import bench_config
from connector.reconcile import reconcile
from connector.sandbox.generator import SandboxOptions
from connector.sandbox.server import CRM_API_KEY, EVOTOR_TOKEN, ONEC_PASSWORD, ONEC_USER
from connector.store import open_store

__all__ = ["E2E_RATIO_TARGET", "format_end_to_end", "replay", "run_end_to_end_bench"]

E2E_RATIO_TARGET = 1.5
"""Not fixed by the issue (it asks for the time and the ratio); the sync pull's target, printed for scale."""
_DAYS = 7
_TIMEOUT = 300


def _session(system: str) -> requests.Session:
    session = requests.Session()
    if system == "evotor":
        session.headers["X-Authorization"] = EVOTOR_TOKEN
    elif system == "crm":
        session.headers["X-API-KEY"] = CRM_API_KEY
    elif system == "onec":
        session.auth = (ONEC_USER, ONEC_PASSWORD)
    return session


def replay(base_url: str, urls: list[str], workers: int) -> dict[str, int]:
    """GET every URL (a path with its query) on ``workers`` threads; count the answers by status."""
    sessions: dict[tuple[int, str], requests.Session] = {}

    def one(url: str) -> int:
        import threading

        key = (threading.get_ident(), system_of(url))
        session = sessions.setdefault(key, _session(key[1]))
        response = session.get(f"{base_url}{url}", timeout=_TIMEOUT)
        _ = response.content
        return response.status_code

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="baseline") as pool:
        statuses = list(pool.map(one, urls))
    for session in sessions.values():
        session.close()
    return {str(status): statuses.count(status) for status in sorted(set(statuses))}


def run_end_to_end_bench(
    *, receipts: int = 200_000, stores: int = 50, workers: int = 4, latency_ms: float = 0, seed: int = 7
) -> dict[str, Any]:
    """Run the nightly reconciliation end to end once; return the object ``--json`` prints.

    Args:
        receipts: till receipts to generate (over ``stores`` stores and 7 days, rounded up).
        stores: stores of the world.
        workers: the sync's pull threads (``sync.workers``) and the baseline's threads.
        latency_ms: latency the sandbox adds to every response.
        seed: the world's seed.
    """
    per_day = max(1, math.ceil(receipts / (stores * _DAYS)))
    options = SandboxOptions(seed=seed, stores=stores, days=_DAYS, receipts=per_day)
    first, last = options.start, options.start + timedelta(days=_DAYS - 1)
    with SandboxProcess(options, latency_ms=latency_ms) as sandbox, tempfile.TemporaryDirectory() as tmp:
        config = bench_config(sandbox, Path(tmp), all_routes=True)
        config = config.model_copy(update={"sync": config.sync.model_copy(update={"workers": workers})})
        sandbox.reset(record=True)
        store = open_store(config.state)
        try:
            result, ours_s = timed(lambda: reconcile(config, date_from=first, date_to=last, store=store))
        finally:
            store.close()
        counts, urls = sandbox.counts(), sandbox.urls()
        statuses, baseline_s = timed(lambda: replay(sandbox.base_url, urls, workers))
    return {
        "receipts": sandbox.receipts,
        "stores": stores,
        "workers": workers,
        "latency_ms": latency_ms,
        "ours_s": ours_s,
        "baseline_s": baseline_s,
        "ratio": round(ours_s / baseline_s, 4),
        "requests": counts,
        "baseline_statuses": statuses,
        "documents_compared": result.documents_compared,
        "summary": result.summary(),
        "peak_rss_mb": peak_rss_mb(),
        "load_average": load_average(),
    }


def format_end_to_end(result: dict[str, Any]) -> list[str]:
    """The human-readable report of a result of :func:`run_end_to_end_bench`."""
    return [
        f"bench reconcile --end-to-end: {result['receipts']} sandbox receipts, {result['stores']} stores, "
        f"{result['workers']} workers, {result['latency_ms']:g} ms latency "
        f"(load average {' '.join(map(str, result['load_average']))}; sandbox in a child process)",
        f"  ours: reconcile (fresh pulls into the journal, compare)  {result['ours_s']:>9.2f} s",
        f"  baseline: the same {sum(result['requests'].values())} requests with plain requests "
        f"{result['baseline_s']:>9.2f} s  (answers {result['baseline_statuses']})",
        f"  documents compared {result['documents_compared']}; discrepancies {result['summary']}; "
        f"peak RSS {result['peak_rss_mb']:.0f} MB",
        *verdict_lines([Target("reconcile / plain requests (ratio)", result["ratio"], E2E_RATIO_TARGET)]),
    ]
