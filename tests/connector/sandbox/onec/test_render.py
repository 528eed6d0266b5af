"""The 1C view of a World, both flavours, read back over HTTP like an integrator would."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import requests

from connector.sandbox.onec.render import render_world
from connector.sandbox.world import World

from .conftest import ANON_REF, BONUS_REF, CARD_1, PARTNER_1, PROGRAM_REF, RETURN_REF, SALE_REF, Served
from .test_odata_app import get_json

EMPTY = "00000000-0000-0000-0000-000000000000"


def by_ref(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["Ref_Key"]: row for row in payload["value"]}


def test_ut_master_data(ut: Served, http: requests.Session) -> None:
    products = get_json(http, ut, "Catalog_Номенклатура", **{"$filter": "Артикул eq 'CIG-1'"})["value"]
    categories = by_ref(get_json(http, ut, "Catalog_ТоварныеКатегории"))
    assert products[0]["Description"] == "Сигареты"
    assert categories[products[0]["ТоварнаяКатегория_Key"]]["Description"] == "tobacco"
    partner = get_json(http, ut, f"Catalog_Партнеры(guid'{PARTNER_1}')")
    assert partner["ДатаРождения"] == "1990-05-01T00:00:00"
    assert [(c["Тип"], c["НомерТелефона"]) for c in partner["КонтактнаяИнформация"]] == [
        ("Телефон", "+79161234567")
    ]
    card = get_json(http, ut, f"Catalog_КартыЛояльности(guid'{CARD_1}')")
    assert (card["Штрихкод"], card["Партнер_Key"], card["Статус"]) == (
        "2000000000017",
        PARTNER_1,
        "Действует",
    )
    program = get_json(http, ut, f"Catalog_БонусныеПрограммыЛояльности(guid'{PROGRAM_REF}')")
    assert (program["Description"], program["МаксимальныйПроцентОплатыБонусами"]) == ("Бонусы", 30)
    stores = get_json(http, ut, "Catalog_Склады")["value"]
    registers = get_json(http, ut, "Catalog_КассыККМ")["value"]
    assert {s["Code"] for s in stores} == {"S01", "S02"}
    assert {r["Склад_Key"] for r in registers} == {s["Ref_Key"] for s in stores}


def test_ut_receipts_returns_and_local_dates(ut: Served, http: requests.Session) -> None:
    sales = by_ref(get_json(http, ut, "Document_ЧекККМ"))
    returns = by_ref(get_json(http, ut, "Document_ЧекККМВозврат"))
    assert set(sales) == {SALE_REF, ANON_REF}
    assert returns[RETURN_REF]["ЧекККМ_Key"] == SALE_REF
    assert returns[RETURN_REF]["Date"] == "2026-11-19T16:32:07"
    anonymous = sales[ANON_REF]
    # 09:00 UTC is 14:00 in Yekaterinburg, the store's zone
    assert (anonymous["Date"], anonymous["Партнер_Key"], anonymous["Posted"]) == (
        "2026-11-19T14:00:00",
        EMPTY,
        False,
    )
    sale = sales[SALE_REF]
    assert (sale["ИспользоватьОплатуБонуснымиБаллами"], sale["БонусныеБаллы"]) == (False, [])
    assert [line["Номенклатура_Key"] for line in sale["Товары"]] == [
        "e5f6a7b8-6666-11ee-8a3c-00155d0a1f01",
        "e5f6a7b8-6668-11ee-8a3c-00155d0a1f01",
    ]


def test_ut_register_mirrors_the_bonus_documents_only(ut: Served, http: requests.Session) -> None:
    records = get_json(http, ut, "AccumulationRegister_БонусныеБаллы_RecordType")["value"]
    assert {r["Recorder"] for r in records} == {BONUS_REF}
    document = get_json(http, ut, f"Document_НачислениеИСписаниеБонусныхБаллов(guid'{BONUS_REF}')")
    assert (document["Posted"], document["Комментарий"]) == (True, "onec:evotor:ev-sale:accrual")
    assert (
        document["ПериодОтсрочкиНачалаДействия"],
        document["КоличествоПериодовОтсрочкиНачалаДействия"],
    ) == ("День", 14)
    record_sets = get_json(http, ut, "AccumulationRegister_БонусныеБаллы")["value"]
    assert [len(s["RecordSet"]) for s in record_sets] == [2]


def test_retail_flavour_returns_cards_and_bonus_payments(
    serve: Any, world: World, http: requests.Session
) -> None:
    retail: Served = serve(world, "retail")
    receipts = by_ref(get_json(http, retail, "Document_ЧекККМ"))
    assert receipts[RETURN_REF]["ВидОперации"] == "Возврат"
    assert receipts[RETURN_REF]["ЧекККМПродажа_Key"] == SALE_REF
    sale = receipts[SALE_REF]
    assert (sale["ВидОперации"], sale["ДисконтнаяКарта_Key"], sale["НомерЧекаККМ"]) == ("Продажа", CARD_1, 15)
    kinds = by_ref(get_json(http, retail, "Catalog_ВидыОплатЧекаККМ"))
    payments = [
        (kinds[p["ВидОплаты_Key"]]["ТипОплаты"], p["Сумма"], p["КоличествоБонусов"]) for p in sale["Оплата"]
    ]
    assert payments == [("Наличные", Decimal("174.8"), 0), ("Бонусы", 50, 50)]
    cards = get_json(
        http, retail, "Catalog_ИнформационныеКарты", **{"$filter": "КодКарты eq '2000000000017'"}
    )
    assert cards["value"][0]["ВладелецКарты"] == PARTNER_1
    records = get_json(http, retail, "AccumulationRegister_БонусныеБаллы_RecordType")["value"]
    assert {(r["ДисконтнаяКарта_Key"], r["RecordType"]) for r in records} == {(CARD_1, "Receipt")}
    assert http.get(f"{retail.url}/ws/LoyaltyExchange.1cws?wsdl").status_code == 404
    assert (
        http.get(f"{retail.odata}/Document_ЧекККМВозврат?$format=json").json()["odata.error"]["code"] == "6"
    )


def test_a_world_with_an_unreadable_program_still_renders(world: World) -> None:
    world.program_yaml = "::: not yaml"
    base = render_world(world, "ut")
    assert base.rows("Catalog_БонусныеПрограммыЛояльности")[0]["КурсКонвертацииБонусовВВалюту"] == 1
