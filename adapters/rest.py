"""Generic JSON REST over the HTTP policy: auth schemes and paginators (cursor, offset, page number, link).

Auth schemes are ``requests`` auth objects that also list their secrets (so :class:`~adapters.http.HttpClient`
scrubs them from error excerpts). Paginators are small strategy classes with an explicit stop rule, in the
singer-sdk ``pagination.py`` manner: :meth:`Paginator.first_request`, :meth:`Paginator.has_more` and
:meth:`Paginator.next_request`. :func:`paginate` drives any of them and adds what every one needs and
dlt #2816/#3358 show missing — a hard page cap and loop detection (the same request twice, or a page that repeats
the previous one, is an error, never an endless loop)::

    client = HttpClient(SystemHttpConfig(system="evotor", base_url="https://api.evotor.ru"),
                        auth=HeaderTokenAuth(token, header="X-Authorization"))
    docs = paginate(client, f"stores/{store}/documents",
                    CursorPaginator("paging.next_cursor", param="cursor", first_page_only=True),
                    items_path="items", params={"since": since_ms, "type": "SELL,PAYBACK"})
"""

from __future__ import annotations

import base64
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jmespath
import requests
from jmespath.exceptions import JMESPathError
from pydantic import SecretStr
from requests.auth import AuthBase

from adapters.http import HttpClient
from adapters.jsonwire import JSONObject, split_items
from connector.errors import ConfigError, FatalRemoteError
from connector.logs import mask_text

__all__ = [
    "AUTH_SCHEMES",
    "PAGINATORS",
    "BasicAuth",
    "BearerAuth",
    "CursorPaginator",
    "HeaderTokenAuth",
    "LinkPaginator",
    "MultiAuth",
    "OffsetPaginator",
    "Page",
    "PageNumberPaginator",
    "PageRequest",
    "Paginator",
    "QueryApiKeyAuth",
    "make_auth",
    "make_paginator",
    "paginate",
    "paginate_texts",
]

DEFAULT_MAX_PAGES = 10_000


def _reveal(secret: str | SecretStr) -> str:
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


class _SecretAuth(AuthBase):
    """Base of the schemes below: keeps secrets as :class:`~pydantic.SecretStr` so a repr never shows them."""

    _secret: SecretStr

    def secrets(self) -> Iterable[str]:
        """The literal secret values, for scrubbing error excerpts."""
        return [self._secret.get_secret_value()]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(***)"


class HeaderTokenAuth(_SecretAuth):
    """A token in a header, as is: Evotor ``X-Authorization: <token>``, RetailCRM ``X-API-KEY: <key>``.

    Args:
        token: the token.
        header: the header name.
        prefix: text before the token (``"Bearer "`` makes this :class:`BearerAuth`).
    """

    def __init__(self, token: str | SecretStr, *, header: str = "X-Authorization", prefix: str = "") -> None:
        self._secret = SecretStr(_reveal(token))
        self.header = header
        self.prefix = prefix

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self.header] = f"{self.prefix}{self._secret.get_secret_value()}"
        return request


class BearerAuth(HeaderTokenAuth):
    """``Authorization: Bearer <token>``."""

    def __init__(self, token: str | SecretStr, *, header: str = "Authorization") -> None:
        super().__init__(token, header=header, prefix="Bearer ")


class BasicAuth(_SecretAuth):
    """HTTP Basic with the user and password encoded as UTF-8.

    ``requests``' own ``HTTPBasicAuth`` encodes as latin-1, which fails on Cyrillic 1C logins (``Обмен``); IIS
    answers cp1251 with 401.5, so UTF-8 is the one encoding that works (reference/onec.md §1.1).
    """

    def __init__(self, user: str, password: str | SecretStr) -> None:
        self.user = user
        self._secret = SecretStr(_reveal(password))

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        pair = f"{self.user}:{self._secret.get_secret_value()}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return request

    def secrets(self) -> Iterable[str]:
        """The password and the encoded header value (a server may echo either)."""
        pair = f"{self.user}:{self._secret.get_secret_value()}".encode()
        return [self._secret.get_secret_value(), base64.b64encode(pair).decode("ascii")]


class QueryApiKeyAuth(_SecretAuth):
    """An API key as a query parameter (RetailCRM ``?apiKey=…``). Paths in logs and errors never show queries."""

    def __init__(self, key: str | SecretStr, *, param: str = "apiKey") -> None:
        self._secret = SecretStr(_reveal(key))
        self.param = param

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.prepare_url(request.url, {self.param: self._secret.get_secret_value()})
        return request


