"""JMESPath with the mapping's own functions, evaluated against the document being mapped.

Standard JMESPath knows nothing of ``Decimal`` (its ``sum``/``abs``/``max`` refuse it) nor of mapping parameters,
named intermediate values or catalogs, so mapping expressions may call these functions as well:

==========================  ==========================================================================
``param('name')``           a mapping parameter (``params:`` in the file, overridable when loading)
``var('name')``             a value computed once per document under ``vars:``
``field('name')``           a canonical field already mapped in this section (e.g. ``field('kind')``)
``root()``                  the whole raw document (from inside ``lines:`` or ``payments:``)
``catalog('name', key)``    the entry of ``key`` in a catalog read once per run, or null
``unwrap(array, 'key')``    each item's ``key`` member when it has one, else the item (``{"position": …}``)
``dsum(array)``             exact Decimal sum; nulls count as zero, numeric strings are accepted
``add(a, b)``, ``sub(a, b)``, ``mul(a, b)``  exact Decimal arithmetic; a null operand counts as zero
``prorate(value, part, whole)``  ``value × part / whole`` to the kopeck (half up); 0 when ``whole`` is 0
``split(text, 'sep')``      a string cut at every ``sep``
``str(value)``              a number or string as text (Decimals without exponent)
==========================  ==========================================================================

Example:
    >>> from connector.mapping.functions import Scope, compile_expression, evaluate
    >>> expr = compile_expression("dsum(items[].sum)")
    >>> evaluate(expr, {"items": [{"sum": Decimal("0.1")}, {"sum": Decimal("0.2")}]}, Scope(root={}))
    Decimal('0.3')
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath import functions as jmespath_functions
from jmespath.parser import ParsedResult
from jmespath.visitor import TreeInterpreter

__all__ = [
    "FUNCTION_NAMES",
    "Scope",
    "catalog_entry",
    "compile_expression",
    "evaluate",
    "quote_identifiers",
    "to_decimal",
]

_CENTS = Decimal("0.01")


@dataclass
class Scope:
    """What an expression may see besides its input node: the document, parameters, vars, catalogs."""

    root: Any
    params: Mapping[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    catalogs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    system: str = ""
    entity: str | None = None


_SCOPE: contextvars.ContextVar[Scope] = contextvars.ContextVar("mapping_scope")


def to_decimal(value: Any) -> Decimal:
    """An exact Decimal from a JSON number or numeric string; floats and booleans are refused."""
    if isinstance(value, (bool, float)):
        raise ValueError(f"{value!r} is a {type(value).__name__}, not an exact number")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip().replace(",", "."))
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
    else:
        raise ValueError(f"{type(value).__name__} is not a number")
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return number


def catalog_entry(catalog: Mapping[str, Any], key: str) -> Any:
    """The entry of ``key``, also found in upper case: catalogs keep 1C GUIDs lower-case, as 1C writes them."""
    entry = catalog.get(key)
    return catalog.get(key.lower()) if entry is None else entry


def _number_or_zero(value: Any) -> Decimal:
    return Decimal(0) if value is None else to_decimal(value)


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


_ANY: Any = {"types": []}


class _Functions(jmespath_functions.Functions):
    """The mapping functions; each reads the current :class:`Scope` from a context variable."""

    @jmespath_functions.signature({"types": ["string"]})
    def _func_param(self, name: str) -> Any:
        params = _SCOPE.get().params
        if name not in params:
            raise jmespath_errors.JMESPathError(f"unknown mapping parameter {name!r}")
        return params[name]

    @jmespath_functions.signature({"types": ["string"]})
    def _func_var(self, name: str) -> Any:
        return _SCOPE.get().vars.get(name)

    @jmespath_functions.signature({"types": ["string"]})
    def _func_field(self, name: str) -> Any:
        return _SCOPE.get().fields.get(name)

    @jmespath_functions.signature()
    def _func_root(self) -> Any:
        return _SCOPE.get().root

    @jmespath_functions.signature({"types": ["string"]}, _ANY)
    def _func_catalog(self, name: str, key: Any) -> Any:
        if key is None:
            return None
        return catalog_entry(_SCOPE.get().catalogs.get(name, {}), _text(key))

    @jmespath_functions.signature({"types": ["array", "null"]}, {"types": ["string"]})
    def _func_unwrap(self, items: list[Any] | None, key: str) -> list[Any]:
        return [item[key] if isinstance(item, dict) and key in item else item for item in items or []]

    @jmespath_functions.signature({"types": ["array", "null"]})
    def _func_dsum(self, items: list[Any] | None) -> Decimal:
        return sum((_number_or_zero(item) for item in items or []), Decimal(0))

    @jmespath_functions.signature(_ANY, _ANY)
    def _func_add(self, left: Any, right: Any) -> Decimal:
        return _number_or_zero(left) + _number_or_zero(right)

    @jmespath_functions.signature(_ANY, _ANY)
    def _func_sub(self, left: Any, right: Any) -> Decimal:
        return _number_or_zero(left) - _number_or_zero(right)

    @jmespath_functions.signature(_ANY, _ANY)
    def _func_mul(self, left: Any, right: Any) -> Decimal:
        return _number_or_zero(left) * _number_or_zero(right)

    @jmespath_functions.signature(_ANY, _ANY, _ANY)
    def _func_prorate(self, value: Any, part: Any, whole: Any) -> Decimal:
        denominator = _number_or_zero(whole)
        if denominator == 0:
            return Decimal("0.00")
        share = _number_or_zero(value) * _number_or_zero(part) / denominator
        return share.quantize(_CENTS, rounding=ROUND_HALF_UP)

    @jmespath_functions.signature({"types": ["string", "null"]}, {"types": ["string"]})
    def _func_split(self, text: str | None, separator: str) -> list[str] | None:
        return None if text is None else text.split(separator)

    @jmespath_functions.signature(_ANY)
    def _func_str(self, value: Any) -> str | None:
        return None if value is None else _text(value)


_OPTIONS = jmespath.Options(custom_functions=_Functions())
# One interpreter for every search: ParsedResult.search builds a new one (and its method cache) per call.
_INTERPRETER = TreeInterpreter(_OPTIONS)
FUNCTION_NAMES: frozenset[str] = frozenset(_Functions.FUNCTION_TABLE)
"""Every function a mapping expression may call: JMESPath's own and the mapping's."""


def _function_calls(node: Mapping[str, Any]) -> Iterator[str]:
    if node.get("type") == "function_expression":
        yield str(node["value"])
    for child in node.get("children", ()):
        if isinstance(child, Mapping):
            yield from _function_calls(child)


_WORD = re.compile(r"[^\W\d]\w*")
_QUOTES = {"'": "'", '"': '"', "`": "`"}


def quote_identifiers(text: str) -> str:
    """Quote bare identifiers with non-ASCII letters, which JMESPath does not accept unquoted.

    1C names are Cyrillic; with this, ``Товары[].Сумма`` means ``"Товары"[]."Сумма"``. Text inside quotes and
    literals is left alone.

    Example:
        >>> quote_identifiers("Товары[?Сумма > `0`].LineNumber")
        '"Товары"[?"Сумма" > `0`].LineNumber'
    """
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char in _QUOTES:
            end = index + 1
            while end < len(text) and text[end] != char:
                end += 2 if text[end] == "\\" else 1
            out.append(text[index : end + 1])
            index = end + 1
            continue
        match = _WORD.match(text, index)
        if match is None:
            out.append(char)
            index += 1
            continue
        word = match.group()
        out.append(word if word.isascii() else f'"{word}"')
        index = match.end()
    return "".join(out)


def compile_expression(text: str) -> ParsedResult:
    """Compile a JMESPath expression, refusing syntax errors and unknown functions (``ValueError``).

    Bare non-ASCII identifiers are quoted first (:func:`quote_identifiers`).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("an expression must be a non-empty string")
    try:
        parsed = jmespath.compile(quote_identifiers(text))
    except jmespath_errors.JMESPathError as exc:
        raise ValueError(f"bad JMESPath expression {text!r}: {_one_line(exc)}") from None
    unknown = sorted(set(_function_calls(parsed.parsed)) - FUNCTION_NAMES)
    if unknown:
        raise ValueError(f"unknown function {unknown[0]}() in expression {text!r}")
    parsed.expression = text  # evidence shows what the integrator wrote, not the quoted form
    parsed.fast_path = _field_chain(parsed.parsed)  # type: ignore[attr-defined]
    return parsed


def _field_chain(node: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The keys of a plain path (``a``, ``a.b.c``), which is read without the interpreter; else None."""
    if node.get("type") == "field":
        return (str(node["value"]),)
    if node.get("type") == "subexpression":
        parts = [_field_chain(child) for child in node["children"]]
        if all(part is not None for part in parts):
            return tuple(key for part in parts for key in part or ())
    return None


def _walk(keys: tuple[str, ...], node: Any) -> Any:
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def evaluate(expression: ParsedResult, node: Any, scope: Scope) -> Any:
    """Evaluate ``expression`` on ``node`` with ``scope`` visible to the mapping functions.

    Raises:
        ValueError: the expression failed on this document (wrong type for a function, bad number, …).
    """
    keys = getattr(expression, "fast_path", None)
    if keys is not None:
        return _walk(keys, node)
    token = _SCOPE.set(scope)
    try:
        return _INTERPRETER.visit(expression.parsed, node)
    except (jmespath_errors.JMESPathError, ValueError, ArithmeticError) as exc:
        raise ValueError(_one_line(exc)) from None
    finally:
        _SCOPE.reset(token)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
