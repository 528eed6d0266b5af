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
import numbers
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, NamedTuple

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath import functions as jmespath_functions
from jmespath.parser import ParsedResult
from jmespath.visitor import TreeInterpreter

__all__ = [
    "FUNCTION_NAMES",
    "Compiled",
    "Members",
    "Scope",
    "catalog_entry",
    "compile_expression",
    "compile_node",
    "compiled",
    "evaluate",
    "interpret",
    "one_line",
    "quote_identifiers",
    "root_members",
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


_FUNCTIONS = _Functions()
_OPTIONS = jmespath.Options(custom_functions=_FUNCTIONS)
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


# Nodes whose first child is evaluated on the current value and the others on what it gives (a projection's
# elements, a pipe's result); every other node evaluates all its children on the current value.
_LEFT_ONLY = frozenset({
    "subexpression", "index_expression", "projection", "value_projection", "filter_projection", "flatten", "pipe",
})  # fmt: skip
_NOTHING = frozenset({"literal", "index", "slice", "expref", "raw_string"})


class Members(NamedTuple):
    """The top-level members of a document an expression reads: ``read`` for their values, ``tested`` only for
    whether they are true (JMESPath truth: false, null, ``""``, ``[]`` and ``{}`` are false)."""

    read: frozenset[str]
    tested: frozenset[str]


def root_members(expression: ParsedResult, *, truth: bool = False) -> Members | None:
    """The top-level members of a document an expression can read when evaluated on it; None when it can read
    the whole document (``@``, ``root()``).

    An expression sees the document only through these members: evaluated on the document with just them
    (the rest left out), it gives the same result. With ``truth``, only the truth of the result matters (a
    ``select.when``): a member that the expression only tests (``type == 'SELL' && body``) is then in
    ``tested``, and a stand-in of the same truth gives the same answer. An expression reference (``&field``)
    reads the values a function hands it, which come from its other arguments, so it adds nothing itself. The
    scope (``param()``, ``var()``, ``catalog()``) is not the document and is not counted.

    Example:
        >>> root_members(compile_expression("contains(['SELL'], type) && body"), truth=True)
        Members(read=frozenset({'type'}), tested=frozenset({'body'}))
        >>> sorted(root_members(compile_expression("body.positions[0].sum || total")).read)
        ['body', 'total']
        >>> root_members(compile_expression("keys(@)")) is None
        True
    """
    read: set[str] = set()
    tested: set[str] = set()
    if not _root_members(expression.parsed, truth, read, tested):
        return None
    return Members(frozenset(read), frozenset(tested - read))


def _root_members(node: Mapping[str, Any], truth: bool, read: set[str], tested: set[str]) -> bool:
    """Add the members ``node`` reads to ``read`` / ``tested``; False when it may read the whole document."""
    kind = node.get("type")
    if kind == "field":
        (tested if truth else read).add(str(node["value"]))
        return True
    if kind in ("current", "identity") or (kind == "function_expression" and node.get("value") == "root"):
        return False
    if kind in _NOTHING:
        return True
    children = [child for child in node.get("children", ()) if isinstance(child, Mapping)]
    if kind in _LEFT_ONLY:
        children = children[:1]
    # ``!a`` reads only the truth of a; ``a && b`` is a or b, so where only its truth matters, so does theirs.
    keeps = kind == "not_expression" or (truth and kind in ("and_expression", "or_expression"))
    return all(_root_members(child, keeps, read, tested) for child in children)


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
        raise ValueError(f"bad JMESPath expression {text!r}: {one_line(exc)}") from None
    unknown = sorted(set(_function_calls(parsed.parsed)) - FUNCTION_NAMES)
    if unknown:
        raise ValueError(f"unknown function {unknown[0]}() in expression {text!r}")
    parsed.expression = text  # evidence shows what the integrator wrote, not the quoted form
    compiled(parsed)
    return parsed


Compiled = Callable[[Any, Scope], Any]
"""An expression compiled to Python: ``compiled(node, scope)`` is what the interpreter gives for it."""

_SCOPED = frozenset({"param", "var", "field", "root", "catalog"})
_COMPARATORS = TreeInterpreter.COMPARATOR_FUNC


class _UnsupportedError(Exception):
    """A node the compiler leaves to the interpreter (a scope function with a computed name, an unknown
    function): the whole expression is then interpreted."""


def _is_actual_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Number)


