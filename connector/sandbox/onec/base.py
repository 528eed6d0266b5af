"""The in-memory infobase behind the emulated 1C: objects, tabular sections, DataVersion, posting, the register.

It behaves like the standard OData interface of a real base where that matters to a client (reference/onec.md
§1.6): a created document is **not posted**; every write (create, change, post, unpost, mark) gives the object a
new ``DataVersion``; unknown fields are dropped silently; a tabular section given in a change replaces the whole
section; ``Posted`` cannot be written directly; posting replaces the document's register movements and unposting
removes them. Posting logic is in :mod:`connector.sandbox.onec.posting`.

Rows are stored packed (:mod:`connector.sandbox.onec.layout`); every read hands out fresh dicts. A string
property searched with ``substringof`` gets a word index on first use (:meth:`OneCInfobase.containing`), kept up
to date by every write, so that looking keys up does not read every document.

Example:
    >>> base = OneCInfobase("ut")
    >>> ref = base.create("Catalog_Партнеры", {"Description": "Иванов"})
    >>> base.rows("Catalog_Партнеры")[0]["Description"]
    'Иванов'
"""

from __future__ import annotations

import base64
import operator
import re
import struct
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any

from connector.sandbox.onec import posting
from connector.sandbox.onec.layout import Layout, Packed
from connector.sandbox.onec.schema import (
    REGISTER,
    REGISTER_RECORDS,
    EntitySchema,
    Flavour,
    infobase_schema,
    register_dimensions,
    register_props,
)
from connector.sandbox.onec.wire import (
    EMPTY_GUID,
    Int64,
    OneCServiceError,
    canonical_decimal,
    canonical_guid,
    coerce,
    coercers,
)

__all__ = ["OneCInfobase", "Source"]

_NUMBER_PREFIX = "00ЦБ-"
_UNWRITABLE = frozenset({"Ref_Key", "DataVersion", "Posted"})
_JSON_CACHE_SIZE = 20_000
_WORD = re.compile(r"\w+")
_SEPARATOR = re.compile(r"\W+")


@dataclass(frozen=True)
class Source:
    """What a query reads: packed rows (never mutate them), their layout, and a JSON writer per row."""

    name: str
    rows: list[Packed]
    layout: Layout
    to_json: Callable[[Packed], bytes]
    version: int
    lookup: Callable[[Any, str], set[str] | None] | None = None
    """Finds objects by a string they contain (:meth:`OneCInfobase.containing`); None for other row sets."""