class MultiAuth(AuthBase):
    """Several schemes at once — Evotor clients send both ``X-Authorization`` and ``Authorization: Bearer``."""

    def __init__(self, *schemes: AuthBase) -> None:
        self.schemes = schemes

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        for scheme in self.schemes:
            request = scheme(request)
        return request

    def secrets(self) -> Iterable[str]:
        """The secrets of every scheme."""
        return [secret for scheme in self.schemes for secret in getattr(scheme, "secrets", list)()]


# -- paginators ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageRequest:
    """What to ask for next: a path (relative, or an absolute next link) and the query parameters."""

    path: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A stable identity of the request, for loop detection."""
        return self.path + "?" + json.dumps(self.params, sort_keys=True, default=str)


@dataclass(frozen=True)
class Page:
    """One fetched page: the request, the parsed body (``None`` for 204/empty), the items and the headers."""

    request: PageRequest
    body: Any
    items: list[Any]
    headers: Mapping[str, str]
    links: Mapping[str, Mapping[str, str]]


def _compile(expression: str) -> Any:
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise ConfigError(f"bad JMESPath expression {expression!r}: {exc}", field=expression) from None


def _search(compiled: Any, body: Any) -> Any:
    return compiled.search(body) if body is not None else None


class Paginator(ABC):
    """A paging strategy with an explicit stop rule.

    Args:
        max_pages: the hard cap; reaching it with pages still left raises instead of looping on.
    """

    def __init__(self, *, max_pages: int = DEFAULT_MAX_PAGES) -> None:
        self.max_pages = max_pages

    def first_request(self, path: str, params: Mapping[str, Any]) -> PageRequest:
        """The request of the first page (the caller's parameters plus this strategy's own)."""
        return PageRequest(path, dict(params))

    @abstractmethod
    def has_more(self, page: Page) -> bool:
        """Whether another page follows ``page`` — the stop rule."""

    @abstractmethod
    def next_request(self, page: Page) -> PageRequest:
        """The request of the page after ``page`` (only called when :meth:`has_more` said so)."""


class CursorPaginator(Paginator):
    """An opaque cursor from the body (Evotor ``paging.next_cursor``, RetailCRM ``pagination.nextCursor``).

    Stops when the cursor is missing, null or empty (Evotor's last page has ``paging: {}``).

    Args:
        cursor_path: JMESPath of the next cursor in the body.
        param: query parameter that carries it.
        first_page_only: send the caller's parameters on the first page only, then the cursor alone (Evotor:
            "since/until/type are required only in the first request of a series").
        max_pages: the hard cap.
    """

    def __init__(
        self, cursor_path: str, *, param: str = "cursor", first_page_only: bool = False,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:  # fmt: skip
        super().__init__(max_pages=max_pages)
        self.cursor_path = _compile(cursor_path)
        self.param = param
        self.first_page_only = first_page_only

    def has_more(self, page: Page) -> bool:
        """True while the body carries a non-empty cursor."""
        return _search(self.cursor_path, page.body) not in (None, "")

    def next_request(self, page: Page) -> PageRequest:
        """The cursor alone, or with the first page's parameters."""
        base = {} if self.first_page_only else dict(page.request.params)
        return PageRequest(page.request.path, {**base, self.param: _search(self.cursor_path, page.body)})


