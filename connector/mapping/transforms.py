"""Transforms: the named steps a mapped value goes through (``transforms: [decimal, {datetime: …}]``).

Each transform is a name, an optional argument (a scalar for the one-argument form, or a mapping) validated when
the mapping file loads, and a function of the value. A null value passes every transform untouched except
``default``. A string argument written ``$name`` is the mapping parameter ``name`` (``zone: $timezone``).

==============  ======================================================================================
``decimal``     exact Decimal; ``{places: 2}`` rounds half up (1C ``Edm.Double`` → kopecks)
``int``         integer (1C Int64 arrives as ``"1"``)
``string``      text; numbers without exponent
``bool``        true/false (also ``"true"``/``"false"``)
``guid``        a 1C GUID; the empty one ``00000000-…`` becomes null
``datetime``    aware datetime: ``{zone: Europe/Moscow}`` (or ``$timezone``) for zone-less local times
                (``zone_from``: a JMESPath on the document giving a zone name first, e.g. the store's),
                ``{offset_ms: time_zone_offset}`` (JMESPath on the document) to keep a till's local offset;
                epoch milliseconds accepted; the 1C empty date ``0001-01-01T00:00:00`` becomes null
``date``        the local calendar date of the same (a store's business date)
``enum``        ``{values: {Пробит: posted}, default: draft}``; a value not in the table without a default
                is an error
``phone``       E.164 (numbers and strings; ``{region: RU}``)
``account``     a ledger identity: a phone → E.164, ``card:…`` kept, a ``{phone, card}`` entry (or a cards
                catalog ``{phone, number}`` entry) → its phone, else ``card:<card>``
``lookup``      ``{catalog: partners, field: phone, missing: null|keep|error}``: the catalog entry of the value
                (an upper-case GUID finds a lower-case key; a scalar entry ``"X"`` means ``{id: "X"}``)
``default``     ``{default: 0}``: the value when it is null
``null_if``     ``{null_if: ["", "0"]}``: null when the value is one of these
``negate``, ``abs``  sign of a Decimal
``template``    ``{template: "card:{value}"}``; ``{$name}`` is a mapping parameter
``after_prefix``  ``{after_prefix: "crm:"}``: the rest of a string that starts with the prefix, else null
``day_start``   the same datetime at 00:00 (1C dates movements at the start of a day)
``shift``       ``{shift: {unit: ПериодОтсрочки, count: Количество}}``: a datetime moved by ``count`` periods of a
                1C ``Периодичность`` (День, Неделя, Декада, Месяц, Квартал, Полугодие, Год; or days, weeks,
                months, years); both are JMESPath on the document; no unit or count leaves it unchanged
==============  ======================================================================================
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jmespath.parser import ParsedResult
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connector.mapping.functions import Scope, catalog_entry, compile_expression, evaluate, to_decimal
from connector.model import normalize_phone

__all__ = ["TRANSFORM_NAMES", "Transform", "parse_transform"]

_EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
_e164 = lru_cache(maxsize=16_384)(
    normalize_phone
)  # a pure function; customers come back receipt after receipt
_EMPTY_DATE_PREFIX = "0001-01-01"
_PARAM = re.compile(r"\{\$([A-Za-z_][A-Za-z0-9_]*)\}")


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class _NoArgs(_Args):
    pass


class _DecimalArgs(_Args):
    places: int | None = Field(None, ge=0, le=6)


class _TimeArgs(_Args):
    zone: str | None = None
    zone_from: ParsedResult | None = None
    offset_ms: ParsedResult | None = None

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("$"):
            _zone(value)
        return value

    @field_validator("offset_ms", "zone_from", mode="before")
    @classmethod
    def _compile(cls, value: Any) -> Any:
        return compile_expression(value) if value is not None else None


class _EnumArgs(_Args):
    values: dict[str, Any]
    default: Any = None
    has_default: bool = False


class _PhoneArgs(_Args):
    region: str = "RU"


class _LookupArgs(_Args):
    catalog: str = Field(min_length=1)
    field: str | None = None
    missing: Literal["null", "keep", "error"] = "null"


class _ValueArgs(_Args):
    value: Any


class _ListArgs(_Args):
    values: list[Any]


class _TextArgs(_Args):
    text: str


class _ShiftArgs(_Args):
    unit: ParsedResult
    count: ParsedResult

    @field_validator("unit", "count", mode="before")
    @classmethod
    def _compile(cls, value: Any) -> Any:
        return compile_expression(value)


@dataclass(frozen=True)
class Transform:
    """One compiled transform step."""

    name: str
    args: _Args
    function: Callable[[Any, Any, Scope], Any]

    def apply(self, value: Any, scope: Scope) -> Any:
        """Transform ``value``; a null passes through unless this is ``default``.

        Raises:
            ValueError: the value cannot be transformed; the message says why.
        """
        if value is None and self.name != "default":
            return None
        return self.function(value, self.args, scope)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _param(value: Any, scope: Scope) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        name = value[1:]
        if name not in scope.params:
            raise ValueError(f"unknown mapping parameter {name!r}")
        return scope.params[name]
    return value


def _decimal(value: Any, args: _DecimalArgs, scope: Scope) -> Decimal:
    number = to_decimal(value)
    if args.places is not None:
        number = number.quantize(Decimal(1).scaleb(-args.places), rounding=ROUND_HALF_UP)
    return number


def _int(value: Any, args: _NoArgs, scope: Scope) -> int:
    number = to_decimal(value)
    if number != number.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


def _string(value: Any, args: _NoArgs, scope: Scope) -> str:
    if isinstance(value, dict | list):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _bool(value: Any, args: _NoArgs, scope: Scope) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise ValueError(f"{value!r} is not a boolean")


def _guid(value: Any, args: _NoArgs, scope: Scope) -> str | None:
    text = str(value).strip()
    return None if text in {"", _EMPTY_GUID} else text


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return datetime.fromtimestamp(0, UTC) + timedelta(milliseconds=int(value))
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a date or time")
    text = value.strip()
    if not text or text.startswith(_EMPTY_DATE_PREFIX):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date or time") from None


@lru_cache(maxsize=64)
def _fixed_zone(offset_ms: int) -> timezone:
    """A fixed UTC offset (a till's ``time_zone_offset``): a handful of distinct values, one object each."""
    return timezone(timedelta(milliseconds=offset_ms))


def _localize(moment: datetime, args: _TimeArgs, scope: Scope) -> datetime:
    if args.offset_ms is not None:
        offset = evaluate(args.offset_ms, scope.root, scope)
        if offset is None:
            raise ValueError(f"no time zone offset at {args.offset_ms.expression!r}")
        zone: timezone | ZoneInfo = _fixed_zone(int(to_decimal(offset)))
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC).astimezone(zone)
        return moment.astimezone(zone)
    zone_name = evaluate(args.zone_from, scope.root, scope) if args.zone_from is not None else None
    zone_name = zone_name or _param(args.zone, scope)
    if moment.tzinfo is not None:
        return moment.astimezone(_zone(zone_name)) if zone_name else moment
    if not zone_name:
        raise ValueError(f"{moment.isoformat()} has no offset and the mapping names no zone")
    return moment.replace(tzinfo=_zone(str(zone_name)))


