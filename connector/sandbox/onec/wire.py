"""Values as 1C's standard OData interface writes them: typed Python values in, 1C's JSON text out.

Rows inside the emulator hold Python values by EDM type — ``Guid`` a lower-case string, ``DateTime`` a naive
local datetime (1C dates carry no zone), ``Double`` a :class:`~decimal.Decimal`, ``Int64`` an :class:`Int64`
(an ``int`` that 1C writes as a JSON *string*), ``Boolean`` a bool. :func:`dump_json` writes them the way 1C does:
zone-less dates, empty date ``0001-01-01T00:00:00``, doubles as JSON numbers straight from the decimal digits
(never through binary floating point), Int64 quoted.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from connector.errors import ConnectorError

__all__ = [
    "EMPTY_DATE",
    "EMPTY_GUID",
    "Int64",
    "OneCServiceError",
    "canonical_decimal",
    "canonical_guid",
    "coerce",
    "coercers",
    "default_value",
    "dump_json",
    "format_datetime",
    "format_decimal",
    "json_template",
    "parse_datetime",
]

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
_ZERO = Decimal(0)
_ONE = Decimal(1)
EMPTY_DATE = datetime(1, 1, 1)  # 1C's empty date is zone-less by definition


class OneCServiceError(ConnectorError):
    """A refusal of the emulated 1C, rendered as an ``odata.error`` body or a SOAP fault.

    Args:
        message: the Russian text 1C would put in ``message.value``.
        code: 1C's ``odata.error.code`` (``"9"`` not found, ``"14"`` bad query, ``"-1"`` internal, …).
        status: the HTTP status real 1C answers with for that code.
    """

    def __init__(self, message: str, *, code: str = "-1", status: int = 500, **context: Any) -> None:
        super().__init__(message, **context)
        self.code = code
        self.status = status


class Int64(int):
    """An Edm.Int64 value: compares as an integer, written by 1C as a JSON string (``"LineNumber": "1"``)."""

    __slots__ = ()


def format_datetime(value: datetime) -> str:
    """Write a datetime as 1C does: local, no offset, whole seconds."""
    return value.isoformat(timespec="seconds")


def parse_datetime(text: str) -> datetime:
    """Read a 1C/OData datetime (``2026-11-19T14:32:07``, seconds optional); an offset is dropped as 1C does."""
    value = datetime.fromisoformat(text.strip().rstrip("Z"))
    return value.replace(tzinfo=None, microsecond=0)


@lru_cache(maxsize=1 << 16)
def canonical_decimal(value: Decimal) -> Decimal:
    """The stored form of a double: no trailing zeros, no exponent, so ``str()`` writes what 1C writes.

    Cached: prices and quantities recur, and equal amounts then share one object in memory.
    """
    if not value:
        return _ZERO
    value = value.normalize()
    return value.quantize(_ONE) if "E" in str(value) else value


def format_decimal(value: Decimal) -> str:
    """Digits of a decimal as a JSON number: ``2350``, ``117.5``, ``0`` — no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _dump(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Int64):
        out.append(f'"{int(value)}"')
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, Decimal):
        out.append(format_decimal(value))
    elif isinstance(value, datetime):
        out.append(f'"{format_datetime(value)}"')
    elif isinstance(value, dict):
        _dump_object(value, out)
    elif isinstance(value, list | tuple):
        _dump_array(value, out)
    else:
        raise TypeError(f"cannot write {type(value).__name__} as 1C JSON")


def _dump_object(value: dict[str, Any], out: list[str]) -> None:
    out.append("{")
    for index, (key, item) in enumerate(value.items()):
        if index:
            out.append(",")
        out.append(json.dumps(key, ensure_ascii=False))
        out.append(":")
        _dump(item, out)
    out.append("}")


def _dump_array(value: list[Any] | tuple[Any, ...], out: list[str]) -> None:
    out.append("[")
    for index, item in enumerate(value):
        if index:
            out.append(",")
        _dump(item, out)
    out.append("]")


def dump_json(value: Any) -> str:
    """Serialize typed row values as 1C JSON text.

    Example:
        >>> dump_json({"LineNumber": Int64(1), "Сумма": Decimal("117.50"), "Date": datetime(2026, 11, 19, 14, 32, 7)})
        '{"LineNumber":"1","Сумма":117.5,"Date":"2026-11-19T14:32:07"}'
    """
    out: list[str] = []
    _dump(value, out)
    return "".join(out)


def default_value(edm_type: str) -> Any:
    """The value 1C gives an attribute nobody filled."""
    return _DEFAULTS[edm_type]


_DEFAULTS: dict[str, Any] = {
    "Guid": EMPTY_GUID,
    "String": "",
    "DateTime": EMPTY_DATE,
    "Boolean": False,
    "Double": _ZERO,
    "Int16": 0,
    "Int32": 0,
    "Int64": Int64(0),
}


def _bad(name: str, value: Any, edm_type: str) -> OneCServiceError:
    return OneCServiceError(
        f"Ошибка разбора значения свойства '{name}': ожидается значение типа Edm.{edm_type}, получено {value!r}",
        code="1",
        status=400,
        field=name,
    )


