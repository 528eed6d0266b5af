"""A CRM described entirely in ``connector.yaml`` (``preset: generic``): add a CRM without writing Python.

Everything comes from the system's ``options`` (or ``options.definition``); the shipped
``mappings/crm/generic-example`` reads the operations such a definition returns. A complete definition::

    crm:
      adapter: crm
      preset: generic
      base_url: https://crm.example.ru/api/v1
      token: ${CRM_TOKEN}
      mapping: crm/generic-example
      timezone: Europe/Moscow              # for times and dates without an offset
      options:
        auth: {scheme: header, header: X-Token}  # header (header, prefix) | bearer | basic (user/password) | query (param)
        fields: {id: operation_id, key: external_id, created_at: created_at}   # JMESPath on one operation
        operations:                        # the ledger feed, read once per run and indexed by `fields.key`
          path: operations
          items: items                     # JMESPath of the list in a page
          paginator: {kind: cursor, cursor_path: next, param: cursor}
        find_account:                      # optional; without it the account id is the phone or card itself
          path: customers
          by_phone: {phone: "{phone}"}
          by_card: {card: "{card}"}
          items: items
          fields: {id: id, phone: phone, card: card, balance: balance}
        credit:
          path: "customers/{account_id}/operations"
          method: POST
          encoding: json                   # or form
          body: {direction: credit, points: "{amount_number}", external_id: "{key}",
                 available_from: "{activation}", expires_on: "{expiry}"}
          id: operation_id                 # JMESPath of the new operation's id in the answer (optional)
        charge:
          path: "customers/{account_id}/operations"
          method: POST
          body: {direction: debit, points: "{amount_number}", external_id: "{key}"}
        find_operation: {path: operations, params: {external_id: "{key}"}, items: items}  # optional
        balance: {path: "customers/{account_id}", value: balance}                        # optional

Paginator kinds and their parameters (see :mod:`adapters.rest`): ``cursor`` (``cursor_path``, ``param``,
``first_page_only``), ``offset`` (``limit``, ``offset_param``, ``limit_param``, ``total_path``), ``page``
(``page_param``, ``start``, ``page_size``, ``size_param``, ``total_pages_path``), ``link`` (``next_url_path``, or
the ``Link`` header when omitted) and ``none``; each takes ``max_pages``.

Placeholders in paths, parameters and bodies: ``{key}``, ``{account_id}``, ``{phone}`` (E.164), ``{card}``,
``{amount}`` (``"32.00"``), ``{amount_number}`` (an exact JSON number), ``{activation}``, ``{expiry}`` (ISO dates
in the CRM's zone), ``{occurred_at}`` (ISO), ``{kind}``, ``{direction}``. A value that is exactly one placeholder
keeps its type and is left out when empty (a credit without an expiry sends no ``expires_on``).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from requests.auth import AuthBase

from adapters.crm import CrmAccount, CrmWrite, http_config
from adapters.http import HttpClient
from adapters.rest import (
    DEFAULT_MAX_PAGES,
    BasicAuth,
    BearerAuth,
    CursorPaginator,
    HeaderTokenAuth,
    LinkPaginator,
    OffsetPaginator,
    Page,
    PageNumberPaginator,
    PageRequest,
    Paginator,
    QueryApiKeyAuth,
    paginate,
)
from connector.config import SystemConfig
from connector.errors import ConfigError, FatalRemoteError, MappingError

__all__ = [
    "PLACEHOLDERS",
    "AuthSpec",
    "EndpointSpec",
    "GenericCrmBackend",
    "GenericCrmDefinition",
    "PaginatorSpec",
    "build_paginator",
]

PLACEHOLDERS = frozenset(
    {"key", "account_id", "phone", "card", "amount", "amount_number", "activation", "expiry", "occurred_at",
     "kind", "direction"}
)  # fmt: skip
"""The names a path, parameter or body template may use."""

# Keys of `options` that belong to the adapter, not to the definition.
_ADAPTER_OPTIONS = frozenset(
    {"http", "index_max_age", "unknown_outcome_lookback", "retries_after_unknown", "preload_accounts"}
)


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_expression(value: str | None) -> str | None:
    if value is not None:
        try:
            jmespath.compile(value)
        except JMESPathError as exc:
            raise ValueError(f"bad JMESPath expression {value!r}: {exc}") from None
    return value


def _check_templates(value: Any) -> Any:
    texts = [value] if isinstance(value, str) else list(value.values()) if isinstance(value, Mapping) else []
    for text in texts:
        if isinstance(text, str):
            names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
            unknown = sorted(names - PLACEHOLDERS)
            if unknown:
                raise ValueError(
                    f"unknown placeholder {{{unknown[0]}}}; known: {', '.join(sorted(PLACEHOLDERS))}"
                )
    return value


class AuthSpec(_Spec):
    """How requests authenticate; the secret is the system's ``token`` or ``api_key`` (``password`` for basic)."""

    scheme: Literal["header", "bearer", "basic", "query"]
    header: str = "X-API-KEY"
    prefix: str = ""
    param: str = "apiKey"


