"""The connector's compare stage on documents held in the state store — run in a child process for its memory.

What it runs is the reconciliation's own path for a ``{left, right}`` comparison with a state database, minus the
fresh pull (there is no source system behind the benchmark's journal):

1. **load** — :meth:`connector.store.journal.Journal.documents_in_window` for each side, each entry's canonical
   document (:attr:`~connector.store.journal.JournalEntry.document`) reduced to a
   :class:`~connector.reconcile.model.DocRecord` with the key the 1C adapter reads (``Комментарий``), as
   :class:`connector.reconcile.snapshot.SnapshotSource` does;
2. **compare** — :func:`connector.reconcile.compare.compare_snapshot` over the snapshot.

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
from connector.reconcile.model import DocRecord, Snapshot
from connector.reconcile.snapshot import SharedValues, document_record
from connector.store import Store, open_store
from connector.store.journal import Journal

__all__ = ["KEY_FIELD", "load_side", "main", "measure_in_child"]

KEY_FIELD = "Комментарий"
"""Where the 1C adapter reads the connector's key of a document (its default ``external_id_field``)."""


def load_side(store: Store, system: str, first: date, last: date) -> list[DocRecord]:
    """One system's receipts of the window from the journal, as records (the snapshot's journal path)."""
    records: list[DocRecord] = []
    shared = SharedValues()
    for entry in Journal(store.sessions).documents_in_window(system, None, first, last):
        document = entry.document
        if document is not None:
            raw = entry.raw if isinstance(entry.raw, dict) else {}
            key = raw.get(KEY_FIELD)
            records.append(document_record(document, str(key) if key else None, shared))
    records.sort(key=lambda record: (record.occurred_at, record.id))
    return records


def _run(url: str, first: date, last: date) -> dict[str, Any]:
    store = open_store(url)
    try:
        (left, right), load_s = timed(
            lambda: (load_side(store, "evotor", first, last), load_side(store, "onec", first, last))
        )
    finally:
        store.close()
    snapshot = Snapshot(first, last, sorted({record.store for record in left}))
    snapshot.documents = {"evotor": left, "onec": right}
    spec = ReconcileSpec(name="bench", left="evotor", right="onec", tolerance=Decimal("0.01"))
    found, compare_s = timed(lambda: compare_snapshot(
        snapshot, [spec], program=None, mirrors={}, today=datetime.now(UTC).date()))  # fmt: skip
    return {
        "left_rows": len(left),
        "right_rows": len(right),
        "load_s": load_s,
        "compare_s": compare_s,
        "found": dict(Counter(item.kind for item in found)),
        "peak_rss_mb": peak_rss_mb(),
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
