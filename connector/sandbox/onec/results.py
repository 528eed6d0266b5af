"""Executing a parsed query over rows: filter, order, page — with a small cache for paging through big sets."""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from connector.sandbox.onec.odata_query import Query

__all__ = ["ResultCache", "run_query"]


class ResultCache:
    """Filtered and ordered row lists of recent queries, keyed by the infobase version they were computed at.

    Paging through a large set with ``$top``/``$skip`` repeats the same filter and order on every page; keeping
    the last few results makes each further page a slice instead of a scan and a sort.
    """

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._items: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], compute: Callable[[], list[Any]]) -> list[Any]:
        """The cached list for ``key``, computing and remembering it on a miss."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        rows = compute()
        with self._lock:
            self._items[key] = rows
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return rows


def _filtered_sorted(query: Query, rows: list[Any]) -> list[Any]:
    predicate = query.predicate
    result = [row for row in rows if predicate(row)] if predicate is not None else list(rows)
    # stable sorts applied from the last key to the first give the multi-key order, each in its own direction
    for key, descending in reversed(query.order):
        result.sort(key=operator.itemgetter(key), reverse=descending)
    return result


def run_query(
    query: Query, name: str, version: int, rows: list[Any], cache: ResultCache | None = None
) -> tuple[list[Any], int]:
    """Apply filter, order and paging; returns the page and the count before paging (for ``$inlinecount``)."""
    if query.predicate is None and not query.order:
        matched = rows
    elif cache is None:
        matched = _filtered_sorted(query, rows)
    else:
        key = (name, version, query.filter_text, query.order)
        matched = cache.get(key, lambda: _filtered_sorted(query, rows))
    end = None if query.top is None else query.skip + query.top
    return matched[query.skip : end], len(matched)
