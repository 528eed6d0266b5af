"""The in-memory infobase behind the emulated 1C: objects, tabular sections, DataVersion, posting, the register.

It behaves like the standard OData interface of a real base where that matters to a client (reference/onec.md
§1.6): a created document is **not posted**; every write (create, change, post, unpost, mark) gives the object a
new ``DataVersion``; unknown fields are dropped silently; a tabular section given in a change replaces the whole
section; ``Posted`` cannot be written directly; posting replaces the document's register movements and unposting
removes them. Posting logic is in :mod:`connector.sandbox.onec.posting`.

Example:
    >>> base = OneCInfobase("ut")
    >>> ref = base.create("Catalog_Партнеры", {"Description": "Иванов"})
    >>> base.rows("Catalog_Партнеры")[0]["Description"]
    'Иванов'
"""

from __future__ import annotations

import base64
import struct
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from connector.sandbox.onec import posting
from connector.sandbox.onec.schema import (
    REGISTER,
    REGISTER_RECORDS,
    EntitySchema,
    Flavour,
    infobase_schema,
    register_dimensions,
    register_props,
)
from connector.sandbox.onec.wire import EMPTY_GUID, Int64, OneCServiceError, coerce, default_value, dump_json

__all__ = ["OneCInfobase", "Source"]

_NUMBER_PREFIX = "00ЦБ-"
_UNWRITABLE = frozenset({"Ref_Key", "DataVersion", "Posted"})


@dataclass(frozen=True)
class Source:
    """What a query reads: the rows (never mutate them), scalar types, and a cached full-JSON writer per row."""

    name: str
    rows: list[dict[str, Any]]
    types: dict[str, str]
    sections: dict[str, dict[str, str]]
    to_json: Callable[[dict[str, Any]], str]
    version: int


