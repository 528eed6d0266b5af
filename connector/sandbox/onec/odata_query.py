"""OData v3 query options as 1C's standard interface reads them: ``$filter``, ``$orderby``, ``$select``, paging.

``$filter`` is parsed by recursive descent straight into Python closures over stored rows (reference/onec.md
§1.4): comparisons ``eq ne gt ge lt le``, ``and``/``or``/``not``, parentheses, arithmetic ``add sub mul div
mod``, literals ``guid'…'``, ``datetime'…'``, ``'O''Brien'``, ``true``/``false``, ``null`` and numbers (``10``,
``2.5``, ``2.5M``, ``10L``), functions (``substringof``, ``startswith``, ``endswith``, ``length``, ``indexof``,
``substring``, ``tolower``, ``toupper``, ``trim``, ``concat``, ``year`` … ``second``) and ``Section/any(d: …)`` /
``all`` over tabular sections. A field compared with a literal of another type is a parse error (code 14), as
are unknown fields — 1C refuses both rather than guessing.

Beside the predicate, a parsed filter says which rows an index could pick out without reading every row
(:class:`Narrowing`): ``substringof('…', Field)`` on a string field, and the ``or``/``and`` of such terms. The
predicate still decides every row; a narrowing only spares a scan of rows that cannot match.

Example:
    >>> match = compile_filter("Description eq 'O''Brien' and not DeletionMark", {"Description": "String",
    ...                        "DeletionMark": "Boolean"})
    >>> match({"Description": "O'Brien", "DeletionMark": False})
    True
"""

from __future__ import annotations

import operator
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.sandbox.onec.layout import Layout
from connector.sandbox.onec.wire import OneCServiceError, parse_datetime

__all__ = [
    "AllOf",
    "AnyOf",
    "Contains",
    "Evaluator",
    "Fields",
    "Narrowing",
    "Query",
    "compile_fields_filter",
    "compile_filter",
    "parse_query",
    "query_error",
]

Evaluator = Callable[[Any], Any]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<typed>(?:guid|datetime|datetimeoffset|time|binary|X)'[^']*')
    | (?P<string>'(?:[^']|'')*')
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?)
    | (?P<name>[^\W\d]\w*)
    | (?P<punct>[(),/:])
    )""",
    re.VERBOSE,
)
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "mod": operator.mod,
}
_LITERAL_FITS = {
    "str": {"String"},
    "guid": {"Guid", "String"},
    "datetime": {"DateTime"},
    "number": {"Double", "Int16", "Int32", "Int64"},
    "bool": {"Boolean"},
}
_NUMBER_TYPES = _LITERAL_FITS["number"]


def query_error(message: str, **context: Any) -> OneCServiceError:
    """1C's answer to a query it cannot parse: code 14, HTTP 400."""
    return OneCServiceError(message, code="14", status=400, **context)


@dataclass(frozen=True)
class Contains:
    """Rows whose string at ``key`` (a dict key or tuple position) contains ``needle``."""

    key: Any
    needle: str


@dataclass(frozen=True)
class AnyOf:
    """Rows of any of the parts (``or``)."""

    parts: tuple[Narrowing, ...]


@dataclass(frozen=True)
class AllOf:
    """Rows of every one of the parts (``and``; a part may be left out: the result only grows)."""

    parts: tuple[Narrowing, ...]


Narrowing = Contains | AnyOf | AllOf
"""A superset of the rows a filter matches, as an index can find them; the predicate decides each of them."""


@dataclass(frozen=True)
class _Node:
    evaluate: Evaluator
    kind: str | None = None  # literal kind (str, guid, …) for constants, EDM type for fields
    constant: Any = None
    field: str | None = None
    is_const: bool = False
    key: Any = None
    narrowing: Narrowing | None = None


def _const(value: Any, kind: str | None) -> _Node:
    return _Node(lambda _row: value, kind, value, is_const=True)


@dataclass(frozen=True)
class Fields:
    """What a query may name in rows of one type and where each value sits (a dict key or a tuple position)."""

    types: Mapping[str, str]
    keys: Mapping[str, Any]
    sections: Mapping[str, tuple[Any, Fields]]

    @classmethod
    def of_dicts(
        cls, types: Mapping[str, str], sections: Mapping[str, Mapping[str, str]] | None = None
    ) -> Fields:
        """Fields of rows held as dicts keyed by property name."""
        lines = {name: (name, cls.of_dicts(line)) for name, line in (sections or {}).items()}
        return cls(types, {name: name for name in types}, lines)

    @classmethod
    def of_layout(cls, layout: Layout) -> Fields:
        """Fields of packed rows (:class:`~connector.sandbox.onec.layout.Layout`)."""
        lines = {
            name: (layout.section_index[name], cls.of_layout(line)) for name, line in layout.sections.items()
        }
        return cls(layout.types, layout.index, lines)


