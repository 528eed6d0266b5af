"""JSON on the wire with exact decimals: numbers parse as ``Decimal`` and ``Decimal`` is written as a JSON number."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

__all__ = ["dumps_json", "loads_items", "loads_json"]


def loads_json(content: bytes | str) -> Any:
    """Parse JSON with floats as :class:`~decimal.Decimal` (money never passes through binary floating point)."""
    return json.loads(content, parse_float=Decimal)


_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_VALUE = msgspec.json.Decoder(float_hook=Decimal)  # the hook gets the literal's text: exact, never a float


def loads_items(content: bytes, key: str) -> tuple[dict[str, Any], list[tuple[Any, str]]]:
    """Parse a page whose items are the list at member ``key``, keeping each item's JSON text as it was sent.

    The journal keeps a document's raw payload exactly as the system sent it, and its version is the hash of
    that text: nothing is encoded again. Numbers with a fraction parse as :class:`~decimal.Decimal`, as in
    :func:`loads_json`.

    Returns:
        The body without ``key`` (decoded), and each item with its text; no items when ``key`` is absent or null.

    Raises:
        ValueError: the body is not JSON, not an object, or ``key`` is not a list.

    Example:
        >>> loads_items(b'{"items": [{"id": "a", "sum": 1.10}], "paging": {}}', "items")
        ({'paging': {}}, [({'id': 'a', 'sum': Decimal('1.10')}, '{"id": "a", "sum": 1.10}')])
    """
    try:
        members = _MEMBERS.decode(content)
        body = {name: _VALUE.decode(value) for name, value in members.items() if name != key}
        raw = members.get(key)
        texts = [] if raw is None or bytes(raw) == b"null" else _RAW_LIST.decode(raw)
        items = [(_VALUE.decode(text), bytes(text).decode("utf-8")) for text in texts]
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a JSON object with a list {key!r}: {exc}") from None
    return body, items


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