class OneCInfobase:
    """One emulated 1C infobase of a flavour (``ut`` or ``retail``), safe to share between request threads.

    Args:
        flavour: ``ut`` (УТ 11.5 object model) or ``retail`` (Розница 2).
    """

    def __init__(self, flavour: Flavour = "ut") -> None:
        self.flavour: Flavour = flavour
        self.schema: dict[str, EntitySchema] = infobase_schema(flavour)
        self._objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.schema}
        self._json: dict[str, str] = {}
        self._movements: dict[str, list[dict[str, Any]]] = {}
        self._counters: dict[str, int] = {}
        self._version = 0
        self._lock = threading.RLock()

    # ---- reading ---------------------------------------------------------------------------------------------

    def entity_schema(self, entity_set: str) -> EntitySchema:
        """The schema of an object set, or 1C's answer to an unpublished one (code 6, HTTP 400)."""
        found = self.schema.get(entity_set)
        if found is None:
            raise OneCServiceError(f"Сегмент пути '{entity_set}' не найден", code="6", status=400)
        return found

    def get(self, entity_set: str, ref_key: str) -> dict[str, Any]:
        """The stored row of one object (do not mutate); code 9 / HTTP 404 when there is none."""
        self.entity_schema(entity_set)
        row = self._objects[entity_set].get(_norm_guid(ref_key))
        if row is None:
            raise OneCServiceError("Экземпляр сущности не найден", code="9", status=404, document=ref_key)
        return row

    def lookup(self, entity_set: str, ref_key: str) -> dict[str, Any] | None:
        """The stored row of one object (do not mutate), or None."""
        return self._objects[self.entity_schema(entity_set).name].get(_norm_guid(ref_key))

    def rows(self, entity_set: str) -> list[dict[str, Any]]:
        """Copies of every row of a set (objects, ``…_RecordType`` movements or ``…_<section>`` rows), typed."""
        return [_copy_row(row) for row in self.source(entity_set).rows]

    def row_json(self, entity_set: str, ref_key: str) -> str:
        """The full 1C JSON of one object, cached until its next write."""
        return self._object_json(self.get(entity_set, ref_key))

    def find(self, entity_set: str, **equals: Any) -> list[dict[str, Any]]:
        """Rows of an object set whose fields equal the given typed values (a linear scan)."""
        items = equals.items()
        return [
            row for row in self._objects[self.entity_schema(entity_set).name].values() if _matches(row, items)
        ]

    def source(self, entity_set: str) -> Source:
        """The rows and types a query over ``entity_set`` reads."""
        with self._lock:
            if entity_set in self.schema:
                entity = self.schema[entity_set]
                return Source(
                    entity_set,
                    list(self._objects[entity_set].values()),
                    entity.types,
                    {section: entity.section_types(section) for section in entity.sections},
                    self._object_json,
                    self._version,
                )
            if entity_set == REGISTER_RECORDS:
                records = self.movements()
                return Source(
                    entity_set, records, dict(register_props(self.flavour)), {}, dump_json, self._version
                )
            if entity_set == REGISTER:
                return self._record_sets()
            return self._section_source(entity_set)

    def movements(self) -> list[dict[str, Any]]:
        """Every register record, recorder by recorder in the order they were first posted."""
        with self._lock:
            return [record for records in self._movements.values() for record in records]

    def balance(
        self,
        period: datetime | None = None,
        condition: Callable[[dict[str, Any]], Any] | None = None,
        dimensions: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The ``Balance`` virtual table: ``НачисленоBalance``/``КСписаниюBalance`` per dimension combination.

        Like 1C's ``Остатки(&Дата)``, a moment excludes movements dated exactly at it; without a period every
        movement counts. Groups whose balances are both zero are left out, as the platform does.
        """
        dims = tuple(dimensions) if dimensions else register_dimensions(self.flavour)
        totals: dict[tuple[Any, ...], list[Decimal]] = {}
        for record in self.movements():
            if not record["Active"] or (period is not None and record["Period"] >= period):
                continue
            if condition is not None and not condition(record):
                continue
            sign = 1 if record["RecordType"] == "Receipt" else -1
            sums = totals.setdefault(tuple(record[dim] for dim in dims), [Decimal(0), Decimal(0)])
            sums[0] += sign * record["Начислено"]
            sums[1] += sign * record["КСписанию"]
        return [
            {**dict(zip(dims, key, strict=True)), "НачисленоBalance": sums[0], "КСписаниюBalance": sums[1]}
            for key, sums in totals.items()
            if sums[0] or sums[1]
        ]

    # ---- writing ---------------------------------------------------------------------------------------------

    def create(self, entity_set: str, fields: dict[str, Any], *, strict_lines: bool = False) -> str:
        """Create an object from wire-form or typed values; documents are created unposted.

        Args:
            entity_set: e.g. ``Document_ЧекККМ``.
            fields: attribute values; a ``Ref_Key`` is honoured (1C accepts a client-chosen key), unknown
                names are dropped, ``Posted`` and ``DataVersion`` are ignored.
            strict_lines: demand ``LineNumber`` 1..n in every tabular row, as the OData interface does; the
                Python seeding path numbers rows itself when they have none.

        Returns:
            The new ``Ref_Key``.
        """
        entity = self.entity_schema(entity_set)
        with self._lock:
            ref = str(coerce("Ref_Key", "Guid", fields.get("Ref_Key") or str(uuid.uuid4())))
            if ref == EMPTY_GUID or ref in self._objects[entity_set]:
                raise OneCServiceError(
                    f"Объект с ключом {ref} уже существует", code="-1", status=500, document=ref
                )
            row = {name: default_value(edm_type) for name, edm_type in entity.props}
            row.update({section: [] for section in entity.sections})
            row["Ref_Key"] = ref
            self._apply(entity, row, fields, strict_lines)
            self._number(entity, row)
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
            current = self.get(entity_set, ref_key)
            row = _copy_row(current)
            if replace:
                row.update({name: default_value(t) for name, t in entity.props if name not in _UNWRITABLE})
                row.update({section: [] for section in entity.sections})
            self._apply(entity, row, fields, strict_lines)
            self._store(entity_set, row)
            return row

    def delete(self, entity_set: str, ref_key: str) -> None:
        """Delete an object physically, with its movements (``DELETE``; 1C users prefer ``DeletionMark``)."""
        with self._lock:
            row = self.get(entity_set, ref_key)
            del self._objects[entity_set][row["Ref_Key"]]
            self._json.pop(row["Ref_Key"], None)
            self._movements.pop(row["Ref_Key"], None)

    def post(self, entity_set: str, ref_key: str, *, write_movements: bool = True) -> None:
        """Post a document: ``Posted`` becomes true and its register movements are (re)written.

        ``write_movements=False`` marks it posted without touching the register — for seeding documents whose
        movements a real base would have moved elsewhere (the sandbox register mirrors the CRM ledger only).
        """
        entity = self.entity_schema(entity_set)
        if entity.kind != "document":
            raise OneCServiceError("Метод не найден: Post", code="6", status=400)
        with self._lock:
            row = _copy_row(self.get(entity_set, ref_key))
            if row["DeletionMark"]:
                raise OneCServiceError(
                    "Помеченный на удаление документ не может быть проведен",
                    code="-1",
                    status=500,
                    document=ref_key,
                )
            records = posting.movements(self, entity_set, row) if write_movements else []
            row["Posted"] = True
            self._store(entity_set, row)
            self._movements.pop(row["Ref_Key"], None)
            if records:
                self._movements[row["Ref_Key"]] = records

    def unpost(self, entity_set: str, ref_key: str) -> None:
        """Unpost a document: ``Posted`` false and its movements removed; the document stays."""
        entity = self.entity_schema(entity_set)
        if entity.kind != "document":
            raise OneCServiceError("Метод не найден: Unpost", code="6", status=400)
        with self._lock:
            row = _copy_row(self.get(entity_set, ref_key))
            row["Posted"] = False
            self._store(entity_set, row)
            self._movements.pop(row["Ref_Key"], None)

    # ---- helpers ---------------------------------------------------------------------------------------------

    def _apply(self, entity: EntitySchema, row: dict[str, Any], fields: dict[str, Any], strict: bool) -> None:
        types = entity.types
        for name, value in fields.items():
            if name in entity.sections:
                row[name] = _section_rows(entity, name, value, row["Ref_Key"], strict)
            elif name in types and name not in _UNWRITABLE:
                row[name] = coerce(name, types[name], value)

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
        self._objects[entity_set][row["Ref_Key"]] = row
        self._json.pop(row["Ref_Key"], None)

    def _object_json(self, row: dict[str, Any]) -> str:
        text = self._json.get(row["Ref_Key"])
        if text is None:
            text = self._json[row["Ref_Key"]] = dump_json(row)
        return text

    def _record_sets(self) -> Source:
        sets = [
            {
                "Recorder": records[0]["Recorder"],
                "Recorder_Type": records[0]["Recorder_Type"],
                "RecordSet": records,
            }
            for records in self._movements.values()
        ]
        types = {"Recorder": "String", "Recorder_Type": "String"}
        sections = {"RecordSet": dict(register_props(self.flavour))}
        return Source(REGISTER, sets, types, sections, dump_json, self._version)

    def _section_source(self, entity_set: str) -> Source:
        for entity in self.schema.values():
            for section in entity.sections:
                if entity_set == f"{entity.name}_{section}":
                    rows = [line for row in self._objects[entity.name].values() for line in row[section]]
                    types = entity.section_types(section)
                    return Source(entity_set, rows, types, {}, dump_json, self._version)
        raise OneCServiceError(f"Сегмент пути '{entity_set}' не найден", code="6", status=400)


def _section_rows(
    entity: EntitySchema, section: str, value: Any, owner: str, strict: bool
) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise OneCServiceError(
            f"Ошибка разбора значения свойства '{section}': ожидается массив строк", code="1", status=400
        )
    types = entity.section_types(section)
    rows = []
    for index, item in enumerate(value, start=1):
        if strict and "LineNumber" not in item:
            raise OneCServiceError("Внутренняя ошибка OData сервиса", code="-1", status=500, field=section)
        line = coerce("LineNumber", "Int64", item.get("LineNumber", index))
        if line != index:
            raise OneCServiceError(
                f"Неверный номер строки {line} табличной части '{section}': ожидается {index}",
                code="1",
                status=400,
                field=section,
            )
        row = {name: default_value(edm_type) for name, edm_type in types.items()}
        row.update({name: coerce(name, types[name], v) for name, v in item.items() if name in types})
        row["Ref_Key"], row["LineNumber"] = owner, Int64(index)
        rows.append(row)
    return rows


def _copy_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: [dict(line) for line in value] if isinstance(value, list) else value
        for key, value in row.items()
    }


def _matches(row: dict[str, Any], items: Iterable[tuple[str, Any]]) -> bool:
    return all(row.get(name) == value for name, value in items)


def _norm_guid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text