class _Parser:
    def __init__(self, text: str, fields: Fields) -> None:
        self.text = text
        self.tokens = self._tokenize(text)
        self.pos = 0
        self.scopes: list[tuple[str, Fields]] = [("", fields)]

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        tokens, index = [], 0
        while index < len(text):
            if text[index:].strip() == "":
                break
            match = _TOKEN.match(text, index)
            if match is None or match.lastgroup is None:
                raise query_error(f"Ошибка разбора выражения отбора: неожиданный символ в позиции {index}")
            tokens.append((match.lastgroup, match.group(match.lastgroup)))
            index = match.end()
        return tokens

    def _peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def _next(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise query_error("Ошибка разбора выражения отбора: неожиданный конец выражения")
        self.pos += 1
        return token

    def _expect(self, value: str) -> None:
        token = self._next()
        if token[1] != value:
            raise query_error(f"Ошибка разбора выражения отбора: ожидается '{value}', получено '{token[1]}'")

    def _keyword(self, *words: str) -> str | None:
        token = self._peek()
        if token is not None and token[0] == "name" and token[1] in words:
            self.pos += 1
            return token[1]
        return None

    def parse(self) -> Evaluator:
        return self.parse_node().evaluate

    def parse_node(self) -> _Node:
        node = self._or()
        if self._peek() is not None:
            raise query_error(f"Ошибка разбора выражения отбора: лишний текст '{self._peek()[1]}'")  # type: ignore[index]
        return node

    def _or(self) -> _Node:
        node = self._and()
        while self._keyword("or"):
            other = self._and()
            narrowing = None
            if node.narrowing is not None and other.narrowing is not None:
                narrowing = AnyOf((node.narrowing, other.narrowing))
            node = _Node(_either(node.evaluate, other.evaluate), narrowing=narrowing)
        return node

    def _and(self) -> _Node:
        node = self._not()
        while self._keyword("and"):
            other = self._not()
            parts = tuple(part for part in (node.narrowing, other.narrowing) if part is not None)
            node = _Node(_both(node.evaluate, other.evaluate), narrowing=AllOf(parts) if parts else None)
        return node

    def _not(self) -> _Node:
        if self._keyword("not"):
            inner = self._not().evaluate
            return _Node(lambda row: not inner(row))
        return self._comparison()

    def _comparison(self) -> _Node:
        left = self._additive()
        word = self._keyword(*_COMPARE)
        if word is None:
            return left
        return _compare(_COMPARE[word], left, self._additive())

    def _additive(self) -> _Node:
        node = self._multiplicative()
        while word := self._keyword("add", "sub"):
            node = _arith(_ARITHMETIC[word], node, self._multiplicative())
        return node

    def _multiplicative(self) -> _Node:
        node = self._primary()
        while word := self._keyword("mul", "div", "mod"):
            node = _arith(_ARITHMETIC[word], node, self._primary())
        return node

    def _primary(self) -> _Node:
        kind, value = self._next()
        if value == "(":
            node = self._or()
            self._expect(")")
            return node
        if kind == "string":
            return _const(value[1:-1].replace("''", "'"), "str")
        if kind == "typed":
            return _typed_literal(value)
        if kind == "number":
            return _number(value)
        if kind == "name":
            return self._name(value)
        raise query_error(f"Ошибка разбора выражения отбора: неожиданная лексема '{value}'")

    def _name(self, name: str) -> _Node:
        if name in ("true", "false"):
            return _const(name == "true", "bool")
        if name == "null":
            return _const(None, None)
        token = self._peek()
        if token is not None and token[1] == "(":
            return self._function(name)
        return self._path(name)

    def _path(self, name: str) -> _Node:
        scope_var, fields = self.scopes[-1]
        if scope_var and name == scope_var:
            self._expect("/")
            name = self._next()[1]
        elif self._peek() is not None and self._peek()[1] == "/" and name in fields.sections:  # type: ignore[index]
            self.pos += 1
            return self._lambda(name, *fields.sections[name])
        edm_type = fields.types.get(name)
        if edm_type is None:
            raise query_error(f"Ошибка разбора выражения отбора: неизвестное поле '{name}'", field=name)
        key = fields.keys[name]
        return _Node(operator.itemgetter(key), edm_type, field=name, key=key)

    def _lambda(self, section: str, key: Any, lines: Fields) -> _Node:
        word = self._keyword("any", "all")
        if word is None:
            raise query_error(f"Ошибка разбора выражения отбора: после '{section}/' ожидается any или all")
        self._expect("(")
        variable = self._next()[1]
        self._expect(":")
        self.scopes.append((variable, lines))
        body = self._or().evaluate
        self.scopes.pop()
        self._expect(")")
        quantifier = any if word == "any" else all
        return _Node(lambda row: quantifier(bool(body(line)) for line in row[key]))

    def _function(self, name: str) -> _Node:
        function = _FUNCTIONS.get(name.lower())
        if function is None:
            raise query_error(f"Ошибка разбора выражения отбора: неизвестная функция '{name}'")
        self._expect("(")
        args = [self._or()]
        while self._peek() is not None and self._peek()[1] == ",":  # type: ignore[index]
            self.pos += 1
            args.append(self._or())
        self._expect(")")
        evaluators = [arg.evaluate for arg in args]
        return _Node(lambda row: function(*(arg(row) for arg in evaluators)), narrowing=_contains(name, args))


def _contains(name: str, args: list[_Node]) -> Contains | None:
    """``substringof('literal', StringField)`` as a :class:`Contains`; None for anything else."""
    if name.lower() != "substringof" or len(args) != 2:
        return None
    needle, haystack = args
    if not (
        needle.is_const and needle.kind == "str" and haystack.field is not None and haystack.kind == "String"
    ):
        return None
    return Contains(haystack.key, str(needle.constant))


def _either(a: Evaluator, b: Evaluator) -> Evaluator:
    return lambda row: bool(a(row)) or bool(b(row))


def _both(a: Evaluator, b: Evaluator) -> Evaluator:
    return lambda row: bool(a(row)) and bool(b(row))


def _typed_literal(text: str) -> _Node:
    prefix, _, rest = text.partition("'")
    body = rest[:-1]
    try:
        if prefix == "guid":
            return _const(str(uuid.UUID(body)), "guid")
        if prefix in ("datetime", "datetimeoffset"):
            return _const(parse_datetime(body), "datetime")
    except ValueError as exc:
        raise query_error(f"Ошибка разбора выражения отбора: неверный литерал {text}") from exc
    raise query_error(f"Ошибка разбора выражения отбора: неподдерживаемый литерал {text}")


def _number(text: str) -> _Node:
    digits = text.rstrip("mMdDfFlL")
    try:
        value: int | Decimal = int(digits) if re.fullmatch(r"-?\d+", digits) else Decimal(digits)
    except InvalidOperation as exc:
        raise query_error(f"Ошибка разбора выражения отбора: неверное число {text}") from exc
    return _const(value, "number")


def _check_types(left: _Node, right: _Node) -> None:
    field, literal = (left, right) if left.field else (right, left)
    if field.field is None or not literal.is_const or literal.kind not in _LITERAL_FITS:
        return
    if field.kind not in _LITERAL_FITS[literal.kind]:
        raise query_error(
            f"Ошибка разбора выражения отбора: несовместимые типы при сравнении поля '{field.field}' "
            f"(Edm.{field.kind}) со значением {literal.constant!r}",
            field=field.field,
        )


def _compare(test: Callable[[Any, Any], bool], left: _Node, right: _Node) -> _Node:
    _check_types(left, right)
    if left.field is not None and right.is_const:
        key, constant = left.key, right.constant

        # the common shape "Field op literal" gets a closure without a second call: it is the hot path
        def field_vs_literal(row: Any) -> bool:
            try:
                return test(row[key], constant)
            except TypeError:
                return False

        return _Node(field_vs_literal)
    a, b = left.evaluate, right.evaluate
    return _Node(lambda row: _safe(test, a(row), b(row)))


def _safe(test: Callable[[Any, Any], bool], a: Any, b: Any) -> bool:
    try:
        return test(a, b)
    except TypeError:
        return False


def _arith(function: Callable[[Any, Any], Any], left: _Node, right: _Node) -> _Node:
    a, b = left.evaluate, right.evaluate

    def evaluate(row: dict[str, Any]) -> Any:
        x, y = a(row), b(row)
        try:
            return function(Decimal(x) if isinstance(x, int) else x, Decimal(y) if isinstance(y, int) else y)
        except (TypeError, ArithmeticError):
            return None

    kind = "number" if {left.kind, right.kind} <= (_NUMBER_TYPES | {"number"}) else None
    return _Node(evaluate, kind)


def _substring(text: str, start: int, length: int | None = None) -> str:
    return text[start:] if length is None else text[start : start + length]


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "substringof": lambda needle, haystack: str(needle) in str(haystack),
    "startswith": lambda text, prefix: str(text).startswith(str(prefix)),
    "endswith": lambda text, suffix: str(text).endswith(str(suffix)),
    "length": lambda text: len(str(text)),
    "indexof": lambda text, needle: str(text).find(str(needle)),
    "substring": _substring,
    "tolower": lambda text: str(text).lower(),
    "toupper": lambda text: str(text).upper(),
    "trim": lambda text: str(text).strip(),
    "concat": lambda a, b: f"{a}{b}",
    "year": lambda moment: moment.year if isinstance(moment, datetime) else None,
    "month": lambda moment: moment.month if isinstance(moment, datetime) else None,
    "day": lambda moment: moment.day if isinstance(moment, datetime) else None,
    "hour": lambda moment: moment.hour if isinstance(moment, datetime) else None,
    "minute": lambda moment: moment.minute if isinstance(moment, datetime) else None,
    "second": lambda moment: moment.second if isinstance(moment, datetime) else None,
}