def _datetime(value: Any, args: _TimeArgs, scope: Scope) -> datetime | None:
    moment = _parse_time(value)
    return None if moment is None else _localize(moment, args, scope)


def _date(value: Any, args: _TimeArgs, scope: Scope) -> date | None:
    if isinstance(value, str) and len(value.strip()) == 10 and not value.startswith(_EMPTY_DATE_PREFIX):
        return date.fromisoformat(value.strip())
    moment = _datetime(value, args, scope)
    return None if moment is None else moment.date()


def _enum(value: Any, args: _EnumArgs, scope: Scope) -> Any:
    key = value if isinstance(value, str) else _string(value, _NoArgs(), scope)
    if key in args.values:
        return args.values[key]
    if args.has_default:
        return args.default
    known = ", ".join(sorted(args.values))
    raise ValueError(f"{value!r} is not in the enum table ({known})")


def _phone(value: Any, args: _PhoneArgs, scope: Scope) -> str | None:
    if isinstance(value, Decimal):
        value = int(value)
    if isinstance(value, str) and not value.strip():
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError(f"a {type(value).__name__} is not a phone number")
    return _e164(value, args.region)


def _account(value: Any, args: _NoArgs, scope: Scope) -> str | None:
    if isinstance(value, Mapping):
        if value.get("phone"):
            return _e164(value["phone"])
        card = value.get("card") or value.get("number")
        return f"card:{card}" if card else None
    text = _string(value, args, scope).strip()
    if not text:
        return None
    return text if text.startswith("card:") else _e164(text)


def _lookup(value: Any, args: _LookupArgs, scope: Scope) -> Any:
    key = _string(value, _NoArgs(), scope)
    catalog = scope.catalogs.get(args.catalog)
    entry = None if catalog is None else catalog_entry(catalog, key)
    if entry is not None and args.field is not None:
        if isinstance(entry, Mapping):
            entry = entry.get(args.field)
        elif args.field != "id":
            entry = None  # a scalar entry is the entry's id and nothing else
    if entry is not None:
        return entry
    if args.missing == "keep":
        return value
    if args.missing == "error":
        where = "is not loaded" if catalog is None else f"has no {key!r}"
        suffix = "" if args.field is None or catalog is None or key not in catalog else f" with {args.field}"
        raise ValueError(f"catalog {args.catalog!r} {where}{suffix}")
    return None


def _default(value: Any, args: _ValueArgs, scope: Scope) -> Any:
    return _param(args.value, scope) if value is None else value


