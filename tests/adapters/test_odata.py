"""The 1C OData dialect: URL encoding, safe literals and filters, paging stop rules, decoding, errors, writes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
import requests
import responses
from hypothesis import given
from hypothesis import strategies as st

from adapters.http import HttpClient, HttpPolicy, SystemHttpConfig
from adapters.odata import (
    EMPTY_GUID,
    ODataClient,
    and_,
    contains,
    datetime_literal,
    decode_row,
    eq,
    ge,
    guid,
    in_,
    literal,
    lt,
    not_,
    parse_metadata,
    string_literal,
)
from adapters.rest import BasicAuth
from connector.errors import (
    FatalRemoteError,
    RemoteConfigError,
    RemoteNotFoundError,
    RetriableRemoteError,
)

BASE = "http://1c.local/ut/odata/standard.odata"
MSK = ZoneInfo("Europe/Moscow")
REF = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
CHEQUE = "%D0%A7%D0%B5%D0%BA%D0%9A%D0%9A%D0%9C"  # ЧекККМ


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def make_client(version: int = 3, page_size: int = 2, max_pages: int = 50) -> ODataClient:
    config = SystemHttpConfig(system="onec", base_url=BASE, policy=HttpPolicy(max_retries=2))
    http = HttpClient(config, auth=BasicAuth("Обмен", "secret-pw"), sleep=lambda _s: None)
    return ODataClient(http, timezone=MSK, version=version, page_size=page_size, max_pages=max_pages)


def page(*refs: str, **extra: Any) -> dict[str, Any]:
    return {
        "odata.metadata": f"{BASE}/$metadata#Document_ЧекККМ",
        "value": [{"Ref_Key": r} for r in refs],
        **extra,
    }


def ref(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


def query_of(call: Any) -> str:
    return str(call.request.url).split("?", 1)[1]


# -- literals and filters --


def test_string_literal_doubles_quotes_so_injection_stays_inside() -> None:
    attack = "x' or Ref_Key ne guid'00000000-0000-0000-0000-000000000000"
    text = str(eq("Комментарий", attack))
    assert text == "Комментарий eq 'x'' or Ref_Key ne guid''00000000-0000-0000-0000-000000000000'"
    # the value is one literal: strip it and nothing of the attack is left outside the quotes
    assert text.replace(string_literal(attack), "") == "Комментарий eq "


def test_guid_literal_refuses_non_guids() -> None:
    assert guid(REF.upper()) == f"guid'{REF}'"
    for bad in ["x' or 1 eq 1", f"{REF}' or true", "", REF[:-1]]:
        with pytest.raises(ValueError, match="not a GUID"):
            guid(bad)


def test_field_names_are_checked() -> None:
    assert str(eq("Товары/Цена", Decimal("10.50"))) == "Товары/Цена eq 10.50"
    for bad in ["Date eq Date or 1", "x)", "a b", "1abc", "A/"]:
        with pytest.raises(ValueError, match="property name"):
            eq(bad, 1)


def test_datetime_literal_is_zone_less_local_time() -> None:
    aware = datetime(2026, 3, 15, 11, 32, 7, 900, tzinfo=UTC)
    assert datetime_literal(aware, MSK) == "datetime'2026-03-15T14:32:07'"
    assert datetime_literal(datetime(2026, 3, 15, 14, 0)) == "datetime'2026-03-15T14:00:00'"
    assert datetime_literal(date(2026, 3, 15)) == "datetime'2026-03-15T00:00:00'"
    with pytest.raises(ValueError, match="zone"):
        datetime_literal(aware)


def test_literals_for_plain_values() -> None:
    assert [literal(v) for v in (True, False, 7, Decimal("1E+2"), None)] == [
        "true",
        "false",
        "7",
        "100",
        "null",
    ]
    with pytest.raises(TypeError, match="Decimal"):
        literal(1.5)


def test_filter_combinators_parenthesise() -> None:
    flt = and_(
        eq("DeletionMark", False), in_("ВидОперации", ["Продажа", "Возврат"]), not_(eq("Posted", True))
    )
    assert str(flt) == (
        "DeletionMark eq false and (ВидОперации eq 'Продажа' or ВидОперации eq 'Возврат') and not (Posted eq true)"
    )
    assert str(eq("A", 1) & eq("B", 2) | eq("C", 3)) == "(A eq 1 and B eq 2) or C eq 3"
    assert str(contains("Комментарий", "lc:it's")) == "substringof('lc:it''s', Комментарий)"


# -- URLs --


def test_query_url_is_utf8_percent_encoded_with_percent20(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/Document_ЧекККМ", json=page())
    start = datetime(2026, 3, 1, tzinfo=MSK)
    flt = and_(ge("Date", datetime_literal(start, MSK)), eq("Комментарий", "a b+c&d'e"))
    list(make_client().query("Document_ЧекККМ", filter=flt, select=["Number", "Date"], orderby=["Date"]))
    url = str(mocked.calls[0].request.url)
    assert url.startswith(f"{BASE}/Document_{CHEQUE}?")
    raw = query_of(mocked.calls[0])
    assert "+" not in raw
    assert " " not in raw
    assert "%20" in raw
    assert "%2B" in raw
    assert "%26" in raw
    params = dict(part.split("=", 1) for part in raw.split("&"))
    assert unquote(params["$filter"]) == (
        "Date ge datetime'2026-03-01T00:00:00' and Комментарий eq 'a b+c&d''e'"
    )
    assert unquote(params["$select"]) == "Number,Date,Ref_Key"
    assert unquote(params["$orderby"]) == "Date,Ref_Key"
    assert params["$format"] == "json"
    assert params["$top"] == "2"
    assert params["$skip"] == "0"


def test_basic_auth_sent(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/Catalog_Партнеры(guid'{REF}')", json={"Ref_Key": REF})
    make_client().get("Catalog_Партнеры", REF)
    assert mocked.calls[0].request.headers["Authorization"].startswith("Basic ")


def test_entity_set_names_are_checked() -> None:
    with pytest.raises(ValueError, match="entity set"):
        make_client().get("Catalog_X(guid'1')/../$metadata", REF)


# -- paging --


def test_pages_to_the_end_with_top_and_skip(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/Document_ЧекККМ", json=page(ref(1), ref(2)))
    mocked.get(f"{BASE}/Document_ЧекККМ", json=page(ref(3), ref(4)))
    mocked.get(f"{BASE}/Document_ЧекККМ", json=page(ref(5)))
    rows = list(make_client().query("Document_ЧекККМ"))
    assert [r["Ref_Key"] for r in rows] == [ref(1), ref(2), ref(3), ref(4), ref(5)]
    skips = [dict(p.split("=") for p in query_of(c).split("&"))["$skip"] for c in mocked.calls]
    assert skips == ["0", "2", "4"]


def test_exact_multiple_stops_on_the_empty_page(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/Document_ЧекККМ", json=page(ref(1), ref(2)))
    mocked.get(f"{BASE}/Document_ЧекККМ", json=page())
    assert len(list(make_client().query("Document_ЧекККМ"))) == 2


def test_page_cap_raises(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/Document_ЧекККМ", json=page(ref(1), ref(2)))
    mocked.get(f"{BASE}/Document_ЧекККМ", json=page(ref(3), ref(4)))
    with pytest.raises(FatalRemoteError, match="page cap"):
        list(make_client(max_pages=2).query("Document_ЧекККМ"))


def test_repeated_page_is_detected(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/Document_ЧекККМ", json=page(ref(1), ref(2)))
    mocked.get(f"{BASE}/Document_ЧекККМ", json=page(ref(1), ref(2)))
    with pytest.raises(FatalRemoteError, match="repeated"):
        list(make_client().query("Document_ЧекККМ"))


def test_ignored_top_is_detected(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/Document_ЧекККМ", json=page(ref(1), ref(2), ref(3)))
    with pytest.raises(FatalRemoteError, match=r"ignored \$top"):
        list(make_client().query("Document_ЧекККМ"))


def test_row_shifted_by_an_insert_is_yielded_once(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/Document_ЧекККМ", json=page(ref(1), ref(2)))
    mocked.get(f"{BASE}/Document_ЧекККМ", json=page(ref(2), ref(3)))
    mocked.get(f"{BASE}/Document_ЧекККМ", json=page())
    assert [r["Ref_Key"] for r in make_client().query("Document_ЧекККМ")] == [ref(1), ref(2), ref(3)]


def test_v4_follows_next_link(mocked: responses.RequestsMock) -> None:
    mocked.get(
        f"{BASE}/contacts", json={"value": [{"id": 1}], "@odata.nextLink": f"{BASE}/contacts?$skiptoken=a"}
    )
    mocked.get(f"{BASE}/contacts", json={"value": [{"id": 2}], "@odata.nextLink": "contacts?$skiptoken=b"})
    mocked.get(f"{BASE}/contacts", json={"value": [{"id": 3}]})
    rows = list(make_client(version=4).query("contacts", filter=eq("active", True), key_fields=()))
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert "$filter=active%20eq%20true" in query_of(mocked.calls[0])
    assert "$format" not in query_of(mocked.calls[0])
    assert query_of(mocked.calls[2]) == "$skiptoken=b"


def test_v4_link_loop_and_cap(mocked: responses.RequestsMock) -> None:
    mocked.get(
        f"{BASE}/contacts", json={"value": [{"id": 1}], "@odata.nextLink": f"{BASE}/contacts?$skiptoken=a"}
    )
    mocked.get(
        f"{BASE}/contacts", json={"value": [{"id": 2}], "@odata.nextLink": f"{BASE}/contacts?$skiptoken=a"}
    )
    with pytest.raises(FatalRemoteError, match="already read"):
        list(make_client(version=4).query("contacts", key_fields=()))


def test_v4_page_cap(mocked: responses.RequestsMock) -> None:
    for n in range(2):
        mocked.get(f"{BASE}/c", json={"value": [{"id": n}], "@odata.nextLink": f"{BASE}/c?$skiptoken={n}"})
    with pytest.raises(FatalRemoteError, match="page cap"):
        list(make_client(version=4, max_pages=2).query("c", key_fields=()))


def test_next_link_to_another_host_is_refused(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/c", json={"value": [], "@odata.nextLink": "https://evil.example/c?$skiptoken=1"})
    with pytest.raises(RemoteConfigError, match="another host"):
        list(make_client(version=4).query("c", key_fields=()))


# -- decoding --

ROW = {
    "Ref_Key": REF,
    "Number": "00-00000042",
    "Date": "2026-03-15T14:32:07",
    "Posted": True,
    "ДатаОплаты": "0001-01-01T00:00:00",
    "Партнер_Key": EMPTY_GUID,
    "СуммаДокумента": Decimal("1234.50"),
    "Комментарий": "2026-03-15T14:32:07",
    "Товары": [{"Ref_Key": REF, "LineNumber": "1", "Количество": 2, "Сумма": Decimal("617.25")}],
}


def test_decode_row() -> None:
    decoded = decode_row(ROW, MSK, {"Комментарий": "Edm.String", "Количество": "Edm.Double"})
    assert decoded["Date"] == datetime(2026, 3, 15, 14, 32, 7, tzinfo=MSK)
    assert decoded["Date"].utcoffset().total_seconds() == 3 * 3600
    assert decoded["ДатаОплаты"] is None
    assert decoded["Партнер_Key"] is None
    assert decoded["СуммаДокумента"] == Decimal("1234.50")
    assert decoded["Комментарий"] == "2026-03-15T14:32:07"
    line = decoded["Товары"][0]
    assert line["LineNumber"] == 1
    assert line["Количество"] == Decimal(2)
    assert isinstance(line["Количество"], Decimal)
    assert decoded["Number"] == "00-00000042"
    assert decoded["Posted"] is True


def test_query_parses_doubles_as_decimal_and_can_return_raw(mocked: responses.RequestsMock) -> None:
    body = f'{{"value": [{{"Ref_Key": "{REF}", "Сумма": 0.1, "Date": "2026-03-15T00:00:00"}}]}}'
    mocked.get(f"{BASE}/Document_ЧекККМ", body=body)
    mocked.get(f"{BASE}/Document_ЧекККМ", body=body)
    client = make_client(page_size=5)
    decoded = next(client.query("Document_ЧекККМ"))
    raw = next(client.query("Document_ЧекККМ", decode=False))
    assert decoded["Сумма"] == Decimal("0.1")
    assert raw["Сумма"] == Decimal("0.1")
    assert raw["Date"] == "2026-03-15T00:00:00"


METADATA = """<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" Version="1.0">
 <edmx:DataServices><Schema xmlns="http://schemas.microsoft.com/ado/2009/11/edm" Namespace="StandardODATA">
  <EntityType Name="Document_ЧекККМ"><Key><PropertyRef Name="Ref_Key"/></Key>
   <Property Name="Ref_Key" Type="Edm.Guid"/><Property Name="Number" Type="Edm.String"/>
   <Property Name="КоличествоПокупок" Type="Edm.Int64"/></EntityType>
  <ComplexType Name="Document_ЧекККМ_Товары_RowType">
   <Property Name="LineNumber" Type="Edm.Int64"/><Property Name="Сумма" Type="Edm.Double"/></ComplexType>
  <EntityType Name="Document_ЧекККМВозврат"><Property Name="X" Type="Edm.Int32"/></EntityType>
  <ComplexType Name="AccumulationRegister_БонусныеБаллы_Balance">
   <Property Name="НачисленоBalance" Type="Edm.Double"/></ComplexType>
 </Schema></edmx:DataServices></edmx:Edmx>""".encode()


def test_metadata_types(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/$metadata", body=METADATA)
    client = make_client()
    types = client.types_for("Document_ЧекККМ")
    assert types == {"Ref_Key": "Edm.Guid", "Number": "Edm.String", "КоличествоПокупок": "Edm.Int64",
                     "LineNumber": "Edm.Int64", "Сумма": "Edm.Double"}  # fmt: skip
    assert client.types_for("Document_ЧекККМВозврат") == {"X": "Edm.Int32"}  # cached: one request only
    assert decode_row({"КоличествоПокупок": "12"}, MSK, types) == {"КоличествоПокупок": 12}
    balance_types = client.types_for("AccumulationRegister_БонусныеБаллы")
    assert decode_row({"НачисленоBalance": 1262}, MSK, balance_types) == {"НачисленоBalance": Decimal(1262)}


def test_metadata_with_entities_is_not_expanded() -> None:
    evil = b'<!DOCTYPE x [<!ENTITY e "boom">]><Edmx><EntityType Name="T"><Property Name="&e;" Type="t"/></EntityType></Edmx>'
    with pytest.raises(ValueError, match="DTD"):
        parse_metadata(evil)


# -- errors --


def odata_error(code: str, text: str) -> dict[str, Any]:
    return {"odata.error": {"code": code, "message": {"lang": "ru", "value": text}}}


def test_code_9_is_not_found(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/Document_ЧекККМ(guid'{REF}')", status=404, json=odata_error("9", "Не найден объект"))
    with pytest.raises(RemoteNotFoundError, match="OData error 9: Не найден объект"):
        make_client().get("Document_ЧекККМ", REF)


def test_code_14_is_config_and_not_retried(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/Document_ЧекККМ", status=400, json=odata_error("14", "Ошибка разбора $filter"))
    with pytest.raises(RemoteConfigError) as caught:
        list(make_client().query("Document_ЧекККМ", filter=lt("Date", date(2026, 1, 1))))
    assert "onec: GET /ut/odata/standard.odata/Document_ЧекККМ returned 400" in str(caught.value)


def test_code_minus_1_is_retried(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/Document_ЧекККМ", status=500, json=odata_error("-1", "Внутренняя ошибка"))
    mocked.get(f"{BASE}/Document_ЧекККМ", json=page(ref(1)))
    assert len(list(make_client().query("Document_ЧекККМ"))) == 1


def test_unknown_code_falls_back_to_status(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/X", status=400, json=odata_error("6", "Сегмент пути 'X' не найден"))
    with pytest.raises(RemoteConfigError, match="OData error 6"):
        list(make_client().query("X"))


# -- writes --


def test_create_posts_json_and_expects_201(mocked: responses.RequestsMock) -> None:
    created = {"Ref_Key": REF, "Number": "00-1", "Date": "2026-03-15T10:00:00", "Сумма": 10.5}
    mocked.post(f"{BASE}/Document_НачислениеИСписаниеБонусныхБаллов", status=201, json=created)
    fields = {"Date": "2026-03-15T10:00:00", "Комментарий": "lc:crm:1", "Сумма": Decimal("10.50")}
    row = make_client().create("Document_НачислениеИСписаниеБонусныхБаллов", fields)
    request = mocked.calls[0].request
    assert query_of(mocked.calls[0]) == "$format=json"
    assert json.loads(request.body) == {**fields, "Сумма": 10.5}
    assert b'"\xd0\xa1\xd1\x83\xd0\xbc\xd0\xbc\xd0\xb0":10.50' in request.body
    assert row["Ref_Key"] == REF
    assert row["Date"] == datetime(2026, 3, 15, 10, tzinfo=MSK)


def test_create_with_unknown_outcome_is_not_repeated(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/Document_X", status=500, json=odata_error("-1", "timeout"))
    with pytest.raises(RetriableRemoteError) as caught:
        make_client().create("Document_X", {"Date": "2026-03-15T10:00:00"})
    assert caught.value.context["outcome_unknown"] is True


def test_create_connection_drop_is_unknown(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/Document_X", body=requests.ReadTimeout())
    with pytest.raises(RetriableRemoteError, match="outcome unknown"):
        make_client().create("Document_X", {})


def test_patch_and_post_urls(mocked: responses.RequestsMock) -> None:
    mocked.patch(f"{BASE}/Document_X(guid'{REF}')", json={"Ref_Key": REF, "DeletionMark": True})
    mocked.post(f"{BASE}/Document_X(guid'{REF}')/Post", status=500, json=odata_error("-1", "lock"))
    mocked.post(f"{BASE}/Document_X(guid'{REF}')/Post", status=200)
    mocked.post(f"{BASE}/Document_X(guid'{REF}')/Unpost", status=204)
    client = make_client()
    assert client.patch("Document_X", REF, {"DeletionMark": True})["DeletionMark"] is True
    client.post_document("Document_X", REF)  # retried: posting twice is harmless
    client.unpost_document("Document_X", REF)
    assert mocked.calls[0].request.method == "PATCH"
    assert (
        str(mocked.calls[1].request.url)
        == f"{BASE}/Document_X(guid'{REF}')/Post?PostingModeOperational=false"
    )
    assert str(mocked.calls[3].request.url) == f"{BASE}/Document_X(guid'{REF}')/Unpost"


def test_balance_virtual_table_url(mocked: responses.RequestsMock) -> None:
    url = re.compile(re.escape(f"{BASE}/AccumulationRegister_") + r".*/Balance\(.*\)")
    mocked.get(url, json={"value": [{"Партнер_Key": REF, "НачисленоBalance": 150.5, "КСписаниюBalance": 0}]})
    client = make_client()
    rows = client.virtual_table(
        "AccumulationRegister_БонусныеБаллы",
        "Balance",
        {"Period": datetime(2026, 3, 16, tzinfo=MSK), "Condition": eq("Партнер_Key", guid(REF)),
         "Dimensions": ["Партнер"]},
    )  # fmt: skip
    assert rows == [{"Партнер_Key": REF, "НачисленоBalance": Decimal("150.5"), "КСписаниюBalance": 0}]
    path = unquote(str(mocked.calls[0].request.url).split("?")[0])
    assert path.endswith(
        f"/Balance(Period=datetime'2026-03-16T00:00:00',Condition='Партнер_Key eq guid''{REF}''',"
        "Dimensions='Партнер')"
    )
    assert " " not in str(mocked.calls[0].request.url)


def _read_string_literal(text: str) -> tuple[str, int]:
    """An OData tokenizer's view of a quoted literal at the start of ``text``: its value and its length."""
    assert text[0] == "'"
    value, i = [], 1
    while True:
        if text[i] == "'":
            if i + 1 < len(text) and text[i + 1] == "'":
                value.append("'")
                i += 2
                continue
            return "".join(value), i + 1
        value.append(text[i])
        i += 1