def compile_filter(
    text: str, types: Mapping[str, str], sections: Mapping[str, Mapping[str, str]] | None = None
) -> Evaluator:
    """Compile an OData v3 ``$filter`` expression into a predicate over typed rows.

    Raises:
        OneCServiceError: code 14 (HTTP 400) on any syntax error, unknown field or type mismatch.
    """
    return _Parser(text, Fields.of_dicts(types, sections)).parse()


def compile_fields_filter(text: str, fields: Fields) -> Evaluator:
    """:func:`compile_filter` over rows described by ``fields`` (e.g. packed rows of a layout)."""
    return _Parser(text, fields).parse()


@dataclass(frozen=True)
class Query:
    """Parsed query options of one collection request."""

    filter_text: str = ""
    predicate: Evaluator | None = None
    narrowing: Narrowing | None = None
    order: tuple[tuple[Any, bool], ...] = ()  # (row key or position, descending)
    select: tuple[str, ...] | None = None
    top: int | None = None
    skip: int = 0
    inlinecount: bool = False


def _order(text: str, fields: Fields) -> tuple[tuple[Any, bool], ...]:
    keys = []
    for part in filter(None, (item.strip() for item in text.split(","))):
        words = part.split()
        if (
            len(words) > 2
            or words[0] not in fields.types
            or (len(words) == 2 and words[1] not in ("asc", "desc"))
        ):
            raise query_error(f"Ошибка разбора выражения упорядочивания: '{part}'", field=words[0])
        keys.append((fields.keys[words[0]], len(words) == 2 and words[1] == "desc"))
    return tuple(keys)


