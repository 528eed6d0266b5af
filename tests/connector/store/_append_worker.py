"""One OS process of the ledger concurrency test: append the given postings in a shuffled order.

Usage: ``python _append_worker.py STATE_URL POSTINGS.json SEED SINGLES``. Prints ``ready`` once the store is
open, waits for a line on stdin (so that every process starts appending at the same moment), appends the first
SINGLES postings one by one with ``append`` and the rest with ``append_many`` in batches of 40 (both paths race
against the other processes), then prints one JSON object:
``{"appended": n, "conflicts": n, "errors": [...], "seconds": s}``.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from connector.errors import IdempotencyConflict
from connector.model import Posting
from connector.store import Store, open_store

__all__: list[str] = []

_BATCH = 40


def _append(store: Store, batch: list[Posting]) -> None:
    if len(batch) == 1:
        store.ledger.append(batch[0])
    else:
        store.ledger.append_many(batch)


def _main(url: str, postings_file: str, seed: str, singles: str) -> None:
    postings = [Posting.model_validate(item) for item in json.loads(Path(postings_file).read_text())]
    random.Random(int(seed)).shuffle(postings)
    split = int(singles)
    batches = [[item] for item in postings[:split]]
    batches += [postings[start : start + _BATCH] for start in range(split, len(postings), _BATCH)]
    appended, conflicts, errors = 0, 0, []
    with open_store(url) as store:
        print("ready", flush=True)
        sys.stdin.readline()
        started = time.monotonic()
        for batch in batches:
            try:
                _append(store, batch)
                appended += len(batch)
            except IdempotencyConflict:
                conflicts += 1
            except Exception as exc:  # reported to the test, which fails on any
                errors.append(f"{exc.__class__.__name__}: {exc}"[:300])
        seconds = time.monotonic() - started
    print(json.dumps({"appended": appended, "conflicts": conflicts, "errors": errors, "seconds": seconds}))


if __name__ == "__main__":
    _main(*sys.argv[1:5])