def _null_if(value: Any, args: _ListArgs, scope: Scope) -> Any:
    return None if value in args.values else value


def _negate(value: Any, args: _NoArgs, scope: Scope) -> Decimal:
    return -to_decimal(value)


def _abs(value: Any, args: _NoArgs, scope: Scope) -> Decimal:
    return abs(to_decimal(value))


def _template(value: Any, args: _TextArgs, scope: Scope) -> str:
    text = _PARAM.sub(lambda match: _string(_param("$" + match.group(1), scope), _NoArgs(), scope), args.text)
    return text.replace("{value}", _string(value, _NoArgs(), scope))


def _after_prefix(value: Any, args: _TextArgs, scope: Scope) -> str | None:
    text = _string(value, _NoArgs(), scope)
    return text[len(args.text) :] if text.startswith(args.text) and len(text) > len(args.text) else None


_DAYS = {"День": 1, "Неделя": 7, "Декада": 10, "days": 1, "weeks": 7}
_MONTHS = {"Месяц": 1, "Квартал": 3, "Полугодие": 6, "Год": 12, "months": 1, "years": 12}


def _moment(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{value!r} is not a datetime (apply the datetime transform first)")
    return value


def _day_start(value: Any, args: _NoArgs, scope: Scope) -> datetime:
    return _moment(value).replace(hour=0, minute=0, second=0, microsecond=0)


def _shift(value: Any, args: _ShiftArgs, scope: Scope) -> datetime:
    moment = _moment(value)
    unit, count = evaluate(args.unit, scope.root, scope), evaluate(args.count, scope.root, scope)
    if not unit or not count:
        return moment
    periods = int(to_decimal(count))
    if unit in _DAYS:
        return moment + timedelta(days=_DAYS[unit] * periods)
    if unit not in _MONTHS:
        raise ValueError(f"unknown period {unit!r}; known: {', '.join([*_DAYS, *_MONTHS])}")
    index = moment.month - 1 + _MONTHS[unit] * periods
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


# name -> (argument model, name of the argument a scalar shorthand fills, function)
_REGISTRY: dict[str, tuple[type[_Args], str | None, Callable[[Any, Any, Scope], Any]]] = {
    "decimal": (_DecimalArgs, "places", _decimal),
    "int": (_NoArgs, None, _int),
    "string": (_NoArgs, None, _string),
    "bool": (_NoArgs, None, _bool),
    "guid": (_NoArgs, None, _guid),
    "datetime": (_TimeArgs, "zone", _datetime),
    "date": (_TimeArgs, "zone", _date),
    "enum": (_EnumArgs, None, _enum),
    "phone": (_PhoneArgs, "region", _phone),
    "account": (_NoArgs, None, _account),
    "lookup": (_LookupArgs, "catalog", _lookup),
    "default": (_ValueArgs, "value", _default),
    "null_if": (_ListArgs, "values", _null_if),
    "negate": (_NoArgs, None, _negate),
    "abs": (_NoArgs, None, _abs),
    "template": (_TextArgs, "text", _template),
    "after_prefix": (_TextArgs, "text", _after_prefix),
    "day_start": (_NoArgs, None, _day_start),
    "shift": (_ShiftArgs, None, _shift),
}
TRANSFORM_NAMES: tuple[str, ...] = tuple(sorted(_REGISTRY))
"""The transform names a mapping file may use."""


def _arguments(name: str, raw: Any, scalar: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    if name == "enum" and isinstance(raw, Mapping):
        table = raw["values"] if isinstance(raw.get("values"), Mapping) else raw
        result: dict[str, Any] = {"values": {str(key): value for key, value in table.items()}}
        if table is not raw:
            result.update({key: value for key, value in raw.items() if key != "values"})
            result["has_default"] = "default" in raw
        return result
    if isinstance(raw, Mapping) and (scalar is None or set(raw) <= set(_REGISTRY[name][0].model_fields)):
        return dict(raw)
    if scalar is None:
        raise ValueError(f"transform {name!r} takes no argument")
    return {scalar: raw}


def parse_transform(raw: Any) -> Transform:
    """Compile one transform from its YAML form: ``name`` or ``{name: argument}``.

    Raises:
        ValueError: unknown name or bad arguments, with the list of known names.
    """
    if isinstance(raw, str):
        name, argument = raw, None
    elif isinstance(raw, Mapping) and len(raw) == 1:
        ((name, argument),) = raw.items()
    else:
        raise ValueError(f"a transform is a name or a one-key mapping {{name: argument}}, not {raw!r}")
    if name not in _REGISTRY:
        raise ValueError(f"unknown transform {name!r}; known: {', '.join(TRANSFORM_NAMES)}")
    model, scalar, function = _REGISTRY[name]
    try:
        args = model.model_validate(_arguments(name, argument, scalar))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or name}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"bad arguments for transform {name!r}: {problems}") from None
    return Transform(name=name, args=args, function=function)