def _select(text: str, known: set[str]) -> tuple[str, ...] | None:
    names = [item.strip() for item in text.split(",") if item.strip()]
    if not names or "*" in names:
        return None
    chosen = []
    for name in names:
        head = name.split("/")[0]
        if head not in known and f"{head}_Key" not in known:
            raise query_error(f"Ошибка разбора выражения выбора: неизвестное поле '{name}'", field=name)
        if head in known and head not in chosen:
            chosen.append(head)
    return tuple(chosen)


def _count(params: Mapping[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    if not text.isdigit():
        raise query_error(f"Неверное значение параметра {name}: '{text}'")
    return int(text)


def parse_query(params: Mapping[str, str], fields: Fields) -> Query:
    """Read ``$filter``, ``$orderby``, ``$select``, ``$top``, ``$skip`` and ``$inlinecount`` of a request."""
    filter_text = params.get("$filter", "").strip()
    inlinecount = params.get("$inlinecount", "none")
    if inlinecount not in ("allpages", "none"):
        raise query_error(f"Неверное значение параметра $inlinecount: '{inlinecount}'")
    node = _Parser(filter_text, fields).parse_node() if filter_text else None
    return Query(
        filter_text=filter_text,
        predicate=node.evaluate if node is not None else None,
        narrowing=node.narrowing if node is not None else None,
        order=_order(params.get("$orderby", ""), fields),
        select=_select(params.get("$select", ""), set(fields.types) | set(fields.sections)),
        top=_count(params, "$top"),
        skip=_count(params, "$skip") or 0,
        inlinecount=inlinecount == "allpages",
    )