class PaginatorSpec(_Spec):
    """A paginator kind and its parameters (names as in :mod:`adapters.rest`)."""

    kind: Literal["cursor", "offset", "page", "link", "none"] = "none"
    cursor_path: str | None = None
    param: str = "cursor"
    first_page_only: bool = False
    limit: int = Field(100, gt=0)
    offset_param: str = "offset"
    limit_param: str = "limit"
    total_path: str | None = None
    page_param: str = "page"
    start: int = 1
    page_size: int | None = Field(None, gt=0)
    size_param: str = "limit"
    total_pages_path: str | None = None
    next_url_path: str | None = None
    max_pages: int = Field(DEFAULT_MAX_PAGES, gt=0)

    _paths = field_validator("cursor_path", "total_path", "total_pages_path", "next_url_path")(
        _check_expression
    )


class EndpointSpec(_Spec):
    """One endpoint: method, path and parameter templates, body, and where the answer keeps what we need."""

    path: str
    method: Literal["GET", "POST", "PUT", "PATCH"] = "GET"
    params: dict[str, Any] = Field(default_factory=dict)
    body: dict[str, Any] = Field(default_factory=dict)
    encoding: Literal["json", "form"] = "json"
    items: str | None = None
    id: str | None = None
    value: str | None = None
    paginator: PaginatorSpec = Field(default_factory=PaginatorSpec)
    by_phone: dict[str, Any] = Field(default_factory=dict)
    by_card: dict[str, Any] = Field(default_factory=dict)
    fields: dict[str, str] = Field(default_factory=dict)

    _templates = field_validator("path", "params", "body", "by_phone", "by_card")(_check_templates)
    _paths = field_validator("items", "id", "value")(_check_expression)


class GenericCrmDefinition(_Spec):
    """The whole declarative CRM (see the module docstring for an example)."""

    auth: AuthSpec
    operations: EndpointSpec
    credit: EndpointSpec
    charge: EndpointSpec
    fields: dict[str, str]
    find_account: EndpointSpec | None = None
    find_operation: EndpointSpec | None = None
    balance: EndpointSpec | None = None
    mapping: str | None = None
    max_pages: int | None = None

    @field_validator("fields")
    @classmethod
    def _operation_fields(cls, value: dict[str, str]) -> dict[str, str]:
        missing = {"id", "key", "created_at"} - value.keys()
        if missing:
            raise ValueError(f"needs JMESPath for {', '.join(sorted(missing))}")
        for expression in value.values():
            _check_expression(expression)
        return value


class _SinglePage(Paginator):
    """No paging: the first page is the only one."""

    def has_more(self, page: Page) -> bool:
        """Never."""
        return False

    def next_request(self, page: Page) -> PageRequest:  # pragma: no cover - has_more is always False
        """Unused."""
        raise AssertionError("a single page has no next page")


