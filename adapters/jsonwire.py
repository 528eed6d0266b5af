"""JSON on the wire with exact decimals: numbers parse as ``Decimal`` and ``Decimal`` is written as a JSON number."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

__all__ = ["dumps_json", "loads_json"]


def loads_json(content: bytes | str) -> Any:
    """Parse JSON with floats as :class:`~decimal.Decimal` (money never passes through binary floating point)."""
    return json.loads(content, parse_float=Decimal)


_DECIMAL_MARK = "\x00decimal:"
_DECIMAL_TOKEN = re.compile(r'"\\u0000decimal:(-?[0-9]+(?:\.[0-9]+)?)"')


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send {value} as JSON")
        return f"{_DECIMAL_MARK}{value:f}"
    if isinstance(value, Mapping):
        return {str(key): _to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def dumps_json(payload: Any) -> bytes:
    """Serialise to UTF-8 JSON, writing :class:`~decimal.Decimal` as an exact JSON number (``423.08``).

    The standard encoder only knows floats, so decimals travel as marked strings and are unquoted afterwards.
    """
    text = json.dumps(_to_jsonable(payload), ensure_ascii=False, separators=(",", ":"))
    return _DECIMAL_TOKEN.sub(r"\1", text).encode("utf-8")
