"""The garbage collector during a run: what was alive when the run started is left out of its full passes.

A run allocates millions of short-lived objects (pages, records, rows), and every so often CPython's collector
walks *every* tracked object of the process — the modules, SQLAlchemy's metadata, the loaded mappings, and in a
benchmark or a long ``schedule run`` whatever else the process holds. :func:`frozen_heap` moves the objects
alive at the start of a run into the permanent generation (:func:`gc.freeze`) and back when the run ends
(:func:`gc.unfreeze`), so a full pass walks only what the run made. Nothing is leaked: after the run the frozen
objects are collected as usual again. Runs may nest and overlap (the scheduler's threads): the heap is given
back when the last one ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["frozen_heap"]

_lock = threading.Lock()
_depth = 0


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Freeze the heap for the duration of a run (see the module's docstring).

    Example:
        >>> with frozen_heap():
        ...     gc.get_freeze_count() > 0
        True
    """
    global _depth
    with _lock:
        if _depth == 0:
            gc.freeze()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.unfreeze()
