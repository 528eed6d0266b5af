"""The connector's compare stage on documents held in the state store — run in a child process for its memory.

What it runs is the reconciliation's own path for a ``{left, right}`` comparison with a state database
(:func:`connector.reconcile.snapshot.load_snapshot` with ``store``), minus the fresh pull (there is no source
system behind the benchmark's journal):

1. **read** — :func:`connector.reconcile.reader.window_pairs`: both systems' journaled receipts of the window,
   with the key the 1C adapter reads (``Комментарий``), streamed one store-day at a time as records;
2. **compare** — :func:`connector.reconcile.compare.compare_snapshot` over a snapshot holding that stream: each
   store-day is matched and compared as it arrives and then dropped, the unpaired carried to a final pass.

The two interleave; ``load_s`` is the time spent reading and building records (from 100,000 documents the
store-days are shared by store with a second process, :meth:`~connector.reconcile.reader.JournalPairs.passes`:
then the longer of the two), ``compare_s`` the rest of the wall time. ``peak_rss_mb`` is this process's own
``VmHWM`` plus its worker's; ``workers`` how many processes shared the store-days.
``python -m connector.bench.reconcile_ours URL FIRST LAST`` prints one JSON object: the seconds of each step, the
peak RSS of the process and the discrepancies found per kind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from connector.bench.common import peak_rss_mb, timed
from connector.config import ReconcileSpec
from connector.reconcile.compare import compare_snapshot
from connector.reconcile.model import Snapshot
from connector.reconcile.reader import window_pairs
from connector.store import open_store

__all__ = ["KEY_FIELD", "main", "measure_in_child"]

KEY_FIELD = "Комментарий"
"""Where the 1C adapter reads the connector's key of a document (its default ``external_id_field``)."""
_LOOKBACK_DAYS = 14
"""The reconciliation's lookback before the window for the tills' receipts without a program (returns)."""


def _run(url: str, first: date, last: date) -> dict[str, Any]:
    spec = ReconcileSpec(name="bench", left="evotor", right="onec", tolerance=Decimal("0.01"))
    systems = (spec.left or "", spec.right or "")
    store = open_store(url)
    try:
        pairs = window_pairs(store, systems, (first, last), margins=(1 + _LOOKBACK_DAYS, 1),
                             key_fields={"onec": KEY_FIELD})  # fmt: skip
        snapshot = Snapshot(first, last, [])
        snapshot.pairs[systems] = pairs
        found, total_s = timed(lambda: compare_snapshot(
            snapshot, [spec], program=None, mirrors={}, today=datetime.now(UTC).date()))  # fmt: skip
    finally:
        store.close()
    load_s = round(pairs.read_s, 3)
    return {
        "left_rows": pairs.counts["evotor"],
        "right_rows": pairs.counts["onec"],
        "load_s": load_s,
        "compare_s": round(total_s - load_s, 3),
        "found": dict(Counter(item.kind for item in found)),
        "peak_rss_mb": round(peak_rss_mb() + sum(pairs.worker_peak_rss_mb), 1),
        "workers": 1 + len(pairs.worker_peak_rss_mb),
    }


def measure_in_child(url: str, first: date, last: date) -> dict[str, Any]:
    """Run the compare stage in a fresh interpreter; its result (baselines' memory not counted)."""
    command = [
        sys.executable,
        "-m",
        "connector.bench.reconcile_ours",
        url,
        first.isoformat(),
        last.isoformat(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"the compare stage failed in its child process: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    """The child: ``URL FIRST LAST`` → one JSON line on stdout."""
    url, first, last = argv if argv is not None else sys.argv[1:]
    print(json.dumps(_run(url, date.fromisoformat(first), date.fromisoformat(last))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
