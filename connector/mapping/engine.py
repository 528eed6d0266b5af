"""Evaluating a mapping: one raw payload in, one canonical :class:`Sale`, :class:`Return` or :class:`Posting` out.

Every failure on a document becomes a :class:`~connector.errors.MappingError` naming the system, the source
document id, the canonical field path (``lines[1].amount``) and the source expression, so a bad document can be
parked while the rest of a batch goes on (:meth:`Mapping.map_many`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, TypeVar

from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from pydantic import BaseModel, ValidationError

from adapters.jsonwire import json_truth
from connector.errors import MappingError
from connector.mapping.functions import (
    Compiled,
    Members,
    Scope,
    compile_expression,
    compiled,
    evaluate,
    one_line,
    root_members,
    to_decimal,
)
from connector.mapping.spec import DocRefSpec, FieldSpec, ListSpec, PostingSpec, ReceiptSpec
from connector.mapping.transforms import Transform
from connector.model import DOCUMENT_ADAPTER, Posting, Return, Sale

__all__ = ["Canonical", "MapResult", "Mapping"]

Canonical = Sale | Return | Posting
Catalogs = MappingABC[str, MappingABC[str, Any]]
_T = TypeVar("_T")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


@dataclass(frozen=True)
class MapResult:
    """The outcome for one item of a batch: the canonical object, or the error, with the item's index."""

    index: int
    value: Canonical | None = None
    error: MappingError | None = None

    @property
    def ok(self) -> bool:
        """True when the item was mapped."""
        return self.error is None