class OffsetPaginator(Paginator):
    """``offset``/``limit`` paging: stops on a page shorter than ``limit`` or when ``offset`` reaches the total.

    Args:
        limit: page size sent with every request.
        offset_param: name of the offset parameter.
        limit_param: name of the limit parameter.
        total_path: JMESPath of the total count, if the API gives one; a null total is ignored (dlt #4429).
        max_pages: the hard cap.
    """

    def __init__(
        self, limit: int = 100, *, offset_param: str = "offset", limit_param: str = "limit",
        total_path: str | None = None, max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:  # fmt: skip
        super().__init__(max_pages=max_pages)
        self.limit = limit
        self.offset_param = offset_param
        self.limit_param = limit_param
        self.total_path = _compile(total_path) if total_path else None

    def first_request(self, path: str, params: Mapping[str, Any]) -> PageRequest:
        """Offset 0 with the page size."""
        return PageRequest(path, {**params, self.offset_param: 0, self.limit_param: self.limit})

    def has_more(self, page: Page) -> bool:
        """False on a short page, or once the next offset reaches the stated total."""
        if len(page.items) < self.limit:
            return False
        total = _search(self.total_path, page.body) if self.total_path else None
        return total is None or self._offset(page) + self.limit < int(total)

    def next_request(self, page: Page) -> PageRequest:
        """The same request, ``limit`` further."""
        return PageRequest(
            page.request.path, {**page.request.params, self.offset_param: self._offset(page) + self.limit}
        )

    def _offset(self, page: Page) -> int:
        return int(page.request.params.get(self.offset_param, 0))


class PageNumberPaginator(Paginator):
    """Page-number paging: stops at the stated page count, on an empty page, or on a page shorter than its size.

    Args:
        page_param: name of the page parameter.
        start: number of the first page (1 for RetailCRM and amoCRM).
        page_size: page size to send with ``size_param`` (and to recognise a short last page); ``None`` to omit.
        size_param: name of the page-size parameter.
        total_pages_path: JMESPath of the page count (RetailCRM ``pagination.totalPageCount``).
        max_pages: the hard cap.
    """

    def __init__(
        self, *, page_param: str = "page", start: int = 1, page_size: int | None = None,
        size_param: str = "limit", total_pages_path: str | None = None, max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:  # fmt: skip
        super().__init__(max_pages=max_pages)
        self.page_param = page_param
        self.start = start
        self.page_size = page_size
        self.size_param = size_param
        self.total_pages_path = _compile(total_pages_path) if total_pages_path else None

    def first_request(self, path: str, params: Mapping[str, Any]) -> PageRequest:
        """The first page, with the page size when one is set."""
        size = {self.size_param: self.page_size} if self.page_size else {}
        return PageRequest(path, {**params, **size, self.page_param: self.start})

    def has_more(self, page: Page) -> bool:
        """False past the stated page count, on an empty page, or on a short one."""
        if not page.items or (self.page_size is not None and len(page.items) < self.page_size):
            return False
        total = _search(self.total_pages_path, page.body) if self.total_pages_path else None
        return total is None or self._number(page) - self.start + 1 < int(total)

    def next_request(self, page: Page) -> PageRequest:
        """The next page number."""
        return PageRequest(
            page.request.path, {**page.request.params, self.page_param: self._number(page) + 1}
        )

    def _number(self, page: Page) -> int:
        return int(page.request.params.get(self.page_param, self.start))


class LinkPaginator(Paginator):
    """Follows a next URL: the ``Link: <…>; rel="next"`` header, or a URL at a JMESPath in the body.

    The next URL carries its own query, so later requests send no parameters. Links to another host are refused
    by the client (they would receive our credentials).

    Args:
        next_url_path: JMESPath of the next URL in the body (``'"@odata.nextLink"'``, ``_links.next.href``);
            ``None`` to read the ``Link`` header.
        max_pages: the hard cap.
    """

    def __init__(self, next_url_path: str | None = None, *, max_pages: int = DEFAULT_MAX_PAGES) -> None:
        super().__init__(max_pages=max_pages)
        self.next_url_path = _compile(next_url_path) if next_url_path else None

    def has_more(self, page: Page) -> bool:
        """True while a next URL is given."""
        return bool(self._next_url(page))

    def next_request(self, page: Page) -> PageRequest:
        """The next URL, as given."""
        return PageRequest(str(self._next_url(page)), {})

    def _next_url(self, page: Page) -> Any:
        if self.next_url_path is not None:
            return _search(self.next_url_path, page.body)
        return page.links.get("next", {}).get("url")


def _items(client: HttpClient, request: PageRequest, body: Any, items_path: Any) -> list[Any]:
    found = items_path.search(body) if items_path is not None and body is not None else body
    if found is None:
        return []
    if not isinstance(found, list):
        raise _paging_error(client, request.path, 0, f"the page's items are a {type(found).__name__}, not a list: "
                            "check items_path")  # fmt: skip
    return found


def _fetch(
    client: HttpClient, request: PageRequest, headers: Mapping[str, str] | None, items_path: Any
) -> Page:
    response = client.request("GET", request.path, params=dict(request.params) or None, headers=headers)
    body = client.parse_json(response) if response.content and response.status_code != 204 else None
    links = {str(key): dict(value) for key, value in response.links.items()}
    return Page(request, body, _items(client, request, body, items_path), dict(response.headers), links)


def _fetch_texts(
    client: HttpClient, request: PageRequest, headers: Mapping[str, str] | None, key: str
) -> Page:
    """:func:`_fetch` for items at a top-level member ``key``, each kept as a :class:`JSONObject` (its text)."""
    response = client.request("GET", request.path, params=dict(request.params) or None, headers=headers)
    links = {str(name): dict(value) for name, value in response.links.items()}
    if not response.content or response.status_code == 204:
        return Page(request, None, [], dict(response.headers), links)
    try:
        body, items = split_items(response.content, key)
    except ValueError as exc:
        raise _paging_error(client, request.path, 0, f"the page is not the expected JSON: {exc}") from None
    return Page(request, body, list(items), dict(response.headers), links)


def _pages(
    client: HttpClient, path: str, paginator: Paginator, params: Mapping[str, Any] | None,
    fetch: Callable[[PageRequest], Page],
) -> Iterator[Page]:  # fmt: skip
    """Every page in order until the paginator's stop rule says so (see :func:`paginate` for what is refused)."""
    request = paginator.first_request(path, params or {})
    seen: set[str] = set()
    previous: list[Any] | None = None
    for number in range(1, paginator.max_pages + 1):
        seen.add(request.fingerprint())
        page = fetch(request)
        if page.items and page.items == previous:  # JSONObject items compare by text
            raise _paging_error(client, path, number, "the page repeats the previous one: paging is ignored")
        yield page
        if not paginator.has_more(page):
            return
        previous, request = page.items, paginator.next_request(page)
        if request.fingerprint() in seen:
            raise _paging_error(client, path, number, "the next page was already fetched: paging loops")
    raise _paging_error(
        client, path, paginator.max_pages, "page cap reached with pages left: raise max_pages"
    )


def paginate(
    client: HttpClient,
    path: str,
    paginator: Paginator,
    items_path: str | None,
    *,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    """Yield every item of every page, in order, until the paginator's stop rule says so.

    Args:
        client: the system's HTTP client (timeouts, retries, budget).
        path: path of the first page.
        paginator: the strategy.
        items_path: JMESPath of the item list in a page (``items``, ``value``, ``bonusOperations``); ``None``
            when the body itself is the list. A 204 or empty body is an empty page.
        params: the first page's query parameters.
        headers: extra headers for every page.

    Raises:
        FatalRemoteError: the page cap was reached with pages left, the same request came up twice, or a page
            repeated the previous one (an API that ignores its paging parameter).
    """
    compiled = _compile(items_path) if items_path else None
    for page in _pages(
        client, path, paginator, params, lambda request: _fetch(client, request, headers, compiled)
    ):
        yield from page.items


def paginate_texts(
    client: HttpClient,
    path: str,
    paginator: Paginator,
    key: str,
    *,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Iterator[JSONObject]:
    """:func:`paginate` for pages whose items are the list at top-level member ``key``, each item kept as sent.

    Each item is a :class:`~adapters.jsonwire.JSONObject`: its JSON text exactly as the system sent it, for a
    journal that keeps raw payloads as received and versions them by that text, decoded only as far as asked.
    The page's other members are decoded (the paginator reads its cursor there).
    """
    for page in _pages(
        client, path, paginator, params, lambda request: _fetch_texts(client, request, headers, key)
    ):
        yield from page.items


def _paging_error(client: HttpClient, path: str, pages: int, reason: str) -> FatalRemoteError:
    shown = mask_text(urlsplit(path).path or path)
    return FatalRemoteError(
        f"{client.system}: GET {shown}: {reason}", system=client.system, path=shown, pages=pages
    )


# -- registries for declarative adapters ---------------------------------------------------------------------

AUTH_SCHEMES: Mapping[str, Callable[..., AuthBase]] = {
    "header": HeaderTokenAuth,
    "bearer": BearerAuth,
    "basic": BasicAuth,
    "query": QueryApiKeyAuth,
}
"""Auth scheme kinds a generic REST system's config can name."""

PAGINATORS: Mapping[str, Callable[..., Paginator]] = {
    "cursor": CursorPaginator,
    "offset": OffsetPaginator,
    "page": PageNumberPaginator,
    "link": LinkPaginator,
}
"""Paginator kinds a generic REST system's config can name."""


def _build(
    registry: Mapping[str, Callable[..., Any]], what: str, kind: str, options: Mapping[str, Any]
) -> Any:
    if kind not in registry:
        raise ConfigError(f"unknown {what} {kind!r}; known: {', '.join(registry)}", field=what)
    try:
        return registry[kind](**options)
    except TypeError as exc:
        raise ConfigError(f"bad options for the {kind} {what}: {exc}", field=what) from None


def make_auth(kind: str, **options: Any) -> AuthBase:
    """An auth scheme from config: ``make_auth("query", key=secret, param="apiKey")``.

    Raises:
        ConfigError: unknown kind or options.
    """
    built: AuthBase = _build(AUTH_SCHEMES, "auth scheme", kind, options)
    return built


def make_paginator(kind: str, **options: Any) -> Paginator:
    """A paginator from config: ``make_paginator("cursor", cursor_path="pagination.nextCursor")``.

    Raises:
        ConfigError: unknown kind, options, or a bad JMESPath.
    """
    built: Paginator = _build(PAGINATORS, "paginator", kind, options)
    return built
