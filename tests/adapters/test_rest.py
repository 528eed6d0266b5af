"""Auth schemes and paginators: each paginator to the end, at its cap, and caught in a loop."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from pydantic import SecretStr
from responses import matchers

from adapters.http import HttpClient, HttpPolicy, SystemHttpConfig
from adapters.rest import (
    BasicAuth,
    BearerAuth,
    CursorPaginator,
    HeaderTokenAuth,
    LinkPaginator,
    MultiAuth,
    OffsetPaginator,
    PageNumberPaginator,
    QueryApiKeyAuth,
    make_auth,
    make_paginator,
    paginate,
)
from connector.errors import ConfigError, FatalRemoteError

BASE = "https://api.example.ru/v2"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def make_client(auth: Any = None) -> HttpClient:
    config = SystemHttpConfig(system="api", base_url=BASE, policy=HttpPolicy(max_retries=0))
    return HttpClient(config, auth=auth, sleep=lambda _s: None)


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(str(call.request.url)).query)


def ids(n: int, start: int = 0) -> list[dict[str, int]]:
    return [{"id": i} for i in range(start, start + n)]


# -- auth --


def test_auth_schemes_set_their_header_or_parameter(mocked: responses.RequestsMock) -> None:
    for _ in range(4):
        mocked.get(f"{BASE}/me", json={})
    schemes = [
        HeaderTokenAuth(SecretStr("tok-1"), header="X-Authorization"),
        BearerAuth("tok-2"),
        BasicAuth("user", "pw"),
        QueryApiKeyAuth("key-3", param="apiKey"),
    ]
    for scheme in schemes:
        make_client(scheme).get_json("me")
    headers = [call.request.headers for call in mocked.calls]
    assert headers[0]["X-Authorization"] == "tok-1"
    assert headers[1]["Authorization"] == "Bearer tok-2"
    assert headers[2]["Authorization"] == "Basic dXNlcjpwdw=="
    assert query(mocked.calls[3]) == {"apiKey": ["key-3"]}


def test_multi_auth_sends_both_evotor_headers(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/stores", json=[])
    auth = MultiAuth(HeaderTokenAuth("tok"), BearerAuth("tok"))
    make_client(auth).get_json("stores")
    sent = mocked.calls[0].request.headers
    assert sent["X-Authorization"] == "tok"
    assert sent["Authorization"] == "Bearer tok"
    assert list(auth.secrets()) == ["tok", "tok"]


def test_auth_repr_hides_the_secret() -> None:
    for scheme in (
        HeaderTokenAuth("tok-xyz"),
        BearerAuth("tok-xyz"),
        BasicAuth("u", "tok-xyz"),
        QueryApiKeyAuth("tok-xyz"),
    ):
        assert "tok-xyz" not in repr(scheme)
        assert "tok-xyz" in list(scheme.secrets())


# -- cursor --


def test_cursor_to_the_end_evotor_style(mocked: responses.RequestsMock) -> None:
    url = f"{BASE}/stores/s1/documents"
    first = matchers.query_param_matcher({"since": "1700000000000", "type": "SELL,PAYBACK"})
    mocked.get(url, json={"items": ids(2), "paging": {"next_cursor": "c1"}}, match=[first])
    mocked.get(
        url,
        json={"items": ids(2, 2), "paging": {"next_cursor": "c2"}},
        match=[matchers.query_param_matcher({"cursor": "c1"})],
    )
    mocked.get(
        url, json={"items": ids(1, 4), "paging": {}}, match=[matchers.query_param_matcher({"cursor": "c2"})]
    )
    paginator = CursorPaginator("paging.next_cursor", first_page_only=True)
    params = {"since": 1700000000000, "type": "SELL,PAYBACK"}
    items = list(paginate(make_client(), "stores/s1/documents", paginator, "items", params=params))
    assert [item["id"] for item in items] == [0, 1, 2, 3, 4]


def test_cursor_keeps_parameters_when_asked(mocked: responses.RequestsMock) -> None:
    url = f"{BASE}/loyalty/bonus/operations"
    mocked.get(url, json={"bonusOperations": ids(1), "pagination": {"nextCursor": "n1"}})
    mocked.get(url, json={"bonusOperations": ids(1, 1), "pagination": {"nextCursor": None}})
    paginator = CursorPaginator("pagination.nextCursor")
    items = list(
        paginate(
            make_client(), "loyalty/bonus/operations", paginator, "bonusOperations", params={"limit": 100}
        )
    )
    assert len(items) == 2
    assert query(mocked.calls[1]) == {"limit": ["100"], "cursor": ["n1"]}


def test_same_cursor_twice_is_a_loop(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/ops", json={"items": ids(1), "next": "A"})
    mocked.get(f"{BASE}/ops", json={"items": ids(1, 1), "next": "A"})
    with pytest.raises(FatalRemoteError, match="already fetched"):
        list(paginate(make_client(), "ops", CursorPaginator("next"), "items"))


def test_cursor_page_cap(mocked: responses.RequestsMock) -> None:
    for n in range(3):
        mocked.get(f"{BASE}/ops", json={"items": ids(1, n), "next": f"c{n}"})
    with pytest.raises(FatalRemoteError, match="page cap") as caught:
        list(paginate(make_client(), "ops", CursorPaginator("next", max_pages=3), "items"))
    assert caught.value.context["pages"] == 3


# -- offset --


def test_offset_to_the_short_page(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/entity/bonustransaction", json={"rows": ids(2)})
    mocked.get(f"{BASE}/entity/bonustransaction", json={"rows": ids(2, 2)})
    mocked.get(f"{BASE}/entity/bonustransaction", json={"rows": ids(1, 4)})
    items = list(paginate(make_client(), "entity/bonustransaction", OffsetPaginator(limit=2), "rows"))
    assert [i["id"] for i in items] == [0, 1, 2, 3, 4]
    assert [query(c)["offset"] for c in mocked.calls] == [["0"], ["2"], ["4"]]
    assert query(mocked.calls[0])["limit"] == ["2"]


def test_offset_stops_at_the_total_and_ignores_a_null_total(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/h", json={"rows": ids(2), "meta": {"size": 4}})
    mocked.get(f"{BASE}/h", json={"rows": ids(2, 2), "meta": {"size": 4}})
    items = list(paginate(make_client(), "h", OffsetPaginator(limit=2, total_path="meta.size"), "rows"))
    assert len(items) == 4
    mocked.get(f"{BASE}/n", json={"rows": ids(2), "meta": {"size": None}})
    mocked.get(f"{BASE}/n", json={"rows": [], "meta": {"size": None}})
    assert (
        len(list(paginate(make_client(), "n", OffsetPaginator(limit=2, total_path="meta.size"), "rows"))) == 2
    )


def test_offset_ignored_by_the_server_is_caught(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/h", json={"rows": ids(2)})
    mocked.get(f"{BASE}/h", json={"rows": ids(2)})
    with pytest.raises(FatalRemoteError, match="repeats the previous"):
        list(paginate(make_client(), "h", OffsetPaginator(limit=2), "rows"))


def test_offset_page_cap(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/h", json={"rows": ids(2)})
    mocked.get(f"{BASE}/h", json={"rows": ids(2, 2)})
    with pytest.raises(FatalRemoteError, match="page cap"):
        list(paginate(make_client(), "h", OffsetPaginator(limit=2, max_pages=2), "rows"))


# -- page number --


def test_page_number_with_total_pages(mocked: responses.RequestsMock) -> None:
    for page in (1, 2):
        mocked.get(
            f"{BASE}/customers", json={"customers": ids(3, page * 10), "pagination": {"totalPageCount": 2}}
        )
    paginator = PageNumberPaginator(page_size=3, total_pages_path="pagination.totalPageCount")
    items = list(paginate(make_client(), "customers", paginator, "customers"))
    assert len(items) == 6
    assert [query(c)["page"] for c in mocked.calls] == [["1"], ["2"]]
    assert query(mocked.calls[0])["limit"] == ["3"]


def test_page_number_stops_on_an_empty_page_or_204(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/leads", json={"_embedded": {"leads": ids(2)}})
    mocked.get(f"{BASE}/leads", status=204)  # amoCRM answers an empty page with 204
    items = list(paginate(make_client(), "leads", PageNumberPaginator(), "_embedded.leads"))
    assert len(items) == 2


def test_page_number_cap(mocked: responses.RequestsMock) -> None:
    for n in range(2):
        mocked.get(f"{BASE}/leads", json=ids(1, n))
    with pytest.raises(FatalRemoteError, match="page cap"):
        list(paginate(make_client(), "leads", PageNumberPaginator(max_pages=2), None))


# -- link --


def test_link_header_to_the_end(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/items", json=ids(2), headers={"Link": f'<{BASE}/items?page=2>; rel="next"'})
    mocked.get(f"{BASE}/items", json=ids(1, 2), headers={"Link": f'<{BASE}/items?page=1>; rel="prev"'})
    items = list(paginate(make_client(), "items", LinkPaginator(), None, params={"q": "x"}))
    assert len(items) == 3
    assert query(mocked.calls[1]) == {"page": ["2"]}


def test_link_in_body_and_loop(mocked: responses.RequestsMock) -> None:
    body_link = {"value": ids(1), "@odata.nextLink": f"{BASE}/c?$skiptoken=1"}
    mocked.get(f"{BASE}/c", json=body_link)
    mocked.get(f"{BASE}/c", json={**body_link, "value": ids(1, 1)})
    with pytest.raises(FatalRemoteError, match="already fetched"):
        list(paginate(make_client(), "c", LinkPaginator('"@odata.nextLink"'), "value"))


def test_link_page_cap(mocked: responses.RequestsMock) -> None:
    for n in range(2):
        mocked.get(f"{BASE}/c", json={"value": ids(1, n), "next": f"{BASE}/c?p={n + 1}"})
    with pytest.raises(FatalRemoteError, match="page cap"):
        list(paginate(make_client(), "c", LinkPaginator("next", max_pages=2), "value"))


# -- misc --


def test_bad_jmespath_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="JMESPath"):
        CursorPaginator("paging.[")


def test_items_that_are_not_a_list_are_refused(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/x", json={"items": {"id": 1}})
    with pytest.raises(FatalRemoteError, match="not a list"):
        list(paginate(make_client(), "x", CursorPaginator("next"), "items"))


def test_registries_build_from_config() -> None:
    paginator = make_paginator("page", page_size=50, total_pages_path="pagination.totalPageCount")
    assert isinstance(paginator, PageNumberPaginator)
    assert paginator.page_size == 50
    auth = make_auth("query", key=SecretStr("k-123"), param="apiKey")
    assert isinstance(auth, QueryApiKeyAuth)
    with pytest.raises(ConfigError, match="unknown paginator 'pages'"):
        make_paginator("pages")
    with pytest.raises(ConfigError, match="bad options for the cursor paginator"):
        make_paginator("cursor", cursor="x")
    with pytest.raises(ConfigError, match="unknown auth scheme"):
        make_auth("oauth2")


def test_form_encoded_write(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/loyalty/account/1/bonus/credit", json={"success": True})
    make_client().request(
        "POST", "loyalty/account/1/bonus/credit", data={"amount": "10.00", "comment": "lc:k 1"}
    )
    assert mocked.calls[0].request.body == "amount=10.00&comment=lc%3Ak+1"