def build_paginator(spec: PaginatorSpec) -> Paginator:
    """The :mod:`adapters.rest` paginator a :class:`PaginatorSpec` describes."""
    builders: dict[str, Callable[[], Paginator]] = {
        "cursor": lambda: CursorPaginator(spec.cursor_path or "next_cursor", param=spec.param,
                                          first_page_only=spec.first_page_only, max_pages=spec.max_pages),
        "offset": lambda: OffsetPaginator(spec.limit, offset_param=spec.offset_param, limit_param=spec.limit_param,
                                          total_path=spec.total_path, max_pages=spec.max_pages),
        "page": lambda: PageNumberPaginator(page_param=spec.page_param, start=spec.start, page_size=spec.page_size,
                                            size_param=spec.size_param, total_pages_path=spec.total_pages_path,
                                            max_pages=spec.max_pages),
        "link": lambda: LinkPaginator(spec.next_url_path, max_pages=spec.max_pages),
        "none": lambda: _SinglePage(max_pages=1),
    }  # fmt: skip
    return builders[spec.kind]()


def _definition(name: str, config: SystemConfig) -> GenericCrmDefinition:
    raw = config.options.get("definition")
    if raw is None:
        raw = {key: value for key, value in config.options.items() if key not in _ADAPTER_OPTIONS}
    try:
        return GenericCrmDefinition.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"systems.{name}.options.{where}: {error['msg']}") from None


def _auth(name: str, config: SystemConfig, spec: AuthSpec) -> AuthBase:
    if spec.scheme == "basic":
        if not config.user or config.password is None:
            raise ConfigError(f"systems.{name}: basic auth needs user and password")
        return BasicAuth(config.user, config.password)
    secret = config.token or config.api_key
    if secret is None:
        raise ConfigError(f"systems.{name}.token: the CRM's token or api_key is required")
    if spec.scheme == "bearer":
        return BearerAuth(secret)
    if spec.scheme == "query":
        return QueryApiKeyAuth(secret, param=spec.param)
    return HeaderTokenAuth(secret, header=spec.header, prefix=spec.prefix)


def _render(template: Any, values: Mapping[str, Any]) -> Any:
    """A template with its placeholders filled; exactly one placeholder keeps the value's own type."""
    if not isinstance(template, str):
        return template
    parsed = list(string.Formatter().parse(template))
    if len(parsed) == 1 and parsed[0][0] == "" and parsed[0][1] and not parsed[0][2]:
        return values.get(parsed[0][1])
    return template.format_map({key: "" if value is None else value for key, value in values.items()})


