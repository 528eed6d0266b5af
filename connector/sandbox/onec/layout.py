"""Packed rows: how the infobase keeps a hundred thousand documents in little memory and serves them fast.

A stored row is a plain tuple — the scalar properties in schema order, then one tuple of line tuples per
tabular section — a quarter of the memory of a dict with the same fields. A :class:`Layout` knows the positions:
it packs a dict into a tuple, unpacks a tuple into a fresh dict (so callers may mutate what they get), hands
``operator.itemgetter`` positions to the ``$filter`` compiler and writes 1C JSON straight from the tuple with one
%-template per row type.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from connector.sandbox.onec.wire import default_value, json_template

__all__ = ["Layout", "Packed"]

Packed = tuple[Any, ...]


class Layout:
    """Positions of one row type's properties (and tabular sections) inside its packed tuple.

    Args:
        types: scalar property name → EDM type, in the order 1C writes them.
        sections: tabular section name → the row types of its lines.
    """

    def __init__(
        self, types: Mapping[str, str], sections: Mapping[str, Mapping[str, str]] | None = None
    ) -> None:
        self.types = dict(types)
        self.names = tuple(self.types)
        self.index = {name: position for position, name in enumerate(self.names)}
        self.sections = {name: Layout(line_types) for name, line_types in (sections or {}).items()}
        self.section_index = {name: len(self.names) + offset for offset, name in enumerate(self.sections)}
        self.defaults = {name: default_value(edm_type) for name, edm_type in self.types.items()}
        self._scalars = operator.itemgetter(*self.names) if len(self.names) > 1 else _single(self.names[0])
        self._template = json_template(self.types, tuple(self.sections))

    def pack(self, row: Mapping[str, Any]) -> Packed:
        """The tuple form of a complete row (every property present)."""
        scalars: Packed = self._scalars(row)
        if not self.sections:
            return scalars
        lines = tuple(
            tuple([layout.pack(line) for line in row[section]]) for section, layout in self.sections.items()
        )
        return scalars + lines

    def unpack(self, packed: Packed) -> dict[str, Any]:
        """A fresh dict of a packed row, tabular sections as lists of dicts."""
        row = dict(zip(self.names, packed, strict=False))
        for section, layout in self.sections.items():
            row[section] = [layout.unpack(line) for line in packed[self.section_index[section]]]
        return row

    def getter(self, name: str) -> Callable[[Packed], Any]:
        """Read one scalar property (or a section's tuple of lines) from packed rows."""
        position = self.index.get(name, self.section_index.get(name))
        if position is None:
            raise KeyError(name)
        return operator.itemgetter(position)

    def to_json(self, packed: Packed) -> str:
        """The row as 1C JSON text."""
        arrays = tuple(
            ",".join([layout.to_json(line) for line in packed[self.section_index[section]]])
            for section, layout in self.sections.items()
        )
        return self._template(packed[: len(self.names)], arrays)


def _single(name: str) -> Callable[[Mapping[str, Any]], Packed]:
    return lambda row: (row[name],)