@given(st.text())
def test_a_string_value_is_always_exactly_one_literal(value: str) -> None:
    filter_text = str(eq("Комментарий", value)) + " and Posted eq true"
    literal_start = filter_text.index("'")
    parsed, length = _read_string_literal(filter_text[literal_start:])
    assert parsed == value
    assert filter_text[literal_start + length :] == " and Posted eq true"


def test_rows_without_the_key_field_are_refused_not_deduplicated_away(mocked: responses.RequestsMock) -> None:
    mocked.get(
        f"{BASE}/AccumulationRegister_X_RecordType", json={"value": [{"Recorder": "a", "LineNumber": "1"}]}
    )
    with pytest.raises(FatalRemoteError, match="lack the key field"):
        list(make_client().query("AccumulationRegister_X_RecordType"))


def test_register_records_page_by_their_own_key(mocked: responses.RequestsMock) -> None:
    rows = [{"Recorder": "a", "LineNumber": "1"}, {"Recorder": "a", "LineNumber": "2"}]
    mocked.get(f"{BASE}/AccumulationRegister_X_RecordType", json={"value": rows})
    mocked.get(f"{BASE}/AccumulationRegister_X_RecordType", json={"value": []})
    client = make_client()
    got = list(client.query("AccumulationRegister_X_RecordType", key_fields=("Recorder", "LineNumber")))
    assert [row["LineNumber"] for row in got] == [1, 2]
    assert "$orderby=Recorder,LineNumber" in query_of(mocked.calls[0])


def test_skip_paging_without_any_order_is_refused() -> None:
    with pytest.raises(ValueError, match="total order"):
        list(make_client().query("Catalog_X", key_fields=()))


def test_unreadable_metadata_is_a_remote_error(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/$metadata", body=b"<html>not csdl")
    with pytest.raises(FatalRemoteError, match="metadata is unreadable"):
        make_client().metadata_types()
