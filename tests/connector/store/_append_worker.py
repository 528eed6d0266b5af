"""The body of each OS process in the ledger concurrency tests: append the same postings in a shuffled order.

Run through :func:`run_workers`, which starts the processes from a ``forkserver`` that has imported the
connector once (``set_forkserver_preload``): every process is a fresh OS process with its own connections, but
does not pay the import again — that cost, eight times on a 2-core machine, would dwarf the race under test.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import time
from pathlib import Path
from typing import Any

from connector.errors import IdempotencyConflict
from connector.model import Posting
from connector.store import Store, open_store

__all__ = ["run_workers"]

_BATCH = 40


def _append(store: Store, batch: list[Posting]) -> None:
    if len(batch) == 1:
        store.ledger.append(batch[0])
    else:
        store.ledger.append_many(batch)


def _worker(url: str, source: str, seed: int, singles: int, start: Any, results: Any) -> None:
    """Append every posting: the first ``singles`` one by one, the rest in batches; report the counts."""
    postings = [Posting.model_validate(item) for item in json.loads(Path(source).read_text())]
    random.Random(seed).shuffle(postings)
    batches = [[item] for item in postings[:singles]]
    batches += [postings[index : index + _BATCH] for index in range(singles, len(postings), _BATCH)]
    appended, conflicts, errors = 0, 0, []
    with open_store(url) as store:
        start.wait()  # every process begins at the same moment
        began = time.monotonic()
        for batch in batches:
            try:
                _append(store, batch)
                appended += len(batch)
            except IdempotencyConflict:
                conflicts += 1
            except Exception as exc:  # reported to the test, which fails on any
                errors.append(f"{exc.__class__.__name__}: {exc}"[:300])
        seconds = time.monotonic() - began
    results.put({"appended": appended, "conflicts": conflicts, "errors": errors, "seconds": seconds})


def run_workers(
    url: str, postings: list[Posting], processes: int, singles: int, tmp: Path
) -> list[dict[str, Any]]:
    """Start ``processes`` OS processes appending the same ``postings`` concurrently; return their reports."""
    source = tmp / "postings.json"
    source.write_text(json.dumps([item.model_dump(mode="json") for item in postings]))
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    start, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_worker, args=(url, str(source), seed, singles, start, results))
        for seed in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        reports = [results.get(timeout=120) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
                worker.join()
    assert [worker.exitcode for worker in workers] == [0] * processes
    return reports