class _FieldError(Exception):
    def __init__(self, field_path: str, source: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field_path, self.source, self.reason = field_path, source, reason


_truthy = (
    json_truth  # JMESPath truth: false, null, "", [] and {} are false; every number (0 included) is true
)


@lru_cache(maxsize=512)
def _placeholder(text: str) -> ParsedResult:
    return compile_expression(text)


@dataclass(frozen=True)
class _Plan:
    """A field spec made ready to run: its path compiled (None: another source, or left to the interpreter)
    and its transforms as ``(name, function, args, runs on null)``."""

    read: Compiled | None
    expression: str | None
    transforms: tuple[tuple[str, Callable[[Any, Any, Scope], Any], Any, bool], ...]


_PLANS: dict[int, tuple[FieldSpec, _Plan]] = {}
_EVALUATION_ERRORS = (JMESPathError, ValueError, ArithmeticError)


def _plan(spec: FieldSpec) -> _Plan:
    """The plan of a spec, made on first use (specs are frozen; the entry keeps its spec, so ids stay unique)."""
    entry = _PLANS.get(id(spec))
    if entry is not None and entry[0] is spec:
        return entry[1]
    read = compiled(spec.path) if spec.path is not None else None
    steps = tuple((t.name, t.function, t.args, t.name == "default") for t in spec.transforms)
    plan = _Plan(read, str(spec.path.expression) if spec.path is not None else None, steps)
    _PLANS[id(spec)] = (spec, plan)
    return plan


def _expressions(spec: Any) -> Iterator[ParsedResult]:
    """Every expression a field spec evaluates: its path, template placeholders, ``first`` and ``cases``
    alternatives with their ``when``, and the expressions among its transforms' arguments."""
    if isinstance(spec, ParsedResult):
        yield spec
    elif isinstance(spec, FieldSpec):
        if spec.template is not None:
            for name in _PLACEHOLDER.findall(spec.template):
                if not name.startswith("$"):
                    yield _placeholder(name)
        for value in (spec.path, getattr(spec, "when", None), spec.first, spec.cases, spec.transforms):
            yield from _expressions(value)
    elif isinstance(spec, list | tuple):
        for item in spec:
            yield from _expressions(item)
    elif isinstance(spec, Transform):
        yield from _expressions(spec.args)
    elif isinstance(spec, BaseModel):
        for value in vars(spec).values():
            yield from _expressions(value)


_SELECTIONS = 256  # distinct selection keys remembered per mapping (a pull sees a handful)
_ABSENT = object()


def _union(parts: Iterable[Members | None]) -> Members | None:
    read: set[str] = set()
    tested: set[str] = set()
    for part in parts:
        if part is None:
            return None
        read |= part.read
        tested |= part.tested
    return Members(frozenset(read), frozenset(tested - read))


@lru_cache(maxsize=64)
def _names(members: Members) -> tuple[str, ...]:
    return tuple(sorted(members.read | members.tested))


def _selection_key(raw: Any, members: Members | None) -> tuple[tuple[str, Any], ...] | None:
    """The values of the members selection reads, as a hashable key; None when they are not all scalars."""
    if members is None or not isinstance(raw, dict):
        return None
    key = tuple((name, raw.get(name, _ABSENT)) for name in _names(members))
    if any(isinstance(value, dict | list) for _, value in key):
        return None
    return key


@dataclass
class _Evaluator:
    """Evaluates field specs for one document and remembers which source fed each canonical path."""

    scope: Scope
    specs: dict[str, FieldSpec] = field(default_factory=dict)

    def source(self, path: str) -> str | None:
        """The source text that fed a canonical field path (error evidence)."""
        spec = self.specs.get(path)
        return spec.source if spec is not None else None

    def expr(self, expression: ParsedResult, node: Any, path: str) -> Any:
        try:
            return evaluate(expression, node, self.scope)
        except ValueError as exc:
            raise _FieldError(path, str(expression.expression), str(exc)) from None

    def value(self, spec: FieldSpec, node: Any, path: str) -> Any:
        self.specs.setdefault(path, spec)
        plan = _plan(spec)
        if plan.read is not None:
            try:
                value = plan.read(node, self.scope)
            except _EVALUATION_ERRORS as exc:
                raise _FieldError(path, plan.expression, one_line(exc)) from None
        else:
            value = self._raw(spec, node, path)
        scope = self.scope
        for name, function, args, on_null in plan.transforms:
            if value is None and not on_null:
                continue  # a null passes every transform untouched but ``default``
            try:
                value = function(value, args, scope)
            except ValueError as exc:
                raise _FieldError(path, spec.source, f"{name}: {exc}") from None
        return spec.default if value is None else value

    def _raw(self, spec: FieldSpec, node: Any, path: str) -> Any:
        if spec.path is not None:
            return self.expr(spec.path, node, path)
        if spec.template is not None:
            return self._template(spec.template, node, path)
        if spec.first is not None:
            return next((v for s in spec.first if (v := self.value(s, node, path)) is not None), None)
        if spec.cases is not None:
            for case in spec.cases:
                if case.when is None or _truthy(self.expr(case.when, node, path)):
                    return self.value(case, node, path)
            return None
        return spec.value

    def _template(self, template: str, node: Any, path: str) -> str:
        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            value = (
                self._variable(name[1:])
                if name.startswith("$")
                else self.expr(_placeholder(name), node, path)
            )
            if value is None or value == "":
                raise _FieldError(path, template, f"template placeholder {{{name}}} is empty")
            return format(value, "f") if isinstance(value, Decimal) else str(value)

        return _PLACEHOLDER.sub(fill, template)

    def _variable(self, name: str) -> Any:
        scope = self.scope
        known = {**scope.params, "system": scope.system, "entity": scope.entity, **scope.fields}
        return known.get(name)

    def section(self, specs: MappingABC[Any, FieldSpec], node: Any, prefix: str) -> dict[str, Any]:
        """Evaluate fields in file order; each can see the earlier ones through ``field('name')``."""
        self.scope.fields = result = {}
        for name, spec in specs.items():
            result[name] = self.value(spec, node, f"{prefix}{name}")
        return result

    def docref(self, spec: DocRefSpec | None, node: Any, path: str) -> dict[str, Any] | None:
        if spec is None:
            return None
        identifier = self.value(spec.id, node, f"{path}.id")
        if identifier is None or identifier == "":
            return None
        system = self.value(spec.system, node, f"{path}.system") if spec.system else self.scope.system
        return {"system": system, "kind": self.value(spec.kind, node, f"{path}.kind"), "id": str(identifier)}

    def rows(self, spec: ListSpec, node: Any, path: str) -> list[Any]:
        items = self.expr(spec.source, node, path)
        if items is None:
            return []
        if not isinstance(items, list):
            raise _FieldError(
                path, str(spec.source.expression), f"expected an array, got {type(items).__name__}"
            )
        if spec.unwrap:
            items = [item.get(spec.unwrap, item) if isinstance(item, dict) else item for item in items]
        if spec.when is not None:
            items = [item for item in items if _truthy(self.expr(spec.when, item, path))]
        return items


def _money(value: Any) -> Decimal:
    return Decimal("0") if value is None else to_decimal(value)


def _lines(spec: ReceiptSpec, ev: _Evaluator, raw: Any) -> list[dict[str, Any]]:
    lines = []
    for index, item in enumerate(ev.rows(spec.lines, raw, "lines")):
        prefix = f"lines[{index}]."
        line = ev.section(spec.lines.fields, item, prefix)
        if line.get("line_no") is None:
            line["line_no"] = index + 1
        points = spec.points
        inside = line.get("bonus_redeemed")
        if inside is None and points.line is not None:
            inside = ev.value(points.line, item, prefix + "bonus_redeemed")
        booked = ev.value(points.line_discount, item, prefix + "amount") if points.line_discount else None
        if booked:
            # Points the source booked as a discount are a means of payment here (DESIGN §2): add them back.
            line["amount"] = _money(line.get("amount")) + _money(booked)
            line["discount"] = max(Decimal("0.00"), _money(line.get("discount")) - _money(booked))
        line["bonus_redeemed"] = _money(inside) + _money(booked)
        lines.append({key: value for key, value in line.items() if value is not None})
    return lines


def _payments(spec: ReceiptSpec, ev: _Evaluator, raw: Any) -> list[dict[str, Any]]:
    if spec.payments is None:
        return []
    payments = []
    for index, item in enumerate(ev.rows(spec.payments, raw, "payments")):
        payment = ev.section(spec.payments.fields, item, f"payments[{index}].")
        if payment.get("amount"):
            payments.append(payment)
    return payments


def _redeemed(spec: ReceiptSpec, ev: _Evaluator, raw: Any, lines: list[dict[str, Any]]) -> Decimal:
    per_line = sum((_money(line.get("bonus_redeemed")) for line in lines), Decimal(0))
    stated = ev.value(spec.points.receipt, raw, "bonus_redeemed") if spec.points.receipt else None
    if stated is None or _money(stated) == 0:
        return per_line
    if per_line and _money(stated) != per_line:
        source = ev.source("bonus_redeemed")
        reason = f"receipt-level {stated} differs from the sum over lines {per_line}"
        raise _FieldError("bonus_redeemed", source, reason)
    return per_line or _money(stated)


def _customer(spec: ReceiptSpec, ev: _Evaluator, raw: Any) -> dict[str, Any] | None:
    values = ev.section(spec.customer, raw, "customer.")
    reference = values.pop("ref", None)
    customer = {key: value for key, value in values.items() if value is not None}
    if reference is not None:
        customer["refs"] = {ev.scope.system: str(reference)}
    return customer or None


def _build_receipt(spec: ReceiptSpec, ev: _Evaluator, raw: Any) -> Sale | Return:
    is_return = spec.return_when if isinstance(spec.return_when, bool) else None
    if is_return is None:
        assert isinstance(spec.return_when, ParsedResult)
        is_return = _truthy(ev.expr(spec.return_when, raw, "type"))
    header = {"ref": ev.docref(spec.ref, raw, "ref")}
    header |= {key: value for key, value in ev.section(spec.fields, raw, "").items() if value is not None}
    customer = _customer(spec, ev, raw)
    lines = _lines(spec, ev, raw)
    data: dict[str, Any] = {
        **header,
        "type": "return" if is_return else "sale",
        "customer": customer,
        "lines": lines,
        "payments": _payments(spec, ev, raw),
        "total": sum((_money(line.get("amount")) for line in lines), Decimal(0)),
        "bonus_redeemed": _redeemed(spec, ev, raw, lines),
    }
    if data["bonus_redeemed"] and not any(payment.get("method") == "bonus" for payment in data["payments"]):
        # Points are a means of payment (DESIGN §2) even where the source books them as a discount.
        data["payments"].append({"method": "bonus", "amount": data["bonus_redeemed"]})
    data.setdefault("discount", sum((_money(line.get("discount")) for line in lines), Decimal(0)))
    if spec.fiscal is not None:
        fiscal = ev.section(spec.fiscal, raw, "fiscal.")
        data["fiscal"] = fiscal if any(value is not None for value in fiscal.values()) else None
    if is_return:
        data["original"] = ev.docref(spec.original, raw, "original")
    else:
        data.pop("original_number", None)
    return _validated(ev, lambda: DOCUMENT_ADAPTER.validate_python(data))


def _build_posting(spec: PostingSpec, ev: _Evaluator, raw: Any) -> Posting:
    document = ev.docref(spec.document, raw, "document")
    ref = ev.docref(spec.ref, raw, "ref")
    values = ev.section(spec.fields, raw, "")
    if values.get("key") is None:
        source = document or ref
        if source is None:
            raise _FieldError("key", None, "no key mapped and no document or ref id to build one from")
        values["key"] = f"{ev.scope.system}:{source['id']}:{values.get('kind')}"
    data = {**values, "document": document, "ref": ref}
    return _validated(ev, lambda: Posting.model_validate(data))


def _validated(ev: _Evaluator, build: Callable[[], _T]) -> _T:
    try:
        return build()
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [part for part in first["loc"] if part not in ("sale", "return")]
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
        reason = first["msg"].removeprefix("Value error, ")
        raise _FieldError(path or "document", ev.source(path), reason) from None


class Mapping:
    """A loaded mapping: one or more files, each mapping one kind of raw document.

    Build it with :func:`connector.mapping.load_mapping`.

    Example:
        >>> mapping = load_mapping("evotor/v2")
        >>> sale = mapping.map(raw_receipt, system="evotor")
    """

    def __init__(
        self, name: str, files: list[tuple[Path, ReceiptSpec | PostingSpec]], params: dict[str, Any]
    ):
        self.name = name
        self.files = tuple(files)
        self._params = params
        # Per file, once: every document needs its file's parameters (selection, scope).
        self._effective = {path: self._merge(spec) for path, spec in self.files}
        self._selections: dict[tuple[tuple[str, Any], ...], tuple[str, Path, ReceiptSpec] | None] = {}

    def __repr__(self) -> str:
        return f"Mapping({self.name!r}, files={[path.name for path, _ in self.files]})"

    @property
    def system(self) -> str:
        """The default system name of the mapping (``evotor``, ``onec``, ``crm``)."""
        return self.files[0][1].system

    def params(self, path: Path) -> dict[str, Any]:
        """The effective parameters of one file: its ``params:`` with the overrides given when loading."""
        return dict(self._effective[path])

    def _merge(self, spec: ReceiptSpec | PostingSpec) -> dict[str, Any]:
        return {**spec.params, **{k: v for k, v in self._params.items() if k in spec.params}}

    def map(
        self,
        raw: Any,
        *,
        system: str | None = None,
        entity: str | None = None,
        catalogs: Catalogs | None = None,
    ) -> Canonical:
        """Map one raw payload to its canonical object.

        Args:
            raw: the decoded JSON document (numbers as ``Decimal``/``int``, never float).
            system: the configured system name (``DocRef.system``, posting keys); defaults to the file's.
            entity: the 1C entity set the payload came from, when the payload does not say.
            catalogs: lookups read once per run: ``{"partners": {<guid>: {"phone": …}}, "stores": {…}}``.

        Raises:
            MappingError: no file of the mapping matches, or a field cannot be mapped.
        """
        path, spec = self._select(raw, entity, system)
        scope = Scope(
            root=raw,
            params=self._effective[path],
            catalogs=catalogs or {},
            system=system or spec.system,
            entity=entity,
        )
        ev = _Evaluator(scope)
        document_id = self._document_id(spec, ev, raw)
        try:
            for name, expression in spec.vars.items():
                scope.vars[name] = ev.expr(expression, raw, f"vars.{name}")
            if isinstance(spec, ReceiptSpec):
                return _build_receipt(spec, ev, raw)
            return _build_posting(spec, ev, raw)
        except _FieldError as exc:
            raise MappingError(
                exc.reason, system=scope.system, document=document_id, field=exc.field_path, source=exc.source
            ) from None

    def receipt_kind(self, raw: Any, *, system: str | None = None, entity: str | None = None) -> str | None:
        """The ``DocRef`` kind of the receipt ``raw`` maps to, told without mapping it; None when not told.

        Only a file producing receipts under a constant kind (``ref: {kind: {value: receipt}}``, as every
        shipped one) tells it; for anything else — a posting, a computed kind, no or several matching files —
        the answer is None and the payload has to be mapped.
        """
        found = self._constant_kind(raw, entity, system)
        return None if found is None else found[0]

    def _constant_kind(
        self, raw: Any, entity: str | None, system: str | None
    ) -> tuple[str, Path, ReceiptSpec] | None:
        """The constant receipt kind of the file that maps ``raw``, with that file; None when not told."""
        try:
            path, spec = self._select(raw, entity, system)
        except MappingError:
            return None
        if not isinstance(spec, ReceiptSpec):
            return None
        kind = spec.ref.kind
        constant = kind.path is None and kind.template is None and kind.first is None and kind.cases is None
        if constant and not kind.transforms and isinstance(kind.value, str) and kind.value:
            return kind.value, path, spec
        return None

    def receipt_place(
        self, raw: Any, *, system: str | None = None, catalogs: Catalogs | None = None
    ) -> tuple[str, str | None, date] | None:
        """Where a receipt belongs — its kind, store and business date — told without mapping it; else None.

        The pull journals a receipt raw under this place and maps it later (see
        :func:`connector.sync.pull.land_records`): only the file's ``store`` and ``business_date`` fields are
        evaluated, without ``vars``. None when :meth:`receipt_kind` does not tell the kind, when the file needs
        the entity set to be chosen, or when either field cannot be evaluated this way — such a payload is
        mapped whole at once instead, and its error, if any, reported then. ``raw`` may hold only the members
        :meth:`place_members` names (those only tested, as a stand-in of the same truth): the answer is the
        same.
        """
        found = self._place_file(raw, system)
        if found is None:
            return None
        kind, path, spec = found
        business_date, store = spec.fields.get("business_date"), spec.fields.get("store")
        if business_date is None:
            return None
        scope = Scope(root=raw, params=self._effective[path], catalogs=catalogs or {},
                      system=system or spec.system)  # fmt: skip
        ev = _Evaluator(scope)
        try:
            day = ev.value(business_date, raw, "business_date")
            where = ev.value(store, raw, "store") if store is not None else None
        except (_FieldError, *_EVALUATION_ERRORS):
            return None
        if isinstance(day, str):
            try:
                day = date.fromisoformat(day)
            except ValueError:
                return None
        if not isinstance(day, date) or isinstance(day, datetime) or not isinstance(where, str | None):
            return None
        return kind, where, day

    def _place_file(self, raw: Any, system: str | None) -> tuple[str, Path, ReceiptSpec] | None:
        """:meth:`_constant_kind` without an entity, remembered by the values of the members the files'
        ``select.when`` read: documents that agree on those are selected alike (a pull's receipts are a few
        types)."""
        key = _selection_key(raw, self._select_members)
        if key is not None and key in self._selections:
            return self._selections[key]
        found = self._constant_kind(raw, None, system)
        if key is not None and len(self._selections) < _SELECTIONS:
            self._selections[key] = found
        return found

    @cached_property
    def _select_members(self) -> Members | None:
        """The members the files' ``select.when`` read (see :meth:`place_members`)."""
        return _union(
            root_members(spec.select.when, truth=True) for _, spec in self.files if spec.select.when
        )

    def place_members(self) -> Members | None:
        """The top-level members of a raw document that :meth:`receipt_place` reads; None when it may read all.

        They are the members the files' ``select.when`` read and those the receipt files' ``store`` and
        ``business_date`` fields read; a member ``select.when`` only tests for truth is in ``tested``. A pull
        decodes only these before it lands a receipt (:meth:`adapters.base.RawRecord.project`). Shipped Evotor:
        ``type``, ``store_id``, ``close_date``, ``time_zone_offset`` read, ``body`` tested.
        """
        return self._place_read

    @cached_property
    def _place_read(self) -> Members | None:
        parts: list[Members | None] = []
        for _, spec in self.files:
            if spec.select.when is not None:
                parts.append(root_members(spec.select.when, truth=True))
            if isinstance(spec, ReceiptSpec):
                for name in ("store", "business_date"):
                    if (field_spec := spec.fields.get(name)) is not None:
                        parts.extend(root_members(expression) for expression in _expressions(field_spec))
        return _union(parts)

    def map_many(
        self,
        items: Iterable[Any],
        *,
        system: str | None = None,
        entity: str | None = None,
        catalogs: Catalogs | None = None,
    ) -> Iterator[MapResult]:
        """Map a batch; a bad item yields its error (with its index) and never stops the others."""
        for index, raw in enumerate(items):
            try:
                yield MapResult(index, value=self.map(raw, system=system, entity=entity, catalogs=catalogs))
            except MappingError as exc:
                yield MapResult(index, error=exc)

    def _select(
        self, raw: Any, entity: str | None, system: str | None
    ) -> tuple[Path, ReceiptSpec | PostingSpec]:
        if not isinstance(raw, dict):
            raise MappingError(f"a raw document is a JSON object, not {type(raw).__name__}", system=system)
        matches = [(path, spec) for path, spec in self.files if self._matches(path, spec, raw, entity)]
        if len(matches) == 1:
            return matches[0]
        what = f"entity {entity}" if entity else "this document"
        if not matches:
            raise MappingError(f"no file of mapping {self.name} maps {what}", system=system, field="select")
        names = ", ".join(path.name for path, _ in matches)
        raise MappingError(
            f"several files of mapping {self.name} match {what} ({names}); name the entity set",
            system=system,
            field="select",
        )

    def _matches(self, path: Path, spec: ReceiptSpec | PostingSpec, raw: Any, entity: str | None) -> bool:
        if entity is not None and spec.select.entity:
            return entity in spec.select.entity
        if spec.select.when is None:
            return True
        try:
            return _truthy(evaluate(spec.select.when, raw, Scope(root=raw, params=self._effective[path])))
        except ValueError:
            return False

    @staticmethod
    def _document_id(spec: ReceiptSpec | PostingSpec, ev: _Evaluator, raw: Any) -> str | None:
        ref = spec.ref or getattr(spec, "document", None)
        if ref is None:
            return None
        try:
            identifier = _Evaluator(ev.scope).value(ref.id, raw, "ref.id")
        except _FieldError:
            return None
        return None if identifier is None else str(identifier)