def _render_all(templates: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    rendered = {name: _render(template, values) for name, template in templates.items()}
    return {name: value for name, value in rendered.items() if value not in (None, "")}


class GenericCrmBackend:
    """A :class:`~adapters.crm.CrmBackend` built from a :class:`GenericCrmDefinition`."""

    entity = "operation"

    def __init__(self, name: str, config: SystemConfig, client: Callable[..., HttpClient]) -> None:
        self.system = name
        self.definition = _definition(name, config)
        self.mapping: str | None = self.definition.mapping
        self.zone = ZoneInfo(config.timezone)
        self.client: HttpClient = client(http_config(name, config), _auth(name, config, self.definition.auth))
        self._fields = {field: jmespath.compile(path) for field, path in self.definition.fields.items()}

    def _list(self, spec: EndpointSpec, values: Mapping[str, Any], extra: Mapping[str, Any]) -> Iterator[Any]:
        rendered = _render_all({**spec.params, **extra}, values)
        # YAML booleans go out as JSON spells them, not as Python's True/False
        params = {name: str(v).lower() if isinstance(v, bool) else v for name, v in rendered.items()}
        path = str(_render(spec.path, values))
        return paginate(self.client, path, build_paginator(spec.paginator), spec.items, params=params)

    # -- accounts --

    def find_account(self, phone: str | None, card: str | None) -> CrmAccount | None:
        """The first account the ``find_account`` endpoint lists; without one, the phone or card is the id."""
        spec = self.definition.find_account
        if spec is None:
            return CrmAccount(str(phone or card), phone, card)
        values = {"phone": phone, "card": card}
        extra = spec.by_phone if phone else spec.by_card
        for raw in self._list(spec, values, extra):
            return self._account(spec, raw)
        return None

    def all_accounts(self) -> Iterator[CrmAccount]:
        """The ``find_account`` endpoint without a filter, every page."""
        spec = self.definition.find_account
        if spec is not None:
            for raw in self._list(spec, {}, {}):
                yield self._account(spec, raw)

    def _account(self, spec: EndpointSpec, raw: Any) -> CrmAccount:
        def pick(field: str, default: str) -> Any:
            return jmespath.search(spec.fields.get(field, default), raw)

        balance = pick("balance", "balance")
        return CrmAccount(
            str(pick("id", "id")),
            _text(pick("phone", "phone")),
            _text(pick("card", "card")),
            _number(balance, self.system, "balance") if balance is not None else None,
        )

    # -- writes --

    def send(self, write: CrmWrite) -> str | None:
        """The ``credit`` or ``charge`` endpoint with its body rendered; the new id from ``id`` when set."""
        spec = self.definition.credit if write.direction == "credit" else self.definition.charge
        values = _values(write)
        body = _render_all(spec.body, values)
        payload: dict[str, Any] = {"json": body} if spec.encoding == "json" else {"data": _form(body)}
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if spec.encoding == "form" else None
        response = self.client.request(spec.method, str(_render(spec.path, values)),
                                       params=_render_all(spec.params, values) or None, headers=headers,
                                       **payload)  # fmt: skip
        if spec.id is None or not response.content:
            return None
        found = jmespath.search(spec.id, self.client.parse_json(response, method=spec.method))
        return str(found) if found not in (None, "") else None

    def find_written(self, write: CrmWrite, since: datetime) -> str | None:
        """``find_operation`` by key when defined, else a fresh pass over the operations."""
        spec = self.definition.find_operation
        operations = (
            self._list(spec, _values(write), {}) if spec is not None else self.operations(resume=False)
        )
        for operation in operations:
            if self.operation_key(operation) == write.key:
                return self.operation_id(operation)
        return None

    # -- reads --

    def operations(self, resume: bool) -> Iterator[dict[str, Any]]:
        """Every operation of the ``operations`` endpoint (a generic feed cannot resume: always the whole)."""
        for operation in self._list(self.definition.operations, {}, {}):
            if not isinstance(operation, dict):
                raise FatalRemoteError("an operation is not a JSON object: check operations.items",
                                       system=self.system)  # fmt: skip
            yield operation

    def operation_id(self, operation: Mapping[str, Any]) -> str:
        """``fields.id``."""
        return str(self._fields["id"].search(operation))

    def operation_key(self, operation: Mapping[str, Any]) -> str | None:
        """``fields.key``."""
        return _text(self._fields["key"].search(operation))

    def operation_time(self, operation: Mapping[str, Any]) -> datetime:
        """``fields.created_at``: ISO 8601; without an offset it is the CRM's zone, a date is its midnight."""
        raw = self._fields["created_at"].search(operation)
        try:
            moment = datetime.fromisoformat(str(raw))
        except ValueError:
            raise MappingError("the operation's time is not ISO 8601", system=self.system,
                               document=self.operation_id(operation), field="created_at") from None  # fmt: skip
        return moment if moment.tzinfo else moment.replace(tzinfo=self.zone)

    def balance(self, account_id: str) -> Decimal:
        """The ``balance`` endpoint's ``value``."""
        spec = self.definition.balance
        if spec is None or spec.value is None:
            raise ConfigError(f"systems.{self.system}.options.balance: no balance endpoint with a value path")
        body = self.client.get_json(str(_render(spec.path, {"account_id": account_id})))
        return _number(jmespath.search(spec.value, body), self.system, "balance")


def _values(write: CrmWrite) -> dict[str, Any]:
    posting = write.posting
    return {
        "key": write.key,
        "account_id": write.account.id,
        "phone": write.account.phone,
        "card": write.account.card,
        "amount": write.amount,
        "amount_number": Decimal(write.amount),
        "activation": _iso(write.activation),
        "expiry": _iso(write.expiry),
        "occurred_at": posting.occurred_at.isoformat(),
        "kind": posting.kind,
        "direction": write.direction,
    }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _form(body: Mapping[str, Any]) -> str:
    return urlencode({name: str(value) for name, value in body.items()})


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _number(value: Any, system: str, field: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise MappingError("not a number", system=system, field=field) from None
