"""``bench sync``: the sync engine against a sandbox with latency, beside a plain-``requests`` baseline.

Issue 5, item 8. One run measures, in this order, against one sandbox child process
(:class:`~connector.bench.sandbox_proc.SandboxProcess`, ``--clean`` world, ``*:latency=20ms``, emulator rate
budgets off), in ``rounds`` rounds (default 3) of a baseline and the pull it is compared with, back to back:

1. **baseline** — the same Evotor pages (every store's documents of the window, cursor after cursor) downloaded
   with plain ``requests`` on ``workers`` threads, one store per thread at a time, JSON decoded, nothing else;
2. **pull** — right after it, in every round but the last, the sync's pull stage alone
   (:func:`connector.sync.pull_window` with ``map_landed=False``: :func:`~connector.sync.pull.run_pulls` over the
   window) into a fresh state database; in the last round, the **sync** itself:
   :func:`connector.sync.run_sync` over the window (tills → CRM postings, tills → 1C receipts) on a fresh state
   database, with the sandbox counting every request it receives per system. Its report's stage timings give
   its pull stage (the receipts read and landed in the journal), the map (summed over the threads; it runs
   inside the write stage) and the write stage;
3. **pull + map** — at the end, :func:`connector.sync.pull_window` into another fresh state database: the
   reconciliation's fresh read, which lands the receipts and maps them all before it returns (shown for scale,
   no target).

``ratio`` is the median round's pull / baseline, and ``ours_s`` and ``baseline_s`` are that round's: this
machine is shared, and the time of the same download swings by a third from one minute to the next, so one
round could pass or miss on the weather. Every round is in ``rounds``. Nothing runs between a baseline and its
pull: no write of hundreds of megabytes the kernel would still be flushing, no other stage's heap.

``requests_per_write`` is, per target, the requests the target
received during the sync divided by the API minimum for the writes made (the CRM: 1 per posting; 1C: create +
Post = 2 per document). ``peak_rss_mb`` is this process's peak (the sandbox runs in its own process and is not
counted).
"""

from __future__ import annotations

import cProfile
import math
import pstats
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml

from adapters.evotor import DOCUMENT_TYPES, epoch_ms
from connector.bench.common import Target, load_average, peak_rss_mb, timed, verdict_lines
from connector.bench.sandbox_proc import SandboxProcess
from connector.config import ConnectorConfig, load_config
from connector.sandbox.generator import SandboxOptions
from connector.sandbox.rehearsal import CONFIG_NAME, sandbox_config_text
from connector.sandbox.server import EVOTOR_TOKEN
from connector.store import open_store
from connector.sync import SyncScope, pull_window, run_sync
from connector.sync.pull import window_bounds

__all__ = [
    "API_MINIMUM",
    "SYNC_TARGETS",
    "bench_config",
    "download_pages",
    "format_sync",
    "run_sync_bench",
    "sync_targets",
]

API_MINIMUM = {"crm": 1, "onec": 2}
"""Requests the target's API needs at least per write: a CRM posting is one call, a 1C receipt create + Post."""

SYNC_TARGETS = {"ratio": 1.5, "requests_per_write": 1.05, "peak_rss_mb": 500.0}
_DAYS = 7
_TIMEOUT = 120


def _world(receipts: int, stores: int, seed: int) -> SandboxOptions:
    per_day = max(1, math.ceil(receipts / (stores * _DAYS)))
    return SandboxOptions(seed=seed, stores=stores, days=_DAYS, clean=True, receipts=per_day,
                          opening_balances=True)  # fmt: skip


def bench_config(sandbox: SandboxProcess, directory: Path, *, all_routes: bool = False) -> ConnectorConfig:
    """The rehearsal config for ``sandbox`` with 1C's stores mapped and state in ``directory``.

    Args:
        sandbox: the running sandbox child.
        directory: where ``connector.yaml`` and the state database go.
        all_routes: keep every route (else only the two till routes: tills → CRM, tills → 1C).
    """
    data = yaml.safe_load(sandbox_config_text(sandbox.base_url))
    data["systems"]["onec"].setdefault("options", {})["store_ids"] = sandbox.onec_stores
    if not all_routes:
        data["routes"] = [route for route in data["routes"] if route["from"] == "evotor"]
    data["state"] = f"sqlite:///{directory / 'connector.db'}"
    path = directory / CONFIG_NAME
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_config(path)


def _store_pages(session: requests.Session, url: str, params: dict[str, Any]) -> int:
    """Download one store's document pages cursor after cursor; return the documents seen."""
    documents = 0
    while True:
        response = session.get(url, params=params, timeout=_TIMEOUT)
        response.raise_for_status()
        body = response.json()
        documents += len(body["items"])
        cursor = (body.get("paging") or {}).get("next_cursor")
        if not cursor:
            return documents
        params = {"cursor": cursor}


