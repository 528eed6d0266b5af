"""The OData service over HTTP, exercised with plain ``requests`` against a real uvicorn server."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from uuid import UUID

import requests
from lxml import etree

from .conftest import ANON_REF, PARTNER_1, PROGRAM_REF, SALE_REF, Served

QUERY_SAFE = "$=,'()/:"
PATH_SAFE = "$=,'()/"
EDM = "{http://schemas.microsoft.com/ado/2009/11/edm}"


def url(served: Served, resource: str, **options: str) -> str:
    """Build the URL as careful 1C clients do: UTF-8 percent-encoding, spaces as %20, never '+'."""
    query = "&".join(f"{key}={quote(value, safe=QUERY_SAFE)}" for key, value in options.items())
    return f"{served.odata}/{quote(resource, safe=PATH_SAFE)}" + (f"?{query}" if query else "")


def get_json(http: requests.Session, served: Served, resource: str, **options: str) -> Any:
    response = http.get(url(served, resource, **({"$format": "json"} | options)))
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_float=Decimal)


def refs(payload: dict[str, Any]) -> list[str]:
    return [row["Ref_Key"] for row in payload["value"]]


def test_metadata_is_csdl_listing_the_published_sets_and_functions(
    ut: Served, http: requests.Session
) -> None:
    response = http.get(f"{ut.odata}/$metadata")
    root = etree.fromstring(response.content)
    sets = {node.get("Name") for node in root.iter(f"{EDM}EntitySet")}
    assert {
        "Catalog_Партнеры",
        "Catalog_КартыЛояльности",
        "Catalog_Номенклатура",
        "Catalog_БонусныеПрограммыЛояльности",
        "Catalog_Склады",
        "Catalog_КассыККМ",
        "Document_ЧекККМ",
        "Document_ЧекККМВозврат",
        "Document_НачислениеИСписаниеБонусныхБаллов",
        "AccumulationRegister_БонусныеБаллы",
        "AccumulationRegister_БонусныеБаллы_RecordType",
        "Document_ЧекККМ_Товары",
    } <= sets
    functions = {node.get("Name") for node in root.iter(f"{EDM}FunctionImport")}
    assert functions == {"Post", "Unpost", "Balance"}
    balance = next(
        t
        for t in root.iter(f"{EDM}ComplexType")
        if t.get("Name") == "AccumulationRegister_БонусныеБаллы_Balance"
    )
    assert [p.get("Name") for p in balance] == [
        "БонуснаяПрограммаЛояльности_Key",
        "Партнер_Key",
        "НачисленоBalance",
        "КСписаниюBalance",
    ]


def test_json_is_written_exactly_as_1c_writes_it(ut: Served, http: requests.Session) -> None:
    response = http.get(url(ut, f"Document_ЧекККМ(guid'{SALE_REF}')", **{"$format": "json"}))
    text = response.text
    body = json.loads(text, parse_float=Decimal)
    assert body["odata.metadata"] == f"{ut.odata}/$metadata#Document_ЧекККМ/@Element"
    assert (body["Ref_Key"], body["Posted"], body["DeletionMark"]) == (SALE_REF, True, False)
    assert body["Date"] == "2026-11-19T14:32:07"
    assert body["Кассир_Key"] == "00000000-0000-0000-0000-000000000000"
    assert body["СуммаДокумента"] == Decimal("224.8")
    assert '"СуммаДокумента":224.8,' in text
    assert '"LineNumber":"1"' in text
    line = body["Товары"][0]
    assert (line["Ref_Key"], line["LineNumber"], line["Количество"]) == (SALE_REF, "1", 2)
    assert line["СуммаБонусныхБалловКСписанию"] == 50
    assert body["Комментарий"] == "onec:evotor:ev-sale:sale"
    assert response.headers["DataServiceVersion"] == "3.0"


def test_format_variants_and_atom_default(ut: Served, http: requests.Session) -> None:
    nometadata = get_json(http, ut, "Catalog_Склады", **{"$format": "application/json;odata=nometadata"})
    assert "odata.metadata" not in nometadata
    assert len(nometadata["value"]) == 2
    by_accept = http.get(url(ut, "Catalog_Склады"), headers={"Accept": "application/json"})
    assert by_accept.json()["odata.metadata"].endswith("$metadata#Catalog_Склады")
    atom = http.get(url(ut, "Catalog_Склады"))
    assert atom.headers["content-type"].startswith("application/atom+xml")
    assert etree.fromstring(atom.content).tag == "{http://www.w3.org/2005/Atom}feed"


def test_filters_over_http_with_every_literal(ut: Served, http: requests.Session) -> None:
    def count(resource: str, expression: str) -> int:
        return len(get_json(http, ut, resource, **{"$filter": expression})["value"])

    assert count("Catalog_Номенклатура", "Description eq 'Хлеб O''Brien'") == 1
    assert count("Document_ЧекККМ", f"Партнер_Key eq guid'{PARTNER_1}' and Posted eq true") == 1
    assert (
        count(
            "Document_ЧекККМ",
            "Date ge datetime'2026-11-19T00:00:00' and Date lt datetime'2026-11-20T00:00:00'",
        )
        == 2
    )
    assert count("Document_ЧекККМ", "DeletionMark eq false or СуммаДокумента gt 1000") == 1
    assert count("Document_ЧекККМ", "not (DeletionMark eq false)") == 1
    assert count("Catalog_Партнеры", "КонтактнаяИнформация/any(c: c/НомерТелефона eq '+79161234568')") == 1


def test_paging_with_orderby_reaches_the_end_without_gaps_or_duplicates(
    serve: Any, world: Any, http: requests.Session
) -> None:
    served = serve(world)
    for index in range(23):
        served.infobase.create("Catalog_Партнеры", {"Description": f"Клиент {index % 5}"})
    everything = get_json(http, served, "Catalog_Партнеры", **{"$orderby": "Description desc,Ref_Key"})
    seen: list[str] = []
    skip = 0
    while True:
        page = get_json(
            http,
            served,
            "Catalog_Партнеры",
            **{"$orderby": "Description desc,Ref_Key", "$top": "4", "$skip": str(skip)},
        )
        if not page["value"]:
            break
        seen += refs(page)
        skip += 4
    assert seen == refs(everything)
    assert len(seen) == len(set(seen)) == 26
    descriptions = [row["Description"] for row in everything["value"]]
    assert descriptions == sorted(descriptions, reverse=True)


def test_inlinecount_is_a_string_and_select_trims_fields(ut: Served, http: requests.Session) -> None:
    body = get_json(
        http, ut, "Document_ЧекККМ", **{"$inlinecount": "allpages", "$top": "1", "$select": "Ref_Key,Number"}
    )
    assert body["odata.count"] == "2"
    assert len(body["value"]) == 1
    assert set(body["value"][0]) == {"Ref_Key", "Number"}


def test_count_segment_returns_a_bare_number(ut: Served, http: requests.Session) -> None:
    response = http.get(url(ut, "Document_ЧекККМ/$count", **{"$filter": "Posted eq true"}))
    assert response.text == "1"


def test_basic_auth_is_required(ut: Served) -> None:
    anonymous = requests.get(url(ut, "Catalog_Партнеры", **{"$format": "json"}), timeout=5)
    wrong = requests.get(
        url(ut, "Catalog_Партнеры", **{"$format": "json"}), auth=("exchange", "nope"), timeout=5
    )
    for response in (anonymous, wrong):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_errors_carry_1c_codes_and_statuses(ut: Served, http: requests.Session) -> None:
    missing = http.get(
        url(ut, "Document_ЧекККМ(guid'00000000-0000-0000-0000-0000000000ff')", **{"$format": "json"})
    )
    bad_filter = http.get(url(ut, "Document_ЧекККМ", **{"$format": "json", "$filter": "Date eq 'вчера'"}))
    unknown_set = http.get(url(ut, "Document_Несуществующий", **{"$format": "json"}))
    assert missing.status_code == 404
    assert missing.json() == {
        "odata.error": {"code": "9", "message": {"lang": "ru", "value": "Экземпляр сущности не найден"}}
    }
    assert (bad_filter.status_code, bad_filter.json()["odata.error"]["code"]) == (400, "14")
    assert (unknown_set.status_code, unknown_set.json()["odata.error"]["code"]) == (400, "6")


def create_receipt(http: requests.Session, served: Served, body: dict[str, Any]) -> requests.Response:
    return http.post(
        url(served, "Document_ЧекККМ", **{"$format": "json"}),
        data=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )


SALE_WITH_POINTS = {
    "Date": "2026-11-20T10:15:00",
    "Партнер_Key": PARTNER_1,
    "Статус": "Пробит",
    "ИспользоватьОплатуБонуснымиБаллами": True,
    "ЧегоНетВ1С": "dropped",
    "Товары": [{"LineNumber": "1", "Сумма": 500, "СуммаБонусныхБалловКСписанию": 40.5}],
    "БонусныеБаллы": [
        {
            "LineNumber": "1",
            "БонуснаяПрограммаЛояльности_Key": PROGRAM_REF,
            "ДатаНачисления": "2026-12-04T00:00:00",
            "ДатаСписания": "2027-12-04T00:00:00",
            "СуммаБонусныхБаллов": 23,
        }
    ],
}


def test_create_is_201_unposted_then_post_writes_movements_and_balance(
    ut: Served, http: requests.Session
) -> None:
    created = create_receipt(http, ut, SALE_WITH_POINTS)
    assert created.status_code == 201
    body = created.json()
    ref = body["Ref_Key"]
    location = created.headers["Location"].encode("latin-1").decode("utf-8")  # raw UTF-8 on the wire, as 1C
    assert location == f"{ut.odata}/Document_ЧекККМ(guid'{ref}')"
    assert (body["Posted"], "ЧегоНетВ1С" in body) == (False, False)
    posted = http.post(url(ut, f"Document_ЧекККМ(guid'{ref}')/Post", PostingModeOperational="false"))
    assert posted.status_code == 200
    records = get_json(
        http,
        ut,
        "AccumulationRegister_БонусныеБаллы_RecordType",
        **{"$filter": f"Recorder eq guid'{ref}'", "$orderby": "LineNumber"},
    )["value"]
    assert [(r["RecordType"], r["Period"], r["Начислено"], r["КСписанию"]) for r in records] == [
        ("Expense", "2026-11-20T00:00:00", Decimal("40.5"), Decimal("40.5")),
        ("Receipt", "2026-12-04T00:00:00", 23, 0),
        ("Receipt", "2027-12-04T00:00:00", 0, 23),
    ]
    assert records[0]["Recorder_Type"] == "StandardODATA.Document_ЧекККМ"
    condition = f"Партнер_Key eq guid''{PARTNER_1}''"
    balance = get_json(
        http,
        ut,
        f"AccumulationRegister_БонусныеБаллы/Balance(Period=datetime'2026-12-05T00:00:00',"
        f"Condition='{condition}')",
    )["value"]
    # the world's bonus document accrued 8 on 2026-12-03; this receipt spent 40.5 and accrued 23
    assert balance == [
        {
            "БонуснаяПрограммаЛояльности_Key": PROGRAM_REF,
            "Партнер_Key": PARTNER_1,
            "НачисленоBalance": Decimal("-9.5"),
            "КСписаниюBalance": Decimal("-40.5"),
        }
    ]


def test_patch_replaces_a_tabular_section_and_changes_data_version(
    ut: Served, http: requests.Session
) -> None:
    before = get_json(http, ut, f"Document_ЧекККМ(guid'{SALE_REF}')")
    patch = {"Товары": [{"LineNumber": "1", "Сумма": 10}], "Комментарий": "исправлено", "Posted": False}
    response = http.patch(url(ut, f"Document_ЧекККМ(guid'{SALE_REF}')", **{"$format": "json"}), json=patch)
    after = response.json()
    assert response.status_code == 200
    assert [(line["LineNumber"], line["Сумма"]) for line in after["Товары"]] == [("1", 10)]
    assert after["Комментарий"] == "исправлено"
    assert after["Posted"] is True
    assert after["DataVersion"] != before["DataVersion"]
    merged = http.request(
        "MERGE",
        url(ut, f"Document_ЧекККМ(guid'{SALE_REF}')", **{"$format": "json"}),
        json={"Комментарий": "merge"},
    )
    assert merged.json()["Товары"][0]["Сумма"] == 10
    assert merged.json()["Комментарий"] == "merge"


def test_patch_with_gapped_line_numbers_is_refused(ut: Served, http: requests.Session) -> None:
    response = http.patch(
        url(ut, f"Document_ЧекККМ(guid'{SALE_REF}')", **{"$format": "json"}),
        json={"Товары": [{"LineNumber": "1"}, {"LineNumber": "3"}]},
    )
    assert response.status_code == 400


def test_unpost_and_deletion_mark(ut: Served, http: requests.Session) -> None:
    response = http.post(url(ut, f"Document_ЧекККМ(guid'{SALE_REF}')/Unpost"))
    assert response.status_code == 200
    assert get_json(http, ut, f"Document_ЧекККМ(guid'{SALE_REF}')")["Posted"] is False
    marked = get_json(http, ut, f"Document_ЧекККМ(guid'{ANON_REF}')")
    assert (marked["DeletionMark"], marked["Posted"]) == (True, False)


def test_urls_follow_the_mount_point(ut: Served, http: requests.Session) -> None:
    body = get_json(http, ut, "Catalog_Номенклатура")
    assert body["odata.metadata"].startswith(ut.url + "/odata/standard.odata/$metadata#")
    assert "/1c/ut/" in body["odata.metadata"]


def big_world(world: Any, receipts: int) -> Any:
    template = world.onec_receipts[0]
    lines = (*template.lines, replace(template.lines[0], line_no=3, sku="CIG-1"))
    world.onec_receipts = [
        replace(
            template,
            ref_key=str(UUID(int=index + 1)),
            comment=f"onec:evotor:{index}:sale",
            occurred_at=template.occurred_at + timedelta(minutes=index),
            lines=lines,
        )
        for index in range(receipts)
    ]
    return world


def test_a_page_of_1000_receipts_is_served_fast(serve: Any, world: Any, http: requests.Session) -> None:
    served = serve(big_world(world, 3000))
    page = url(
        served,
        "Document_ЧекККМ",
        **{
            "$format": "json",
            "$filter": "DeletionMark eq false",
            "$orderby": "Date,Ref_Key",
            "$top": "1000",
            "$skip": "1000",
        },
    )
    first = http.get(page)
    assert len(first.json()["value"]) == 1000
    timings = []
    for _ in range(5):
        # the server sends headers once the whole body is built: time to headers is the serving time, without
        # the client's own reading of ~4 MB (a loaded test machine makes that part noisy)
        started = time.perf_counter()
        response = http.get(page, stream=True)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200
        assert len(response.content) == len(first.content)
    assert min(timings) < 0.1, timings


def test_plus_for_space_is_not_a_space_as_on_a_real_base(ut: Served, http: requests.Session) -> None:
    strict = http.get(f"{ut.odata}/Catalog_Склады", params={"$format": "json", "$filter": "Code eq 'S01'"})
    careful = get_json(http, ut, "Catalog_Склады", **{"$filter": "Code eq 'S01'"})
    assert "+" in strict.url
    assert (strict.status_code, strict.json()["odata.error"]["code"]) == (400, "14")
    assert len(careful["value"]) == 1


def test_balance_dimensions_and_unknown_virtual_tables(ut: Served, http: requests.Session) -> None:
    by_program = get_json(
        http, ut, "AccumulationRegister_БонусныеБаллы/Balance(Dimensions='БонуснаяПрограммаЛояльности')"
    )["value"]
    assert by_program == [
        {"БонуснаяПрограммаЛояльности_Key": PROGRAM_REF, "НачисленоBalance": 8, "КСписаниюBalance": 8}
    ]
    turnovers = http.get(url(ut, "AccumulationRegister_БонусныеБаллы/Turnovers()", **{"$format": "json"}))
    on_documents = http.get(url(ut, "Document_ЧекККМ/Balance()", **{"$format": "json"}))
    assert [r.json()["odata.error"]["code"] for r in (turnovers, on_documents)] == ["6", "6"]


def test_service_document_and_record_sets(ut: Served, http: requests.Session) -> None:
    names = {item["name"] for item in get_json(http, ut, "")["value"]}
    assert {"Document_ЧекККМ", "AccumulationRegister_БонусныеБаллы_RecordType"} <= names
    assert http.get(url(ut, "AccumulationRegister_БонусныеБаллы_RecordType/$count")).text == "2"
