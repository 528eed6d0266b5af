"""OData client in the dialect 1C:Enterprise speaks (v3, reference/onec.md §1), and v4 reading for generic CRMs.

Three things generic OData clients get wrong with 1C, done here on purpose:

* **URLs** — Cyrillic entity sets and query options are percent-encoded as UTF-8 with ``%20`` for a space
  (``requests``' ``params=`` writes ``+``, which the platform does not read as a space), so the query string is
  built here and handed to the HTTP policy already encoded.
* **Literals** — ``guid'…'``, ``datetime'…'`` (zone-less local time of the base) and ``'…'`` strings with ``'``
  doubled, built by :func:`guid`, :func:`datetime_literal`, :func:`string_literal` and the small filter builder
  (:func:`eq`, :func:`and_` …). Field names are checked too, so no value can change the shape of a filter::

      flt = and_(eq("Организация_Key", guid(org)), ge("Date", datetime_literal(start, tz)),
                 eq("DeletionMark", False), eq("Комментарий", "it's"))
      rows = client.query("Document_ЧекККМ", filter=flt, select=["Ref_Key", "Number", "Date"])

* **Paging** — 1C has no ``nextLink``: :meth:`ODataClient.query` pages with ``$top``/``$skip`` under a stable
  ``$orderby`` that always ends with the key (``Ref_Key``), stops on a short page, refuses a page that repeats the
  previous one, drops a row it has already yielded, and raises at a hard page cap instead of looping (dlt
  #2816/#3358). Large ``$skip`` re-scans the table in 1C, so callers keep windows small (a day of ``Date``).
  A v4 service is read by following ``@odata.nextLink`` under the same cap and loop check.

Rows are decoded (:func:`decode_row`): Int64 strings → ``int`` where the field's type says so, doubles are
``Decimal`` (parsed so), zone-less dates + the system's zone → aware datetimes, the empty GUID and the empty date
→ ``None``. ``decode=False`` returns the rows as 1C sent them (decimals still exact) for the journal and mappings.
``odata.error`` bodies are mapped to the error tree by :data:`ODATA_ERROR_ACTIONS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote, urljoin
from uuid import UUID

import requests
from lxml import etree  # type: ignore[import-untyped]

from adapters.http import Action, HttpClient, Verdict, action_for_status, loads_json
from connector.errors import FatalRemoteError
from connector.logs import mask_text

__all__ = [
    "EMPTY_DATE",
    "EMPTY_GUID",
    "ODATA_ERROR_ACTIONS",
    "Filter",
    "ODataClient",
    "ODataLiteral",
    "and_",
    "contains",
    "datetime_literal",
    "decode_row",
    "eq",
    "field_name",
    "ge",
    "gt",
    "guid",
    "in_",
    "le",
    "literal",
    "lt",
    "ne",
    "not_",
    "or_",
    "parse_metadata",
    "startswith",
    "string_literal",
]

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
EMPTY_DATE = "0001-01-01T00:00:00"

ODATA_ERROR_ACTIONS: Mapping[str, Action] = {
    "1": Action.FAIL_CONFIG,  # a body value could not be parsed
    "6": Action.FAIL_CONFIG,  # path segment or method not found: the set is not published
    "9": Action.FAIL_NOT_FOUND,  # entity instance not found
    "13": Action.FAIL_CONFIG,  # tabular-section rows cannot be created directly
    "14": Action.FAIL_CONFIG,  # $filter parse error
    "-1": Action.RETRY,  # internal exception in 1C (also posting errors: closed period, stock control)
}
"""1C ``odata.error.code`` → action (reference/onec.md §1.7); other codes fall back to the HTTP status table."""

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NAME = re.compile(r"[^\W\d]\w*", re.UNICODE)
_FIELD = re.compile(r"[^\W\d]\w*(?:/[^\W\d]\w*)*", re.UNICODE)
_LOCAL_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?")
_INT_TYPES = frozenset({"Edm.Int16", "Edm.Int32", "Edm.Int64", "Edm.Byte", "Edm.SByte"})
_DECIMAL_TYPES = frozenset({"Edm.Double", "Edm.Decimal", "Edm.Single"})
_DEFAULT_TYPES: Mapping[str, str] = {"LineNumber": "Edm.Int64", "odata.count": "Edm.Int64"}
_PATH_SAFE = "/()',=$:*"
_VALUE_SAFE = "$,'()/:*"


# -- literals and filters ------------------------------------------------------------------------------------


class ODataLiteral(str):
    """A literal already in OData syntax (from :func:`guid`, :func:`datetime_literal` …): used as is.

    A plain ``str`` is always quoted as a string literal, so only code — never data — makes one of these.
    """

    __slots__ = ()


def guid(value: str | UUID) -> ODataLiteral:
    """``guid'…'`` for a 1C reference; anything but a GUID is refused.

    Example:
        >>> guid("3F2504E0-4F89-11D3-9A0C-0305E82C3301")
        "guid'3f2504e0-4f89-11d3-9a0c-0305e82c3301'"
    """
    text = str(value)
    if not _GUID.fullmatch(text):
        raise ValueError(f"not a GUID: {text[:60]!r}")
    return ODataLiteral(f"guid'{text.lower()}'")


def datetime_literal(value: datetime | date, tz: tzinfo | None = None) -> ODataLiteral:
    """``datetime'YYYY-MM-DDTHH:MM:SS'`` in the base's local time, as 1C stores it (no offset).

    Args:
        value: an aware datetime (converted to ``tz``), a naive one (taken as already local) or a date (midnight).
        tz: the system's zone; required for an aware ``value``.
    """
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    elif value.tzinfo is not None:
        if tz is None:
            raise ValueError("an aware datetime needs the system's zone: datetime_literal(value, tz)")
        value = value.astimezone(tz).replace(tzinfo=None)
    return ODataLiteral(f"datetime'{value.replace(microsecond=0).isoformat()}'")


def string_literal(value: str) -> ODataLiteral:
    """``'…'`` with every ``'`` doubled, so the value cannot end the literal early.

    Example:
        >>> string_literal("O'Brien' or 1 eq 1")
        "'O''Brien'' or 1 eq 1'"
    """
    return ODataLiteral("'" + value.replace("'", "''") + "'")


def literal(value: object, tz: tzinfo | None = None) -> ODataLiteral:
    """Any Python value as an OData v3 literal: str, bool, int, Decimal, UUID, datetime/date, None."""
    if isinstance(value, ODataLiteral):
        return value
    if isinstance(value, str):
        return string_literal(value)
    if isinstance(value, bool):
        return ODataLiteral("true" if value else "false")
    if isinstance(value, int):
        return ODataLiteral(str(value))
    if isinstance(value, Decimal) and value.is_finite():
        return ODataLiteral(f"{value:f}")
    if isinstance(value, UUID):
        return guid(value)
    if isinstance(value, datetime | date):
        return datetime_literal(value, tz)
    if value is None:
        return ODataLiteral("null")
    raise TypeError(f"no OData literal for {type(value).__name__} (floats are refused: use Decimal)")


def field_name(name: str) -> str:
    """Check a property name (``Сумма``, ``Товары/Цена``): letters, digits, ``_`` and ``/`` only."""
    if not _FIELD.fullmatch(name):
        raise ValueError(f"not a property name: {name[:60]!r}")
    return name


@dataclass(frozen=True)
class Filter:
    """A ``$filter`` expression built from checked names and literals; combine with ``&``, ``|``, ``~``."""

    text: str
    atomic: bool = True

    def __str__(self) -> str:
        return self.text

    def __and__(self, other: Filter) -> Filter:
        return and_(self, other)

    def __or__(self, other: Filter) -> Filter:
        return or_(self, other)

    def __invert__(self) -> Filter:
        return not_(self)

    def _operand(self) -> str:
        return self.text if self.atomic else f"({self.text})"


def _comparison(operator: str) -> Callable[[str, object], Filter]:
    def compare(name: str, value: object) -> Filter:
        return Filter(f"{field_name(name)} {operator} {literal(value)}")

    compare.__name__ = compare.__qualname__ = operator
    compare.__doc__ = f"``name {operator} value``: a checked property name and a quoted literal."
    return compare


eq, ne, gt, ge, lt, le = (_comparison(operator) for operator in ("eq", "ne", "gt", "ge", "lt", "le"))


def _join(operator: str, filters: Sequence[Filter]) -> Filter:
    if not filters:
        raise ValueError(f"{operator} of nothing")
    if len(filters) == 1:
        return filters[0]
    return Filter(f" {operator} ".join(item._operand() for item in filters), atomic=False)


def and_(*filters: Filter) -> Filter:
    """All of ``filters``."""
    return _join("and", filters)


def or_(*filters: Filter) -> Filter:
    """Any of ``filters``."""
    return _join("or", filters)


def not_(condition: Filter) -> Filter:
    """The negation of ``condition``."""
    return Filter(f"not ({condition.text})")


def in_(name: str, values: Sequence[object]) -> Filter:
    """``name`` equal to one of ``values`` (an ``or`` of ``eq``: v3 has no ``in``)."""
    return or_(*(eq(name, value) for value in values))


def contains(name: str, value: str) -> Filter:
    """``substringof('value', name)`` — the v3 spelling of "contains"."""
    return Filter(f"substringof({string_literal(value)}, {field_name(name)})")


def startswith(name: str, value: str) -> Filter:
    """``startswith(name, 'value')``."""
    return Filter(f"startswith({field_name(name)}, {string_literal(value)})")


# -- decoding ------------------------------------------------------------------------------------------------


def _decode_value(value: Any, edm: str | None, tz: tzinfo) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if edm in _INT_TYPES and isinstance(value, str):
        return int(value)
    if edm in _DECIMAL_TYPES and isinstance(value, int | Decimal):
        return Decimal(value)
    if not isinstance(value, str) or edm == "Edm.String":
        return value
    if value == EMPTY_GUID:
        return None
    if edm in (None, "Edm.DateTime") and _LOCAL_DATETIME.fullmatch(value):
        return None if value == EMPTY_DATE else datetime.fromisoformat(value).replace(tzinfo=tz)
    if edm == "Edm.DateTimeOffset":
        return datetime.fromisoformat(value)
    return value


def decode_row(row: Mapping[str, Any], tz: tzinfo, types: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Decode one 1C row, nested tabular sections included.

    Args:
        row: the row as parsed (floats already ``Decimal``).
        tz: the system's zone, attached to zone-less dates.
        types: property → Edm type (from ``$metadata`` or declared); ``LineNumber`` is Int64 by default.
            Without a type, a string shaped exactly like a 1C date is read as a date; declare
            ``"Edm.String"`` to keep such a string as text.
    """
    merged = {**_DEFAULT_TYPES, **(types or {})}
    decoded: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, list):
            decoded[key] = [
                decode_row(item, tz, merged) if isinstance(item, Mapping) else item for item in value
            ]
        elif isinstance(value, Mapping):
            decoded[key] = decode_row(value, tz, merged)
        else:
            decoded[key] = _decode_value(value, merged.get(key), tz)
    return decoded


