"""Sync benchmark (issue 5, item 8): the engine against a sandbox with latency, beside plain requests.

N receipts (default 100,000) over 50 stores and 7 days in a ``--clean`` sandbox world with 20 ms latency on every
response (the sandbox runs in a child process, which counts the requests it receives), synced tills → CRM and
tills → 1C by ``run_sync`` on a fresh state database. Printed beside the targets, PASS or MISS: the pull stage
against downloading the same Evotor pages with plain requests at the same concurrency (ratio ≤ 1.5; the median
of ``--rounds`` rounds of a baseline then a pull, the last round's pull the sync's own), requests per
document written to each target against the API minimum (≤ 1.05 ×), and this process's peak RSS (≤ 500 MB).

Usage::

    .venv/bin/python benchmarks/sync_bench.py [--receipts 100000] [--stores 50] [--latency-ms 20] [--workers 4]
                                              [--rounds 3] [--json] [--profile FILE]

The same as ``loyalty-connector bench sync``; the code is in :mod:`connector.bench.sync_bench`. Exit code 1 when
a target is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from connector.bench.sync_bench import format_sync, run_sync_bench, sync_targets
from connector.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=100_000)
    parser.add_argument("--stores", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of baseline then pull (median reported)"
    )
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the sync stage here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("ERROR")
    result = run_sync_bench(receipts=args.receipts, stores=args.stores, latency_ms=args.latency_ms,
                            workers=args.workers, rounds=args.rounds, profile=args.profile)  # fmt: skip
    print(json.dumps(result) if args.json else "\n".join(format_sync(result)))
    return 0 if all(target.ok for target in sync_targets(result)) else 1


if __name__ == "__main__":
    sys.exit(main())