def _is_comparable(value: Any) -> bool:
    """What JMESPath's ordering operators accept: numbers and strings (else the comparison is null)."""
    return _is_actual_number(value) or isinstance(value, str)


def _is_false(value: Any) -> bool:
    """JMESPath falsehood, exactly as the interpreter tests it."""
    return value == "" or value == [] or value == {} or value is None or value is False


def compile_node(node: Mapping[str, Any]) -> Compiled:
    """Compile a JMESPath AST node to a closure with the interpreter's semantics, node type by node type.

    Each closure does what :class:`jmespath.visitor.TreeInterpreter` does for its node — same results, same
    errors (function arguments are type-checked by JMESPath's own check whenever the quick check fails) — only
    without walking the tree and dispatching on node types per document. The mapping's scope functions read
    the :class:`Scope` passed in instead of a context variable.

    Raises:
        _UnsupportedError: a node left to the interpreter.
    """
    kind = node["type"]
    children = node.get("children", [])
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise _UnsupportedError(kind)
    return builder(node, [compile_node(child) for child in children if kind not in _LEAVES])


def _field(node: Mapping[str, Any], _: list[Compiled]) -> Compiled:
    key = node["value"]

    def field(value: Any, scope: Scope) -> Any:
        try:
            return value.get(key)
        except AttributeError:
            return None

    return field


def _chain(_: Mapping[str, Any], parts: list[Compiled]) -> Compiled:
    if len(parts) == 2:
        first, second = parts
        return lambda value, scope: second(first(value, scope), scope)

    def chain(value: Any, scope: Scope) -> Any:
        for part in parts:
            value = part(value, scope)
        return value

    return chain


def _literal(node: Mapping[str, Any], _: list[Compiled]) -> Compiled:
    constant = node["value"]
    return lambda value, scope: constant


def _current(_: Mapping[str, Any], __: list[Compiled]) -> Compiled:
    return lambda value, scope: value


def _index(node: Mapping[str, Any], _: list[Compiled]) -> Compiled:
    position = node["value"]

    def index(value: Any, scope: Scope) -> Any:
        if not isinstance(value, list):
            return None
        try:
            return value[position]
        except IndexError:
            return None

    return index


def _slice(node: Mapping[str, Any], _: list[Compiled]) -> Compiled:
    cut = slice(*node["children"])
    return lambda value, scope: value[cut] if isinstance(value, list) else None


def _comparator(node: Mapping[str, Any], parts: list[Compiled]) -> Compiled:
    left, right = parts
    compare = _COMPARATORS[node["value"]]
    if node["value"] in ("eq", "ne"):
        return lambda value, scope: compare(left(value, scope), right(value, scope))

    def ordered(value: Any, scope: Scope) -> Any:
        one, other = left(value, scope), right(value, scope)
        if not (_is_comparable(one) and _is_comparable(other)):
            return None
        return compare(one, other)

    return ordered


def _or(_: Mapping[str, Any], parts: list[Compiled]) -> Compiled:
    left, right = parts

    def either(value: Any, scope: Scope) -> Any:
        matched = left(value, scope)
        return right(value, scope) if _is_false(matched) else matched

    return either


def _and(_: Mapping[str, Any], parts: list[Compiled]) -> Compiled:
    left, right = parts

    def both(value: Any, scope: Scope) -> Any:
        matched = left(value, scope)
        return matched if _is_false(matched) else right(value, scope)

    return both


def _not(_: Mapping[str, Any], parts: list[Compiled]) -> Compiled:
    (inner,) = parts

    def negated(value: Any, scope: Scope) -> Any:
        result = inner(value, scope)
        if _is_actual_number(result) and result == 0:
            return False
        return not result

    return negated


