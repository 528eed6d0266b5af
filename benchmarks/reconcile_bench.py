"""Reconciliation benchmark (issue 6, item 7): the compare stage from the state store, against DuckDB and datacompy.

N receipts per side (default 1,000,000) of ``evotor`` and ``onec`` in a SQLite state database with 1 % injected
differences; the reconciliation's own path (journal → records → ``compare_snapshot``) runs in a child process so
its peak RSS is its own; DuckDB (full outer join) and datacompy (``PandasCompare``) compare the same columns read
from the same database. Targets: at least half DuckDB's speed, faster than datacompy, peak RSS ≤ 500 MB.
``--end-to-end`` runs the nightly reconciliation against a sandbox of N receipts (default 200,000) instead, against
downloading the same pages with plain requests.

Usage::

    .venv/bin/python benchmarks/reconcile_bench.py [--rows 1000000] [--json]
    .venv/bin/python benchmarks/reconcile_bench.py --end-to-end [--receipts 200000] [--stores 50] [--workers 4]

The same as ``loyalty-connector bench reconcile``; the code is in :mod:`connector.bench`. Needs the ``bench``
extra (``pip install -e '.[bench]'``). Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import sys

from connector.bench.reconcile_bench import format_reconcile, reconcile_targets, run_reconcile_bench
from connector.bench.reconcile_e2e import E2E_RATIO_TARGET, format_end_to_end, run_end_to_end_bench
from connector.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--end-to-end", action="store_true")
    parser.add_argument("--receipts", type=int, default=200_000)
    parser.add_argument("--stores", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("ERROR")
    if args.end_to_end:
        result = run_end_to_end_bench(receipts=args.receipts, stores=args.stores, workers=args.workers,
                                      latency_ms=args.latency_ms)  # fmt: skip
        print(json.dumps(result) if args.json else "\n".join(format_end_to_end(result)))
        return 0 if result["ratio"] <= E2E_RATIO_TARGET else 1
    result = run_reconcile_bench(rows=args.rows)
    print(json.dumps(result) if args.json else "\n".join(format_reconcile(result)))
    return 0 if all(target.ok for target in reconcile_targets(result)) else 1


if __name__ == "__main__":
    sys.exit(main())