_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@lru_cache(maxsize=1 << 18)
def canonical_guid(text: str) -> str:
    """A GUID in the lower-case 8-4-4-4-12 form 1C writes (cached; raises ValueError when it is not one)."""
    # the same few thousand refs (stores, products, partners, the empty GUID) recur in every document
    return text if _GUID.fullmatch(text) else str(uuid.UUID(text))


def _to_guid(name: str, value: Any) -> str:
    try:
        return canonical_guid(str(value))
    except ValueError as exc:
        raise _bad(name, value, "Guid") from exc


def _to_datetime(name: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        return (
            value
            if value.tzinfo is None and not value.microsecond
            else value.replace(tzinfo=None, microsecond=0)
        )
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)  # 1C dates are zone-less
    try:
        return parse_datetime(str(value))
    except ValueError as exc:
        raise _bad(name, value, "DateTime") from exc


def _to_decimal(name: str, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise _bad(name, value, "Double")
    try:
        # a float from a careless caller goes through its shortest repr, not its binary expansion
        number = (
            value if type(value) is Decimal else Decimal(str(value) if isinstance(value, float) else value)
        )
        return canonical_decimal(number)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise _bad(name, value, "Double") from exc


def _to_int(name: str, value: Any, edm_type: str) -> int:
    if isinstance(value, bool):
        raise _bad(name, value, edm_type)
    try:
        number = value if type(value) is int else int(Decimal(str(value)))
    except (InvalidOperation, ValueError) as exc:
        raise _bad(name, value, edm_type) from exc
    return Int64(number) if edm_type == "Int64" else number


def _to_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(name, value, "Boolean")
    return value


_COERCE: dict[str, Callable[[str, Any], Any]] = {
    "Guid": _to_guid,
    "DateTime": _to_datetime,
    "Double": _to_decimal,
    "Int16": lambda name, value: _to_int(name, value, "Int16"),
    "Int32": lambda name, value: _to_int(name, value, "Int32"),
    "Int64": lambda name, value: _to_int(name, value, "Int64"),
    "Boolean": _to_bool,
    "String": lambda _name, value: value if isinstance(value, str) else str(value),
}


def coerce(name: str, edm_type: str, value: Any) -> Any:
    """Turn a value from a JSON body or a Python caller into the typed value stored for ``edm_type``.

    Raises:
        OneCServiceError: code 1 (HTTP 400) when the value cannot be read as that type, as 1C answers.
    """
    if value is None:
        return default_value(edm_type)
    return _COERCE[edm_type](name, value)


def coercers(types: dict[str, str]) -> dict[str, Callable[[str, Any], Any]]:
    """Per-property converters for a row type (what :func:`coerce` does, without the per-call dispatch).

    Each is called as ``convert(name, value)`` with a non-None value.
    """
    return {name: _COERCE[edm_type] for name, edm_type in types.items()}


_ENCODE_STRING = json.JSONEncoder(ensure_ascii=False).encode
_BOOLEAN_TEXT = {True: "true", False: "false"}.__getitem__

# (placeholder in the row template, converter or None when %-formatting the stored value is already right):
# GUIDs are canonical strings, decimals are stored canonical (str() gives 1C's digits), Int64 is quoted.
_FORMAT: dict[str, tuple[str, Callable[[Any], str] | None]] = {
    "Guid": ('"%s"', None),
    "String": ("%s", _ENCODE_STRING),
    "Boolean": ("%s", _BOOLEAN_TEXT),
    "DateTime": ('"%s"', format_datetime),
    "Double": ("%s", None),
    "Int64": ('"%d"', None),
    "Int16": ("%d", None),
    "Int32": ("%d", None),
}


def json_template(types: dict[str, str], sections: tuple[str, ...] = ()) -> Callable[..., str]:
    """A writer of one row type as 1C JSON: ``write(values, section_arrays)`` → ``{"Ref_Key":"…",…}``.

    Rows of a type all have the same properties, so one %-template is built once and only strings, booleans and
    dates need a converter per value; ``values`` are the scalars in ``types`` order, ``section_arrays`` the
    already written contents of each tabular section's array.
    """
    pieces, converters = [], []
    for name, edm_type in types.items():
        placeholder, converter = _FORMAT[edm_type]
        pieces.append(f"{_ENCODE_STRING(name).replace('%', '%%')}:{placeholder}")
        converters.append(converter)
    pieces += [f"{_ENCODE_STRING(section).replace('%', '%%')}:[%s]" for section in sections]
    template = "{" + ",".join(pieces) + "}"
    convert = [(index, converter) for index, converter in enumerate(converters) if converter is not None]

    def write(values: tuple[Any, ...], arrays: tuple[str, ...] = ()) -> str:
        if convert:
            row = list(values)
            for index, converter in convert:
                row[index] = converter(row[index])
            values = tuple(row)
        return template % (values + arrays if arrays else values)

    return write
