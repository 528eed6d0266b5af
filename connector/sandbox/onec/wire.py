"""Values as 1C's standard OData interface writes them: typed Python values in, 1C's JSON text out.

Rows inside the emulator hold Python values by EDM type — ``Guid`` a lower-case string, ``DateTime`` a naive
local datetime (1C dates carry no zone), ``Double`` a :class:`~decimal.Decimal`, ``Int64`` an :class:`Int64`
(an ``int`` that 1C writes as a JSON *string*), ``Boolean`` a bool. :func:`dump_json` writes them the way 1C does:
zone-less dates, empty date ``0001-01-01T00:00:00``, doubles as JSON numbers straight from the decimal digits
(never through binary floating point), Int64 quoted.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.errors import ConnectorError

__all__ = [
    "EMPTY_DATE",
    "EMPTY_GUID",
    "Int64",
    "OneCServiceError",
    "coerce",
    "default_value",
    "dump_json",
    "format_datetime",
    "format_decimal",
    "parse_datetime",
]

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
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
    return value.strftime("%Y-%m-%dT%H:%M:%S") if value.year >= 1000 else "0001-01-01T00:00:00"


def parse_datetime(text: str) -> datetime:
    """Read a 1C/OData datetime (``2026-11-19T14:32:07``, seconds optional); an offset is dropped as 1C does."""
    value = datetime.fromisoformat(text.strip().rstrip("Z"))
    return value.replace(tzinfo=None, microsecond=0)


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
    "Double": Decimal(0),
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


def _to_guid(name: str, value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as exc:
        raise _bad(name, value, "Guid") from exc


def _to_datetime(name: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None, microsecond=0)
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
        return Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise _bad(name, value, "Double") from exc


def _to_int(name: str, value: Any, edm_type: str) -> int:
    if isinstance(value, bool):
        raise _bad(name, value, edm_type)
    try:
        number = int(Decimal(str(value)))
    except (InvalidOperation, ValueError) as exc:
        raise _bad(name, value, edm_type) from exc
    return Int64(number) if edm_type == "Int64" else number


def coerce(name: str, edm_type: str, value: Any) -> Any:
    """Turn a value from a JSON body or a Python caller into the typed value stored for ``edm_type``.

    Raises:
        OneCServiceError: code 1 (HTTP 400) when the value cannot be read as that type, as 1C answers.
    """
    if value is None:
        return default_value(edm_type)
    if edm_type == "Guid":
        return _to_guid(name, value)
    if edm_type == "DateTime":
        return _to_datetime(name, value)
    if edm_type == "Double":
        return _to_decimal(name, value)
    if edm_type in ("Int16", "Int32", "Int64"):
        return _to_int(name, value, edm_type)
    if edm_type == "Boolean":
        if not isinstance(value, bool):
            raise _bad(name, value, edm_type)
        return value
    return str(value)