def download_pages(evotor_url: str, first: date, last: date, workers: int) -> int:
    """The baseline: every store's Evotor documents of the window with plain ``requests`` on ``workers`` threads."""
    since, until = window_bounds(first, last)
    params = {"since": epoch_ms(since), "until": epoch_ms(until), "type": ",".join(DOCUMENT_TYPES)}
    headers = {"X-Authorization": EVOTOR_TOKEN}
    with requests.Session() as session:
        session.headers.update(headers)
        stores = [
            str(item["id"]) for item in session.get(f"{evotor_url}/stores", timeout=_TIMEOUT).json()["items"]
        ]

    def one(store: str) -> int:
        with requests.Session() as own:
            own.headers.update(headers)
            return _store_pages(own, f"{evotor_url}/stores/{store}/documents", dict(params))

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="baseline") as pool:
        return sum(pool.map(one, stores))


def _profiled(action: Callable[[], Any], profile: Path | None) -> Any:
    """Run ``action``; with ``profile``, under cProfile in this thread and in every thread it starts (the
    engine's work runs on pool threads), all merged into one stats file. Times are each thread's CPU time:
    wall time would charge a thread for the GIL waits of the others."""
    if profile is None:
        return action()
    profilers = [cProfile.Profile(time.thread_time)]

    def boot(*_: Any) -> None:  # the first profile event of a new thread: profile it from here on
        profilers.append(cProfile.Profile(time.thread_time))
        profilers[-1].enable()

    threading.setprofile(boot)
    profilers[0].enable()
    try:
        return action()
    finally:
        profilers[0].disable()
        threading.setprofile(None)
        stats = pstats.Stats(profilers[0])
        for profiler in profilers[1:]:
            stats.add(profiler)
        stats.dump_stats(str(profile))


def _requests_per_write(counts: dict[str, int], written: dict[str, int]) -> dict[str, float | None]:
    """Per target: requests received ÷ (API minimum × writes made); None when nothing was written."""
    out: dict[str, float | None] = {}
    for target, minimum in API_MINIMUM.items():
        made = sum(value for key, value in counts.items() if key.split(" ")[0] == target)
        out[target] = round(made / (minimum * written[target]), 4) if written.get(target) else None
    return out


def _written(report_counts: dict[str, dict[str, dict[str, int]]]) -> dict[str, int]:
    return {
        target: sum(figures.get("written", 0) for figures in report_counts.get(target, {}).values())
        for target in API_MINIMUM
    }


def _pull_round(
    config: ConnectorConfig, path: Path, first: date, last: date, workers: int, expected: int
) -> float:
    """The sync's pull stage alone over the window, into a fresh state database at ``path`` (then removed);
    its seconds.

    Raises:
        RuntimeError: it did not land every document the baseline downloaded (a pull that failed is no measure).
    """
    store = open_store(f"sqlite:///{path}")
    try:
        report, seconds = timed(
            lambda: pull_window(config, store, "evotor", first, last, workers=workers, map_landed=False)
        )
    finally:
        store.close()
        for made in path.parent.glob(f"{path.name}*"):  # the database, its WAL and shared memory
            made.unlink()
    if (report.fetched, report.new, report.failed) != (expected, expected, 0):
        raise RuntimeError(f"the pull landed {report.new} of {expected} documents ({report.failed} failed)")
    return seconds