def _projection(_: Mapping[str, Any], parts: list[Compiled]) -> Compiled:
    base, each = parts

    def projection(value: Any, scope: Scope) -> Any:
        items = base(value, scope)
        if not isinstance(items, list):
            return None
        return [current for item in items if (current := each(item, scope)) is not None]

    return projection


def _filter_projection(_: Mapping[str, Any], parts: list[Compiled]) -> Compiled:
    base, each, condition = parts

    def filtered(value: Any, scope: Scope) -> Any:
        items = base(value, scope)
        if not isinstance(items, list):
            return None
        return [
            current
            for item in items
            if not _is_false(condition(item, scope)) and (current := each(item, scope)) is not None
        ]

    return filtered


def _value_projection(_: Mapping[str, Any], parts: list[Compiled]) -> Compiled:
    base, each = parts

    def values(value: Any, scope: Scope) -> Any:
        try:
            items = base(value, scope).values()
        except AttributeError:
            return None
        return [current for item in items if (current := each(item, scope)) is not None]

    return values


def _flatten(_: Mapping[str, Any], parts: list[Compiled]) -> Compiled:
    (base,) = parts

    def flatten(value: Any, scope: Scope) -> Any:
        items = base(value, scope)
        if not isinstance(items, list):
            return None
        merged: list[Any] = []
        for item in items:
            if isinstance(item, list):
                merged.extend(item)
            else:
                merged.append(item)
        return merged

    return flatten


def _multi_list(_: Mapping[str, Any], parts: list[Compiled]) -> Compiled:
    return lambda value, scope: None if value is None else [part(value, scope) for part in parts]


def _multi_dict(node: Mapping[str, Any], parts: list[Compiled]) -> Compiled:
    keys = [child["value"] for child in node["children"]]
    pairs = list(zip(keys, parts, strict=True))
    return lambda value, scope: None if value is None else {key: part(value, scope) for key, part in pairs}


def _key_val_pair(_: Mapping[str, Any], parts: list[Compiled]) -> Compiled:
    return parts[0]


class _Expression:
    """An ``&expression`` argument (``map(&a, list)``, ``sort_by``) running compiled in the caller's scope.

    JMESPath's functions check the type by its name (``_Expression``) and call ``visit(expression, item)``.
    """

    def __init__(self, expression: Mapping[str, Any], body: Compiled, scope: Scope) -> None:
        self.expression, self._body, self._scope = expression, body, scope

    def visit(self, node: Mapping[str, Any], value: Any) -> Any:
        return self._body(value, self._scope)


def _expref(node: Mapping[str, Any], parts: list[Compiled]) -> Compiled:
    (body,) = parts
    inner = node["children"][0]
    return lambda value, scope: _Expression(inner, body, scope)


def _literal_name(node: Mapping[str, Any]) -> str:
    children = node.get("children", [])
    if not children or children[0].get("type") != "literal" or not isinstance(children[0]["value"], str):
        raise _UnsupportedError(node["value"])
    return str(children[0]["value"])


def _scoped(node: Mapping[str, Any], parts: list[Compiled]) -> Compiled:
    """The mapping's scope functions, reading the scope passed in (their names must be literals)."""
    name, arity = node["value"], len(parts)
    if name == "root":
        if arity:
            raise _UnsupportedError(name)
        return lambda value, scope: scope.root
    key = _literal_name(node)
    if name == "catalog":
        if arity != 2:
            raise _UnsupportedError(name)
        entry_key = parts[1]

        def catalog(value: Any, scope: Scope) -> Any:
            wanted = entry_key(value, scope)
            return None if wanted is None else catalog_entry(scope.catalogs.get(key, {}), _text(wanted))

        return catalog
    if arity != 1:
        raise _UnsupportedError(name)
    if name == "var":
        return lambda value, scope: scope.vars.get(key)
    if name == "field":
        return lambda value, scope: scope.fields.get(key)

    def param(value: Any, scope: Scope) -> Any:
        if key not in scope.params:
            raise jmespath_errors.JMESPathError(f"unknown mapping parameter {key!r}")
        return scope.params[key]

    return param


