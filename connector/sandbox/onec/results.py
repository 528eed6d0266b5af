"""Executing a parsed query over rows: filter, order, page — with a small cache for paging through big sets.

When the query's filter has a :class:`~connector.sandbox.onec.odata_query.Narrowing` and the rows' owner can
look strings up (:data:`Lookup`), only the rows it names are tested: the connector's key lookups
(``substringof`` of 40 keys on ``Комментарий``) would otherwise test every document of the base 40 times, each
lookup, and a 100,000-receipt sync makes thousands of them.
"""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from connector.sandbox.onec.odata_query import AnyOf, Contains, Narrowing, Query

__all__ = ["Lookup", "ResultCache", "run_query"]

Lookup = Callable[[Any, str], set[str] | None]
"""``(row position, needle)`` → the keys (``Ref_Key``, a row's first value) of at least every row whose string
at that position contains the needle, or None when it cannot tell without a scan."""


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


def _candidates(narrowing: Narrowing, lookup: Lookup) -> set[str] | None:
    """The row keys ``narrowing`` leaves (a superset of the matches), or None for every row."""
    if isinstance(narrowing, Contains):
        return lookup(narrowing.key, narrowing.needle)
    found = [_candidates(part, lookup) for part in narrowing.parts]
    if isinstance(narrowing, AnyOf):
        union: set[str] = set()
        for part in found:
            if part is None:
                return None
            union |= part
        return union
    known = [part for part in found if part is not None]
    return set.intersection(*known) if known else None


def run_query(
    query: Query,
    name: str,
    version: int,
    rows: list[Any],
    cache: ResultCache | None = None,
    lookup: Lookup | None = None,
) -> tuple[list[Any], int]:
    """Apply filter, order and paging; returns the page and the count before paging (for ``$inlinecount``).

    Args:
        lookup: finds rows by a string they contain (see :data:`Lookup`); the result is the same without it.
    """
    if query.narrowing is not None and lookup is not None:
        keys = _candidates(query.narrowing, lookup)
        if keys is not None:
            rows = [row for row in rows if row[0] in keys]  # in storage order, as a scan would see them
    if query.predicate is None and not query.order:
        matched = rows
    elif cache is None:
        matched = _filtered_sorted(query, rows)
    else:
        key = (name, version, query.filter_text, query.order)
        matched = cache.get(key, lambda: _filtered_sorted(query, rows))
    end = None if query.top is None else query.skip + query.top
    return matched[query.skip : end], len(matched)