def _round(baseline_s: float, ours_s: float, stage: str) -> dict[str, Any]:
    return {
        "stage": stage,
        "baseline_s": baseline_s,
        "ours_s": ours_s,
        "ratio": round(ours_s / baseline_s, 4),
    }


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round whose ratio is the median (the upper one of an even count)."""
    return sorted(rounds, key=lambda measured: measured["ratio"])[len(rounds) // 2]


def run_sync_bench(
    *,
    receipts: int = 100_000,
    stores: int = 50,
    latency_ms: float = 20,
    workers: int = 4,
    seed: int = 7,
    rounds: int = 3,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Run the sync benchmark once; return the result object ``bench sync --json`` prints.

    Args:
        receipts: till receipts to generate (spread over ``stores`` stores and 7 days, rounded up).
        stores: stores of the world.
        latency_ms: latency the sandbox adds to every response.
        workers: the engine's threads, and the baseline's.
        seed: the world's seed.
        rounds: rounds of a baseline and a pull (at least 1; the last one's pull is the whole sync's).
        profile: write a cProfile of the sync stage (pull, plan, push) to this file.
    """
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    options = _world(receipts, stores, seed)
    first, last = options.start, options.start + timedelta(days=options.days - 1)
    measured: list[dict[str, Any]] = []
    with SandboxProcess(options, latency_ms=latency_ms) as sandbox, tempfile.TemporaryDirectory() as tmp:
        config = bench_config(sandbox, Path(tmp))
        evotor_url = config.systems["evotor"].base_url

        def baseline() -> tuple[int, float]:
            return timed(lambda: download_pages(evotor_url, first, last, workers))

        for number in range(1, rounds):
            downloaded, baseline_s = baseline()
            pulled_s = _pull_round(config, Path(tmp) / f"round{number}.db", first, last, workers, downloaded)
            measured.append(_round(baseline_s, pulled_s, "pull"))
        baseline_docs, baseline_s = baseline()
        sandbox.reset()
        sync_store = open_store(config.state)
        try:
            scope = SyncScope(date_from=first, date_to=last)
            report, sync_s = timed(lambda: _profiled(
                lambda: run_sync(config, store=sync_store, workers=workers, scope=scope), profile))  # fmt: skip
        finally:
            sync_store.close()
        counts = sandbox.counts()
        measured.append(_round(baseline_s, report.stages["pull"], "sync"))
        pull_store = open_store(f"sqlite:///{Path(tmp) / 'pull.db'}")
        try:
            _, pull_map_s = timed(
                lambda: pull_window(config, pull_store, "evotor", first, last, workers=workers)
            )
        finally:
            pull_store.close()
    written = _written(report.counts)
    median = _median_round(measured)
    return {
        "receipts": sandbox.receipts,
        "stores": stores,
        "latency_ms": latency_ms,
        "workers": workers,
        "documents_downloaded": baseline_docs,
        "documents_pulled": report.totals.get("fetched", 0),
        "baseline_s": median["baseline_s"],
        "ours_s": median["ours_s"],
        "ratio": median["ratio"],
        "rounds": measured,
        "map_s": report.stages["map"],
        "write_s": report.stages["write"],
        "sync_s": sync_s,
        "pull_map_s": pull_map_s,
        "pull_map_ratio": round(pull_map_s / median["baseline_s"], 4),
        "written": written,
        "requests": counts,
        "requests_per_write": _requests_per_write(counts, written),
        "failed": report.failed_open,
        "peak_rss_mb": peak_rss_mb(),
        "load_average": load_average(),
        "targets": dict(SYNC_TARGETS),
    }


def sync_targets(result: dict[str, Any]) -> list[Target]:
    """The issue's targets for a result of :func:`run_sync_bench`."""
    targets = [Target("pull stage / baseline (ratio)", result["ratio"], SYNC_TARGETS["ratio"])]
    for target, value in result["requests_per_write"].items():
        measured = math.inf if value is None else value  # nothing written: the target cannot be met
        targets.append(Target(f"requests per write, {target} (× API minimum)", measured,
                              SYNC_TARGETS["requests_per_write"]))  # fmt: skip
    targets.append(Target("peak RSS, MB", result["peak_rss_mb"], SYNC_TARGETS["peak_rss_mb"]))
    return targets


def _round_line(number: int, measured: dict[str, Any], median: bool) -> str:
    pull = "the sync's pull stage" if measured["stage"] == "sync" else "the pull stage alone"
    return (
        f"  round {number}: baseline {measured['baseline_s']:.2f} s, {pull} {measured['ours_s']:.2f} s, "
        f"ratio {measured['ratio']:.2f}{'  (the median)' if median else ''}"
    )


def format_sync(result: dict[str, Any]) -> list[str]:
    """The human-readable report of a result of :func:`run_sync_bench`."""
    written = result["written"]
    median = _median_round(result["rounds"])
    lines = [
        f"bench sync: {result['receipts']} receipts, {result['stores']} stores, "
        f"{result['latency_ms']:g} ms latency, {result['workers']} workers "
        f"(load average {' '.join(map(str, result['load_average']))}; sandbox in a child process)",
        *(
            _round_line(number, measured, measured is median)
            for number, measured in enumerate(result["rounds"], 1)
        ),
        f"  baseline, the median round's                {result['baseline_s']:>9.2f} s  "
        f"({result['documents_downloaded']} documents)",
        f"  ours: the median round's pull (read, landed) {result['ours_s']:>8.2f} s  "
        f"({result['documents_pulled']} documents)",
        f"  ours: the sync's map (in the write stage)   {result['map_s']:>9.2f} s  (summed over the threads)",
        f"  ours: the sync's write stage                {result['write_s']:>9.2f} s",
        f"  ours: whole sync (run_sync)                 {result['sync_s']:>9.2f} s  "
        f"(written: crm {written['crm']}, onec {written['onec']}; failed {result['failed']})",
        f"  ours: pull + map (pull_window, no target)   {result['pull_map_s']:>9.2f} s  "
        f"(ratio {result['pull_map_ratio']:.2f})",
        f"  requests at the sandbox during the sync: {result['requests']}",
        *verdict_lines(sync_targets(result)),
    ]
    return lines