def _function(node: Mapping[str, Any], parts: list[Compiled]) -> Compiled:
    name = node["value"]
    if name in _SCOPED:
        return _scoped(node, parts)
    spec = _FUNCTIONS.FUNCTION_TABLE.get(name)
    if spec is None:
        raise _UnsupportedError(name)  # the interpreter raises JMESPath's unknown-function error
    function, signature = spec["function"], spec["signature"]
    variadic = bool(signature) and signature[-1].get("variadic")
    allowed_types = _FUNCTIONS._get_allowed_pytypes  # type: ignore[attr-defined]
    typed = [allowed_types(argument["types"]) for argument in signature]
    if variadic or len(signature) != len(parts) or any(subtypes for _, subtypes in typed):
        # Arity errors and element type checks: JMESPath's own call, every time.
        return lambda value, scope: _FUNCTIONS.call_function(name, [part(value, scope) for part in parts])
    validate = _FUNCTIONS._validate_arguments  # type: ignore[attr-defined]
    checks = [
        (index, frozenset(types)) for index, (types, _) in enumerate(typed) if signature[index]["types"]
    ]

    def call(value: Any, scope: Scope) -> Any:
        arguments = [part(value, scope) for part in parts]
        for index, allowed in checks:
            if type(arguments[index]).__name__ not in allowed:
                validate(arguments, signature, name)  # raises JMESPath's own type error
        return function(_FUNCTIONS, *arguments)

    return call


_LEAVES = frozenset({"slice"})  # children are not nodes
_BUILDERS: dict[str, Callable[[Mapping[str, Any], list[Compiled]], Compiled]] = {
    "field": _field,
    "subexpression": _chain,
    "index_expression": _chain,
    "pipe": _chain,
    "literal": _literal,
    "current": _current,
    "identity": _current,
    "index": _index,
    "slice": _slice,
    "comparator": _comparator,
    "or_expression": _or,
    "and_expression": _and,
    "not_expression": _not,
    "projection": _projection,
    "filter_projection": _filter_projection,
    "value_projection": _value_projection,
    "flatten": _flatten,
    "multi_select_list": _multi_list,
    "multi_select_dict": _multi_dict,
    "key_val_pair": _key_val_pair,
    "expref": _expref,
    "function_expression": _function,
}


def compiled(expression: ParsedResult) -> Compiled | None:
    """The compiled form of an expression (cached on it), or None when the interpreter must evaluate it."""
    try:
        return expression.compiled  # type: ignore[attr-defined, no-any-return]
    except AttributeError:
        pass
    try:
        result: Compiled | None = compile_node(expression.parsed)
    except _UnsupportedError:
        result = None
    expression.compiled = result  # type: ignore[attr-defined]
    return result


def evaluate(expression: ParsedResult, node: Any, scope: Scope) -> Any:
    """Evaluate ``expression`` on ``node`` with ``scope`` visible to the mapping functions.

    The expression runs compiled (:func:`compile_node`) when it can, else through the interpreter.

    Raises:
        ValueError: the expression failed on this document (wrong type for a function, bad number, …).
    """
    function = compiled(expression)
    try:
        if function is not None:
            return function(node, scope)
        token = _SCOPE.set(scope)
        try:
            return _INTERPRETER.visit(expression.parsed, node)
        finally:
            _SCOPE.reset(token)
    except (jmespath_errors.JMESPathError, ValueError, ArithmeticError) as exc:
        raise ValueError(one_line(exc)) from None


def interpret(expression: ParsedResult, node: Any, scope: Scope) -> Any:
    """Evaluate ``expression`` with JMESPath's interpreter only (the reference the compiled form must match)."""
    token = _SCOPE.set(scope)
    try:
        return _INTERPRETER.visit(expression.parsed, node)
    except (jmespath_errors.JMESPathError, ValueError, ArithmeticError) as exc:
        raise ValueError(one_line(exc)) from None
    finally:
        _SCOPE.reset(token)


def one_line(exc: BaseException) -> str:
    """An error's message on one line (JMESPath's span several), as mapping errors quote it."""
    return " ".join(str(exc).split())