class OneCInfobase:
    """One emulated 1C infobase of a flavour (``ut`` or ``retail``), safe to share between request threads.

    Args:
        flavour: ``ut`` (УТ 11.5 object model) or ``retail`` (Розница 2).
    """

    def __init__(self, flavour: Flavour = "ut") -> None:
        self.flavour: Flavour = flavour
        self.schema: dict[str, EntitySchema] = infobase_schema(flavour)
        self.layouts = {
            name: Layout(entity.types, {s: entity.section_types(s) for s in entity.sections})
            for name, entity in self.schema.items()
        }
        self.register_layout = Layout(dict(register_props(flavour)))
        self._record_set_layout = Layout(
            {"Recorder": "String", "Recorder_Type": "String"}, {"RecordSet": self.register_layout.types}
        )
        self._objects: dict[str, dict[str, Packed]] = {name: {} for name in self.schema}
        self._coercers = {
            name: coercers({k: t for k, t in entity.types.items() if k not in _UNWRITABLE})
            for name, entity in self.schema.items()
        }
        self._json: OrderedDict[str, bytes] = OrderedDict()
        self._movements: dict[str, list[Packed]] = {}
        self._counters: dict[str, int] = {}
        self._version = 0
        self._words: dict[tuple[str, int], dict[str, set[str]]] = {}  # (set, position) → word → Ref_Keys
        self._lock = threading.RLock()

    # ---- reading ---------------------------------------------------------------------------------------------

    def entity_schema(self, entity_set: str) -> EntitySchema:
        """The schema of an object set, or 1C's answer to an unpublished one (code 6, HTTP 400)."""
        found = self.schema.get(entity_set)
        if found is None:
            raise OneCServiceError(f"Сегмент пути '{entity_set}' не найден", code="6", status=400)
        return found

    def get(self, entity_set: str, ref_key: str) -> dict[str, Any]:
        """One object as a fresh dict; code 9 / HTTP 404 when there is none."""
        found = self.lookup(entity_set, ref_key)
        if found is None:
            raise OneCServiceError("Экземпляр сущности не найден", code="9", status=404, document=ref_key)
        return found

    def lookup(self, entity_set: str, ref_key: str) -> dict[str, Any] | None:
        """One object as a fresh dict, or None."""
        packed = self._objects[self.entity_schema(entity_set).name].get(_norm_guid(ref_key))
        return None if packed is None else self.layouts[entity_set].unpack(packed)

    def rows(self, entity_set: str) -> list[dict[str, Any]]:
        """Every row of a set (objects, ``…_RecordType`` movements or ``…_<section>`` rows) as typed dicts."""
        source = self.source(entity_set)
        return [source.layout.unpack(row) for row in source.rows]

    def row_json(self, entity_set: str, ref_key: str) -> bytes:
        """The full 1C JSON of one object, UTF-8 encoded."""
        self.get(entity_set, ref_key)
        return self._object_json(entity_set, self._objects[entity_set][_norm_guid(ref_key)])

    def find(self, entity_set: str, **equals: Any) -> list[dict[str, Any]]:
        """Objects whose scalar fields equal the given typed values (a linear scan over packed rows)."""
        layout = self.layouts[self.entity_schema(entity_set).name]
        tests = [(layout.getter(name), value) for name, value in equals.items()]
        with self._lock:
            rows = list(self._objects[entity_set].values())
        return [layout.unpack(row) for row in rows if all(get(row) == value for get, value in tests)]

    def source(self, entity_set: str) -> Source:
        """The rows and layout a query over ``entity_set`` reads."""
        with self._lock:
            if entity_set in self.schema:
                rows = list(self._objects[entity_set].values())
                writer = partial(self._object_json, entity_set)
                lookup = partial(self.containing, entity_set)
                return Source(entity_set, rows, self.layouts[entity_set], writer, self._version, lookup)
            if entity_set == REGISTER_RECORDS:
                layout = self.register_layout
                return Source(entity_set, self._records(), layout, _utf8(layout), self._version)
            if entity_set == REGISTER:
                sets = [
                    (records[0][0], records[0][1], tuple(records)) for records in self._movements.values()
                ]
                layout = self._record_set_layout
                return Source(entity_set, sets, layout, _utf8(layout), self._version)
            return self._section_source(entity_set)

    def containing(self, entity_set: str, position: int, needle: str) -> set[str] | None:
        """``Ref_Key`` of at least every object whose string at ``position`` contains ``needle``; None when the
        needle has no whole word to look up (the caller then reads every object).

        A word of the needle with a separator on both sides (``evotor`` in ``onec:evotor:…:sale``) is a whole
        word of every string that contains the needle, so the objects holding the needle's rarest such word are
        a superset of the answer. The word index of ``(entity_set, position)`` is built on first use.
        """
        words = [word for word in _SEPARATOR.split(needle)[1:-1] if word]
        if not words:
            return None
        with self._lock:
            index = self._words.get((entity_set, position))
            if index is None:
                index = self._words[(entity_set, position)] = {}
                for ref, packed in self._objects[entity_set].items():
                    for word in set(_WORD.findall(str(packed[position]))):
                        index.setdefault(word, set()).add(ref)
            rarest = min(words, key=lambda word: len(index.get(word, ())))
            return set(index.get(rarest, ()))

    def movements(self) -> list[dict[str, Any]]:
        """Every register record as a dict, recorder by recorder in the order they were first posted."""
        return [self.register_layout.unpack(record) for record in self._records()]

    def balance(
        self,
        period: datetime | None = None,
        condition: Callable[[Packed], Any] | None = None,
        dimensions: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The ``Balance`` virtual table: ``НачисленоBalance``/``КСписаниюBalance`` per dimension combination.

        Like 1C's ``Остатки(&Дата)``, a moment excludes movements dated exactly at it; without a period every
        movement counts. Groups whose balances are both zero are left out, as the platform does. ``condition``
        tests packed records (see :attr:`register_layout`).
        """
        dims = tuple(dimensions) if dimensions else register_dimensions(self.flavour)
        get = {name: self.register_layout.getter(name) for name in ("Active", "Period", "RecordType")}
        key_of = operator.itemgetter(*(self.register_layout.index[dim] for dim in dims))
        accrued, to_write_off = (
            self.register_layout.getter("Начислено"),
            self.register_layout.getter("КСписанию"),
        )
        totals: dict[Any, list[Decimal]] = {}
        for record in self._records():
            if not get["Active"](record) or (period is not None and get["Period"](record) >= period):
                continue
            if condition is not None and not condition(record):
                continue
            sign = 1 if get["RecordType"](record) == "Receipt" else -1
            sums = totals.setdefault(key_of(record), [Decimal(0), Decimal(0)])
            sums[0] += sign * accrued(record)
            sums[1] += sign * to_write_off(record)
        return [
            {**_dims(dims, key), "НачисленоBalance": sums[0], "КСписаниюBalance": sums[1]}
            for key, sums in totals.items()
            if sums[0] or sums[1]
        ]

    # ---- writing ---------------------------------------------------------------------------------------------

    def seed(self, entity_set: str, fields: dict[str, Any], *, posted: bool = False) -> str:
        """Add an object from values already typed as stored: the renderer's fast path for large worlds.

        Only GUIDs and doubles are normalised (both cached); dates must be naive datetimes without
        microseconds, integers ints, tabular rows dicts (numbered here). Anything from outside the sandbox goes
        through :meth:`create`, which converts and validates.
        """
        entity = self.entity_schema(entity_set)
        layout = self.layouts[entity_set]
        with self._lock:
            row = _typed(layout, fields)
            if row["Ref_Key"] == EMPTY_GUID or row["Ref_Key"] in self._objects[entity_set]:
                raise OneCServiceError(
                    f"Объект с ключом {row['Ref_Key']} уже существует", document=row["Ref_Key"]
                )
            for section, line_layout in layout.sections.items():
                lines = [_typed(line_layout, line) for line in fields.get(section, ())]
                for number, line in enumerate(lines, start=1):
                    line["Ref_Key"], line["LineNumber"] = row["Ref_Key"], Int64(number)
                row[section] = lines
            self._number(entity, row)
            row["Posted"] = posted and entity.kind == "document"
            self._store(entity_set, row)
            return str(row["Ref_Key"])

    def create(
        self, entity_set: str, fields: dict[str, Any], *, strict_lines: bool = False, posted: bool = False
    ) -> str:
        """Create an object from wire-form or typed values; documents are created unposted.

        Args:
            entity_set: e.g. ``Document_ЧекККМ``.
            fields: attribute values; a ``Ref_Key`` is honoured (1C accepts a client-chosen key), unknown
                names are dropped, ``Posted`` and ``DataVersion`` are ignored.
            strict_lines: demand ``LineNumber`` 1..n in every tabular row, as the OData interface does; the
                Python seeding path numbers rows itself when they have none.
            posted: seed a document as already posted *without* register movements (a base whose movements
                live elsewhere); OData creates are always unposted — use :meth:`post` to post with movements.

        Returns:
            The new ``Ref_Key``.
        """
        entity = self.entity_schema(entity_set)
        layout = self.layouts[entity_set]
        with self._lock:
            ref = str(coerce("Ref_Key", "Guid", fields.get("Ref_Key") or str(uuid.uuid4())))
            if ref == EMPTY_GUID or ref in self._objects[entity_set]:
                raise OneCServiceError(
                    f"Объект с ключом {ref} уже существует", code="-1", status=500, document=ref
                )
            row = dict(layout.defaults)
            row.update({section: [] for section in entity.sections})
            row["Ref_Key"] = ref
            self._apply(entity, row, fields, strict_lines)
            self._number(entity, row)
            row["Posted"] = posted and entity.kind == "document"
            self._store(entity_set, row)
            return ref

    def update(
        self,
        entity_set: str,
        ref_key: str,
        fields: dict[str, Any],
        *,
        replace: bool = False,
        strict_lines: bool = False,
    ) -> dict[str, Any]:
        """Change an object (PATCH/MERGE; ``replace=True`` for PUT, which resets what is not given)."""
        entity = self.entity_schema(entity_set)
        with self._lock:
            row = self.get(entity_set, ref_key)
            if replace:
                defaults = self.layouts[entity_set].defaults
                row.update({name: value for name, value in defaults.items() if name not in _UNWRITABLE})
                row.update({section: [] for section in entity.sections})
            self._apply(entity, row, fields, strict_lines)
            self._store(entity_set, row)
            return row

    def delete(self, entity_set: str, ref_key: str) -> None:
        """Delete an object physically, with its movements (``DELETE``; 1C users prefer ``DeletionMark``)."""
        with self._lock:
            ref = self.get(entity_set, ref_key)["Ref_Key"]
            self._index_words(entity_set, ref, self._objects[entity_set][ref], None)
            del self._objects[entity_set][ref]
            self._version += 1
            self._json.pop(ref, None)
            self._movements.pop(ref, None)

    def post(self, entity_set: str, ref_key: str) -> None:
        """Post a document: ``Posted`` becomes true and its register movements are (re)written."""
        self._document(entity_set, "Post")
        with self._lock:
            row = self.get(entity_set, ref_key)
            if row["DeletionMark"]:
                raise OneCServiceError(
                    "Помеченный на удаление документ не может быть проведен",
                    code="-1",
                    status=500,
                    document=ref_key,
                )
            records = [
                self.register_layout.pack(record) for record in posting.movements(self, entity_set, row)
            ]
            row["Posted"] = True
            self._store(entity_set, row)
            self._movements.pop(row["Ref_Key"], None)
            if records:
                self._movements[row["Ref_Key"]] = records

    def unpost(self, entity_set: str, ref_key: str) -> None:
        """Unpost a document: ``Posted`` false and its movements removed; the document stays."""
        self._document(entity_set, "Unpost")
        with self._lock:
            row = self.get(entity_set, ref_key)
            row["Posted"] = False
            self._store(entity_set, row)
            self._movements.pop(row["Ref_Key"], None)

    # ---- helpers ---------------------------------------------------------------------------------------------

    def _document(self, entity_set: str, action: str) -> None:
        if self.entity_schema(entity_set).kind != "document":
            raise OneCServiceError(f"Метод не найден: {action}", code="6", status=400)

    def _apply(self, entity: EntitySchema, row: dict[str, Any], fields: dict[str, Any], strict: bool) -> None:
        layout = self.layouts[entity.name]
        convert, defaults = self._coercers[entity.name], layout.defaults
        for name, value in fields.items():
            converter = convert.get(name)
            if converter is not None:
                row[name] = defaults[name] if value is None else converter(name, value)
            elif name in entity.sections:
                row[name] = _Lines(layout.sections[name], strict).build(name, value, row["Ref_Key"])

    def _number(self, entity: EntitySchema, row: dict[str, Any]) -> None:
        field = "Number" if entity.kind == "document" else "Code"
        if row[field]:
            return
        count = self._counters.get(entity.name, 0) + 1
        self._counters[entity.name] = count
        row[field] = f"{_NUMBER_PREFIX}{count:06d}" if entity.kind == "document" else f"{count:09d}"

    def _store(self, entity_set: str, row: dict[str, Any]) -> None:
        self._version += 1
        row["DataVersion"] = base64.b64encode(struct.pack(">II", self._version, 0)).decode("ascii")
        ref, packed = row["Ref_Key"], self.layouts[entity_set].pack(row)
        self._index_words(entity_set, ref, self._objects[entity_set].get(ref), packed)
        self._objects[entity_set][ref] = packed
        self._json.pop(ref, None)

    def _index_words(self, entity_set: str, ref: str, old: Packed | None, new: Packed | None) -> None:
        """Keep the word indexes of ``entity_set`` in step with an object written (``new``) or deleted."""
        for (name, position), index in self._words.items():
            if name != entity_set:
                continue
            before = set(_WORD.findall(str(old[position]))) if old is not None else set()
            after = set(_WORD.findall(str(new[position]))) if new is not None else set()
            for word in before - after:
                index[word].discard(ref)
            for word in after - before:
                index.setdefault(word, set()).add(ref)

    def _object_json(self, entity_set: str, packed: Packed) -> bytes:
        # bounded: a full scan of a large base must not keep every document's text in memory; kept as UTF-8 so
        # a page is a join of bytes, not an encode of megabytes of Cyrillic
        ref = packed[0]
        text = self._json.get(ref)
        if text is None:
            text = self._json[ref] = self.layouts[entity_set].to_json(packed).encode("utf-8")
            if len(self._json) > _JSON_CACHE_SIZE:
                self._json.popitem(last=False)
        return text

    def _records(self) -> list[Packed]:
        with self._lock:
            return [record for records in self._movements.values() for record in records]

    def _section_source(self, entity_set: str) -> Source:
        for name, entity in self.schema.items():
            for section in entity.sections:
                if entity_set == f"{name}_{section}":
                    layout = self.layouts[name]
                    position = layout.section_index[section]
                    rows = [line for row in self._objects[name].values() for line in row[position]]
                    line_layout = layout.sections[section]
                    return Source(entity_set, rows, line_layout, _utf8(line_layout), self._version)
        raise OneCServiceError(f"Сегмент пути '{entity_set}' не найден", code="6", status=400)


class _Lines:
    """How the rows of one tabular section are read from a body."""

    def __init__(self, layout: Layout, strict: bool) -> None:
        self.defaults = layout.defaults
        self.convert = _line_coercers(layout)
        self.strict = strict

    def build(self, section: str, value: Any, owner: str) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise OneCServiceError(
                f"Ошибка разбора значения свойства '{section}': ожидается массив строк", code="1", status=400
            )
        return [self._line(section, index, item, owner) for index, item in enumerate(value, start=1)]

    def _line(self, section: str, index: int, item: dict[str, Any], owner: str) -> dict[str, Any]:
        if self.strict and "LineNumber" not in item:
            raise OneCServiceError("Внутренняя ошибка OData сервиса", code="-1", status=500, field=section)
        number = item.get("LineNumber")
        if number is not None and coerce("LineNumber", "Int64", number) != index:
            raise OneCServiceError(
                f"Неверный номер строки {number} табличной части '{section}': ожидается {index}",
                code="1",
                status=400,
                field=section,
            )
        row = dict(self.defaults)
        convert, defaults = self.convert, self.defaults
        for name, value in item.items():
            converter = convert.get(name)
            if converter is not None:
                row[name] = defaults[name] if value is None else converter(name, value)
        row["Ref_Key"], row["LineNumber"] = owner, Int64(index)
        return row


@lru_cache(maxsize=64)
def _line_coercers(layout: Layout) -> dict[str, Callable[[str, Any], Any]]:
    return coercers(layout.types)


def _typed(layout: Layout, fields: dict[str, Any]) -> dict[str, Any]:
    row = dict(layout.defaults)
    types = layout.types
    for name, value in fields.items():
        edm_type = types.get(name)
        if edm_type == "Double":
            row[name] = canonical_decimal(value if type(value) is Decimal else Decimal(value))
        elif edm_type == "Guid":
            row[name] = canonical_guid(value)
        elif edm_type is not None:
            row[name] = value
    return row


def _utf8(layout: Layout) -> Callable[[Packed], bytes]:
    return lambda packed: layout.to_json(packed).encode("utf-8")


def _dims(dims: tuple[str, ...], key: Any) -> dict[str, Any]:
    # itemgetter of one position returns the value itself, of several a tuple
    return dict(zip(dims, key if len(dims) > 1 else (key,), strict=True))


def _norm_guid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text