def parse_metadata(xml: bytes) -> dict[str, dict[str, str]]:
    """Read ``$metadata`` (CSDL) into {entity or complex type name: {property: Edm type}}.

    The parser loads no DTD, resolves no entity and touches no network; a document with a DTD is refused.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(xml, parser=parser)
    if root.getroottree().docinfo.doctype:
        raise ValueError("$metadata carries a DTD: refused (entity expansion)")
    types: dict[str, dict[str, str]] = {}
    for node in root.iter("{*}EntityType", "{*}ComplexType"):
        props = {str(p.get("Name")): str(p.get("Type")) for p in node.iterfind("{*}Property")}
        types[str(node.get("Name"))] = props
    return types


def _classify(response: requests.Response) -> Verdict | None:
    """Map an ``odata.error`` (v3) or ``error`` (v4) body to an action by its code."""
    try:
        body = loads_json(response.content)
    except ValueError:
        return None
    error = body.get("odata.error") or body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    code = str(error.get("code", ""))
    message = error.get("message")
    text = message.get("value", "") if isinstance(message, dict) else str(message or "")
    action = ODATA_ERROR_ACTIONS.get(code) or action_for_status(response.status_code)
    return Verdict(action, f"OData error {code}: {mask_text(' '.join(str(text).split()))[:200]}")


# -- the client ----------------------------------------------------------------------------------------------


def _encode_path(path: str) -> str:
    return quote(path, safe=_PATH_SAFE)


def _encode_query(options: Mapping[str, object]) -> str:
    """``$filter=…&$top=…`` with UTF-8 percent-encoding and ``%20`` (never ``+``) for spaces."""
    return "&".join(
        f"{quote(key, safe='$')}={quote(str(value), safe=_VALUE_SAFE)}" for key, value in options.items()
    )


def _entity_set(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not an entity set name: {name[:60]!r}")
    return name


class ODataClient:
    """Reads and writes one OData service through the system's :class:`~adapters.http.HttpClient`.

    Args:
        http: the system's HTTP client; ``base_url`` ends at the service root (``…/odata/standard.odata``) and
            auth is Basic with the infobase user (``adapters.rest.BasicAuth``, UTF-8).
        timezone: the base's zone, for zone-less dates in rows and in ``datetime`` literals.
        version: 3 (1C: ``$format=json``, ``$top``/``$skip`` paging) or 4 (``@odata.nextLink`` paging).
        page_size: ``$top`` of one page.
        max_pages: the hard page cap of one query.
        field_types: property → Edm type for every set (merged with ``$metadata`` types passed per call).
    """

    def __init__(
        self, http: HttpClient, *, timezone: tzinfo, version: int = 3, page_size: int = 500,
        max_pages: int = 10_000, field_types: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        if version not in (3, 4):
            raise ValueError("OData version must be 3 or 4")
        self.http = http
        self.tz = timezone
        self.version = version
        self.page_size = page_size
        self.max_pages = max_pages
        self.field_types = dict(field_types or {})
        self._metadata: dict[str, dict[str, str]] | None = None

    # -- reading --

    def get(
        self, entity_set: str, ref_key: str | UUID, *, select: Sequence[str] | None = None,
        types: Mapping[str, str] | None = None, decode: bool = True,
    ) -> dict[str, Any]:  # fmt: skip
        """One object by key (``Document_X(guid'…')``); a missing one is ``RemoteNotFoundError`` (code 9)."""
        options = {"$select": ",".join(map(field_name, select))} if select else {}
        body = self._call("GET", self._key_path(entity_set, ref_key), options)
        return self._row(body, types, decode)

    def query(
        self, entity_set: str, *, filter: Filter | None = None, select: Sequence[str] | None = None,
        orderby: Sequence[str] = (), top: int | None = None, expand: Sequence[str] | None = None,
        key_fields: Sequence[str] = ("Ref_Key",), options: Mapping[str, object] | None = None,
        types: Mapping[str, str] | None = None, decode: bool = True,
    ) -> Iterator[dict[str, Any]]:  # fmt: skip
        """Every row of a set matching ``filter``, page by page.

        Args:
            entity_set: e.g. ``Document_ЧекККМ``.
            filter: a :class:`Filter`.
            select: the properties needed (the key fields are added); ``None`` for all (slow on wide sets).
            orderby: sort properties; the key fields are appended so the order is total and pages stable.
            top: page size (``$top``); defaults to the client's.
            expand: navigation properties to expand.
            key_fields: the set's key (``Ref_Key``; ``Recorder``, ``LineNumber`` for register records).
            options: extra query options (``allowedOnly``: ``"true"``).
            types: property → Edm type for decoding.
            decode: decode rows (see :func:`decode_row`).
        """
        query: dict[str, object] = {}
        if filter is not None:
            query["$filter"] = str(filter)
        if select:
            query["$select"] = ",".join(dict.fromkeys([*map(field_name, select), *key_fields]))
        if expand:
            query["$expand"] = ",".join(map(field_name, expand))
        query.update(options or {})
        path = _encode_path(_entity_set(entity_set))
        if self.version == 4:
            rows = self._pages_by_link(path, query)
        else:
            order = ",".join(dict.fromkeys([*map(field_name, orderby), *key_fields]))
            if not order:
                raise ValueError("$skip paging needs a total order: give key_fields or orderby")
            rows = self._pages_by_skip(path, {**query, "$orderby": order}, top or self.page_size, key_fields)
        for row in rows:
            yield self._row(row, types, decode)

    def virtual_table(
        self, entity_set: str, function: str = "Balance", params: Mapping[str, object] | None = None, *,
        select: Sequence[str] | None = None, types: Mapping[str, str] | None = None, decode: bool = True,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """A register's virtual table: ``AccumulationRegister_X/Balance(Period=…,Condition='…')``.

        Args:
            entity_set: the register set.
            function: ``Balance``, ``Turnovers``, ``BalanceAndTurnovers``, ``SliceLast`` …
            params: ``Period``/``StartPeriod``/``EndPeriod`` (datetimes, in the base's zone), ``Condition`` (a
                :class:`Filter`, quoted with its quotes doubled), ``Dimensions`` (a list of names) …
            select: resource and dimension columns to return.
            types: property → Edm type for decoding.
            decode: decode rows.

        One request, no paging: ``$top`` does not shorten the calculation in 1C; give a ``Condition`` instead.
        """
        args = ",".join(
            f"{_entity_set(name)}={self._argument(value)}" for name, value in (params or {}).items()
        )
        path = _encode_path(f"{_entity_set(entity_set)}/{_entity_set(function)}({args})")
        options = {"$select": ",".join(map(field_name, select))} if select else {}
        return [self._row(row, types, decode) for row in self._value(self._call("GET", path, options))]

    def metadata_types(self) -> dict[str, dict[str, str]]:
        """``$metadata`` read once (it is megabytes on a UT base) and parsed by :func:`parse_metadata`."""
        if self._metadata is None:
            response = self.http.request("GET", "$metadata", headers={"Accept": "application/xml"})
            try:
                self._metadata = parse_metadata(response.content)
            except (ValueError, etree.XMLSyntaxError) as exc:
                raise FatalRemoteError(f"$metadata is unreadable: {exc}", system=self.http.system) from None
        return self._metadata

    def types_for(self, entity_set: str) -> dict[str, str]:
        """Property types of a set and of its dependent types (``…_RowType``, ``…_Balance``), from ``$metadata``."""
        found: dict[str, str] = {}
        for name, props in self.metadata_types().items():
            if name == entity_set or name.startswith(f"{entity_set}_"):
                found.update(props)
        return found

    # -- writing --

    def create(self, entity_set: str, fields: Mapping[str, Any], *, decode: bool = True) -> dict[str, Any]:
        """``POST`` a new object (201); 1C returns it whole with its ``Ref_Key``. A document is not posted yet.

        Not retried after it may have reached 1C: an unknown outcome raises ``RetriableRemoteError`` with
        ``outcome_unknown`` — look the connector's key up before creating again.
        """
        body = self._call("POST", _encode_path(_entity_set(entity_set)), {}, json=dict(fields), expect=201)
        return self._row(body, None, decode)

    def patch(
        self, entity_set: str, ref_key: str | UUID, fields: Mapping[str, Any], *, decode: bool = True
    ) -> dict[str, Any]:
        """``PATCH`` some properties (200, the whole object back). A tabular section sent is replaced whole."""
        path = self._key_path(entity_set, ref_key)
        body = self._call("PATCH", path, {}, json=dict(fields), expect=200, idempotent=True)
        return self._row(body, None, decode)

    def post_document(self, entity_set: str, ref_key: str | UUID, *, operational: bool = False) -> None:
        """Post a document: ``POST Document_X(guid'…')/Post?PostingModeOperational=false``.

        Posting again gives the same movements, so it is retried like a read.
        """
        self._action(entity_set, ref_key, "Post", {"PostingModeOperational": literal(operational)})

    def unpost_document(self, entity_set: str, ref_key: str | UUID) -> None:
        """Unpost a document (``…/Unpost``): its register movements go, the document stays."""
        self._action(entity_set, ref_key, "Unpost", {})

    # -- internals --

    def _action(
        self, entity_set: str, ref_key: str | UUID, action: str, options: Mapping[str, object]
    ) -> None:
        path = f"{self._key_path(entity_set, ref_key)}/{action}"
        query = _encode_query(options)
        self.http.request("POST", f"{path}?{query}" if query else path, classify=_classify,
                          expect=(200, 204), idempotent=True)  # fmt: skip

    def _key_path(self, entity_set: str, ref_key: str | UUID) -> str:
        return _encode_path(f"{_entity_set(entity_set)}({guid(ref_key)})")

    def _argument(self, value: object) -> str:
        if isinstance(value, Filter):
            return string_literal(str(value))
        if isinstance(value, list | tuple):
            return string_literal(",".join(field_name(str(item)) for item in value))
        return literal(value, self.tz)

    def _call(self, method: str, path: str, options: Mapping[str, object], **kwargs: Any) -> Any:
        query = _encode_query({"$format": "json", **options} if self.version == 3 else options)
        return self.http.request_json(method, f"{path}?{query}" if query else path, classify=_classify,
                                      headers={"Accept": "application/json"}, **kwargs)  # fmt: skip

    def _row(self, body: Any, types: Mapping[str, str] | None, decode: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise FatalRemoteError("the OData service did not return an object", system=self.http.system)
        return decode_row(body, self.tz, {**self.field_types, **(types or {})}) if decode else body

    def _value(self, body: Any) -> list[Any]:
        rows = body.get("value") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise FatalRemoteError("the OData service did not return a collection (no 'value')",
                                   system=self.http.system)  # fmt: skip
        return rows

    def _pages_by_skip(
        self, path: str, query: Mapping[str, object], top: int, key_fields: Sequence[str]
    ) -> Iterator[dict[str, Any]]:
        seen: set[tuple[Any, ...]] = set()
        previous: list[tuple[Any, ...]] | None = None
        for number in range(self.max_pages):
            rows = self._value(self._call("GET", path, {**query, "$top": top, "$skip": number * top}))
            if len(rows) > top:
                raise self._paging_error(path, number + 1, "the service ignored $top")
            keys = [self._row_key(row, key_fields, path) for row in rows]
            if rows and keys == previous:
                raise self._paging_error(
                    path, number + 1, "a page repeated the previous one: $skip is ignored"
                )
            for key, row in zip(keys, rows, strict=True):
                if key not in seen:  # a row pushed down by a concurrent insert comes back once more
                    seen.add(key)
                    yield row
            if len(rows) < top:
                return
            previous = keys
        raise self._paging_error(path, self.max_pages, "page cap reached with rows left: narrow the window")

    def _row_key(self, row: Mapping[str, Any], key_fields: Sequence[str], path: str) -> tuple[Any, ...]:
        if not key_fields:
            return (repr(row),)
        missing = [key for key in key_fields if key not in row]
        if missing:
            raise self._paging_error(
                path, 0, f"rows lack the key field(s) {', '.join(missing)}: set key_fields"
            )
        return tuple(row[key] for key in key_fields)

    def _pages_by_link(self, path: str, query: Mapping[str, object]) -> Iterator[dict[str, Any]]:
        query_string = _encode_query(query)
        url = f"{path}?{query_string}" if query_string else path
        seen: set[str] = set()
        for number in range(1, self.max_pages + 1):
            seen.add(url)
            body = self._call("GET", url, {})
            yield from self._value(body)
            link = body.get("@odata.nextLink") or body.get("odata.nextLink")
            if not link:
                return
            url = urljoin(self.http.config.base_url.rstrip("/") + "/", str(link))
            if url in seen:
                raise self._paging_error(path, number, "the next link points to a page already read")
        raise self._paging_error(path, self.max_pages, "page cap reached with pages left")

    def _paging_error(self, path: str, pages: int, reason: str) -> FatalRemoteError:
        shown = mask_text(unquote(path.split("?")[0]))
        return FatalRemoteError(
            f"{self.http.system}: GET {shown}: {reason}", system=self.http.system, pages=pages
        )
