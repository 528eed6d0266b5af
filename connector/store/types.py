"""Column types that behave the same on SQLite and PostgreSQL.

* :class:`Amount` — money and points as exact :class:`~decimal.Decimal`, stored as integer minor units
  (kopecks, hundredths of a point) in a ``BIGINT``. SQLite's ``NUMERIC`` goes through ``float``; integers do not.
* :class:`UTCDateTime` — timezone-aware datetimes in and out. PostgreSQL keeps ``timestamptz``; SQLite has no
  zones, so the value is stored as naive UTC and handed back as aware UTC.
* :data:`JSONDocument` — ``JSON`` (``JSONB`` on PostgreSQL). Money inside JSON stays a string; the engine's
  serializer writes any stray :class:`~decimal.Decimal` as a string and reads floats back as Decimal.
* :data:`Id` — a 64-bit surrogate key that still auto-increments on SQLite (only ``INTEGER PRIMARY KEY`` does).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "Amount",
    "Id",
    "JSONBytes",
    "JSONDocument",
    "UTCDateTime",
    "canonical_json",
    "json_deserializer",
    "json_serializer",
    "stable_json",
]

_MINOR_UNITS = 2

Id: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")
"""Surrogate primary keys: BIGINT, but INTEGER on SQLite so that it aliases the auto-incrementing rowid."""

JSONDocument: TypeEngine[Any] = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
"""A JSON value; JSONB on PostgreSQL so it can be indexed and compared later. Python ``None`` is SQL NULL (not the
JSON value ``null``): ``IS NULL`` tells a missing value, e.g. a payload not mapped (migration 0003)."""


class Amount(TypeDecorator[Decimal]):
    """Money or points as an exact Decimal with at most two decimals, stored as integer minor units.

    A value with more than two decimals, a float or a non-finite number is refused rather than rounded:
    rounding belongs to the program rules, never to storage.

    Example:
        ``Decimal("-150.5")`` is stored as ``-15050`` and read back as ``Decimal("-150.50")``.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"an amount must be a Decimal or int, not {type(value).__name__}: {value!r}")
        number = Decimal(value)
        if not number.is_finite():
            raise ValueError(f"an amount must be finite, not {number}")
        minor = number.scaleb(_MINOR_UNITS)
        if minor != minor.to_integral_value():
            raise ValueError(f"an amount has at most {_MINOR_UNITS} decimals, not {number}")
        return int(minor)

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(int(value)).scaleb(-_MINOR_UNITS)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, stored in UTC and always returned aware in UTC.

    Naive datetimes are refused: a time without a zone is a bug waiting for the first store in another zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, not {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"a naive datetime cannot be stored, give it a zone: {value.isoformat()}")
        utc = value.astimezone(UTC)
        # SQLite has no zone type: keep naive UTC there, the zone is put back on the way out.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError(f"a naive datetime cannot go into JSON: {value.isoformat()}")
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable: {value!r}")


class JSONBytes(bytes):
    """JSON already encoded — a raw payload exactly as its system sent it, in UTF-8 — for a JSON column.

    The caller vouches that it is JSON in valid UTF-8 (the adapter checked it). The journal's own inserts on
    SQLite bind the bytes as they are, cast to text in SQL (:meth:`connector.store.journal.Journal.land`):
    nothing is decoded or encoded again. Anywhere else it goes in as its text (SQLite keeps it byte for byte;
    PostgreSQL's JSONB parses it, keeping every number exact).
    """

    __slots__ = ()


def json_serializer(value: Any) -> str:
    """Serialize a JSON column value; Decimal becomes a string so money never passes through float.

    :class:`JSONBytes` goes in as its text, not encoded again.
    """
    if isinstance(value, JSONBytes):
        return value.decode("utf-8")
    return json.dumps(value, ensure_ascii=False, default=_json_default, separators=(",", ":"))


def json_deserializer(text: str | bytes) -> Any:
    """Deserialize a JSON column value, reading any number with a fraction as Decimal."""
    return json.loads(text, parse_float=Decimal)


def _reject_floats(value: Any, path: str) -> None:
    if isinstance(value, float):
        raise TypeError(
            f"{path or 'value'} is a float ({value!r}); money and points go as strings or Decimal"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _reject_floats(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _reject_floats(item, f"{path}[{index}]")


def stable_json(value: Any) -> str:
    """:func:`canonical_json` without the walk that refuses floats: for values that cannot hold any.

    A payload decoded with ``parse_float=Decimal`` (every adapter's) has no floats, so checking for them is
    wasted work on the pull's hot path; for such a value the text is exactly :func:`canonical_json`'s.
    """
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=_json_default, separators=(",", ":"))


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys, the form payload hashes are computed over; floats are refused.

    Raises:
        TypeError: the value holds a float (named by its path) or something JSON cannot represent.
    """
    _reject_floats(value, "")
    return stable_json(value)
