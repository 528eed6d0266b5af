"""Sandbox scale: generate a large world, serve it, and print each measure as a ratio to its target.

Targets (issue 3, item 8): 50 stores × 7 days × 300 receipts generated in under 30 s and served with peak
memory under 1 GB; a page of 1,000 Evotor documents served in under 100 ms; the default world (3 stores ×
7 days) ready to serve in under 3 s. A ratio below 1.00 meets the target.

Usage::

    .venv/bin/python benchmarks/sandbox_scale.py [--stores 50] [--days 7] [--receipts 300]

Times are wall-clock and CPU (process time): on a shared machine the CPU column is the stabler one. Exit code 1
when a measure misses its target.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import requests

from connector.sandbox.generator import SandboxOptions, generate_world
from connector.sandbox.server import CRM_API_KEY, EVOTOR_TOKEN, ONEC_PASSWORD, ONEC_USER, SandboxServer


def _timed(action: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _row(name: str, value: float, target: float, unit: str, cpu: float | None = None) -> bool:
    extra = f"  (cpu {cpu:.2f} {unit})" if cpu is not None else ""
    print(
        f"{name:<44} {value:>9.2f} {unit:<3} target {target:>7.0f} {unit:<3} ratio {value / target:.2f}{extra}"
    )
    return value <= target


def _evotor_page_ms(server: SandboxServer) -> float:
    store = server.world.stores[0].id
    url = f"{server.base_url}/evotor/stores/{store}/documents"
    with requests.Session() as session:
        session.headers["X-Authorization"] = EVOTOR_TOKEN
        session.get(url, timeout=60).raise_for_status()  # warm
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            response = session.get(url, timeout=60)
            samples.append((time.perf_counter() - start) * 1000)
            assert len(response.json()["items"]) == 1000, "a full page holds 1,000 documents"
    return statistics.median(samples)


def _touch_every_system(server: SandboxServer) -> None:
    """One request per system, so that lazily built views (the 1C infobases) count in the peak."""
    base = server.base_url
    for flavour in ("ut", "retail"):
        url = f"{base}/1c/{flavour}/odata/standard.odata/Document_ЧекККМ?$format=json&$top=1"
        requests.get(url, auth=(ONEC_USER, ONEC_PASSWORD), timeout=300).raise_for_status()
    feed = f"{base}/crm/api/v5/loyalty/bonus/operations?limit=250"
    requests.get(feed, headers={"X-API-KEY": CRM_API_KEY}, timeout=60).raise_for_status()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=50)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--receipts", type=int, default=300)
    args = parser.parse_args(argv)
    ok = True

    _, wall, cpu = _timed(lambda: SandboxServer(SandboxOptions()).start().stop())
    ok &= _row("default world (3×7×40) generated and serving", wall, 3, "s", cpu)

    options = SandboxOptions(stores=args.stores, days=args.days, receipts=args.receipts)
    world, wall, cpu = _timed(lambda: generate_world(options))
    label = f"{args.stores}×{args.days}×{args.receipts} generated ({len(world.receipts)} receipts)"
    ok &= _row(label, wall, 30, "s", cpu)

    server = SandboxServer(world, rate_per_second=0).start()
    try:
        _touch_every_system(server)
        ok &= _row("peak memory, generated and serving", _peak_mb(), 1024, "MB")
        ok &= _row("Evotor page of 1,000 documents (median)", _evotor_page_ms(server), 100, "ms")
    finally:
        server.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
