"""The garbage collector during a run: the heap alive at its start is left out, and young objects are collected
less often.

A run allocates millions of short-lived objects (pages, records, rows), and CPython's cycle collector walks them
far more often than it finds anything. Two things are changed while a run is going, and given back when the
last run ends (runs may nest and overlap: the scheduler's threads):

* the objects alive at the start of a run move into the permanent generation (:func:`gc.freeze`, undone by
  :func:`gc.unfreeze`), so a full pass walks only what the run made — not the modules, SQLAlchemy's metadata,
  the loaded mappings, and in a benchmark or a long ``schedule run`` whatever else the process holds;
* the youngest generation is collected after :data:`RUN_GEN0_THRESHOLD` allocations instead of CPython's 700.
  A pull keeps a few pages per stream alive at any moment (a hundred thousand objects); at 700, every one of
  them was walked again and again on its way to the oldest generation. Almost everything a run allocates is
  freed by reference counting anyway; what waits for the collector (a cycle in a response, a traceback) waits
  a few thousand allocations longer.

Nothing is leaked: after the run the frozen objects are collected as usual again, at the thresholds the process
had.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["RUN_GEN0_THRESHOLD", "frozen_heap"]

RUN_GEN0_THRESHOLD = 10_000
"""Net allocations of container objects between two collections of the youngest generation during a run."""

_lock = threading.Lock()
_depth = 0
_thresholds: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Freeze the heap and collect young objects less often for the duration of a run (see the module).

    Example:
        >>> with frozen_heap():
        ...     gc.get_freeze_count() > 0, gc.get_threshold()[0]
        (True, 10000)
    """
    global _depth, _thresholds
    with _lock:
        if _depth == 0:
            gc.freeze()
            _thresholds = gc.get_threshold()
            gc.set_threshold(max(_thresholds[0], RUN_GEN0_THRESHOLD), *_thresholds[1:])
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_thresholds)
                gc.unfreeze()
