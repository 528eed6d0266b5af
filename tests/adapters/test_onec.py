"""The 1C adapter request by request: URLs, filters and bodies sent, idempotent writes, flavours, SOAP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
import requests
import responses

from adapters.base import DocumentSource, DocumentTarget, LedgerSource, LedgerTarget, build_adapter
from adapters.http import HttpClient, HttpPolicy, SystemHttpConfig
from adapters.odata import EMPTY_GUID
from adapters.onec import OneCAdapter, available_points
from adapters.rest import BasicAuth
from connector.config import SystemConfig
from connector.errors import ConfigError, FatalRemoteError, RemoteNotFoundError, RetriableRemoteError
from connector.model import Customer, DocRef, Line, Payment, Posting, Return, Sale
from connector.sandbox.onec.soap import wsdl_text

BASE = "http://1c.test/ut/odata/standard.odata"
MSK = ZoneInfo("Europe/Moscow")
START = datetime(2026, 11, 2, tzinfo=MSK)
CHEQUE = "%D0%A7%D0%B5%D0%BA%D0%9A%D0%9A%D0%9C"  # ЧекККМ
BONUS_SET = "Document_НачислениеИСписаниеБонусныхБаллов"


def ref(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


P1, P2, ANON, C1, C2, N1, N2, CAT, PROG, S1, S2, K1, K2 = (ref(n) for n in range(101, 114))
PHONE = "+79161234567"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def config(flavour: str = "ut", protocol: str = "odata", **options: Any) -> SystemConfig:
    return SystemConfig(
        adapter="onec",
        base_url="http://1c.test/ut",
        user="Обмен",
        password="s3cret-pw",  # type: ignore[arg-type]
        timezone="Europe/Moscow",
        protocol=protocol,  # type: ignore[arg-type]
        mapping="onec/ut11" if flavour == "ut" else "onec/retail2",
        options={"store_ids": {"store-1": "S01"}, **options},
    )


def adapter(flavour: str = "ut", protocol: str = "odata", **options: Any) -> OneCAdapter:
    http = HttpClient(
        SystemHttpConfig(system="onec", base_url=BASE, policy=HttpPolicy(max_retries=2)),
        auth=BasicAuth("Обмен", "s3cret-pw"),
        sleep=lambda _s: None,
    )
    return OneCAdapter("onec", config(flavour, protocol, **options), http=http)


def rows(*items: dict[str, Any]) -> dict[str, Any]:
    return {"odata.metadata": f"{BASE}/$metadata#X", "value": list(items)}


def mock_catalogs(mocked: responses.RequestsMock, flavour: str = "ut") -> None:
    contacts = [
        {"Тип": "Телефон", "НомерТелефона": "8 (916) 123-45-67", "Представление": "+7 (916) 123-45-67"}
    ]
    people = [
        {"Ref_Key": P1, "Description": "Анна", "DeletionMark": False, "КонтактнаяИнформация": contacts},
        {
            "Ref_Key": P2,
            "Description": "Борис",
            "DeletionMark": False,
            "КонтактнаяИнформация": [{"Тип": "Телефон", "НомерТелефона": "+7 926 765-43-21"}],
        },
        {
            "Ref_Key": ANON,
            "Description": "Розничный покупатель",
            "DeletionMark": False,
            "КонтактнаяИнформация": [],
        },
    ]
    ut = flavour == "ut"
    mocked.get(f"{BASE}/{'Catalog_Партнеры' if ut else 'Catalog_ФизическиеЛица'}", json=rows(*people))
    cards = [(C1, "2000000123456", P1), (C2, "2000000654321", P2)]
    number, owner = ("Штрихкод", "Партнер_Key") if ut else ("КодКарты", "ВладелецКарты")
    mocked.get(
        f"{BASE}/{'Catalog_КартыЛояльности' if ut else 'Catalog_ИнформационныеКарты'}",
        json=rows(*({"Ref_Key": c, number: n, owner: p, "DeletionMark": False} for c, n, p in cards)),
    )
    mocked.get(f"{BASE}/Catalog_ТоварныеКатегории", json=rows({"Ref_Key": CAT, "Description": "coffee"}))
    mocked.get(
        f"{BASE}/Catalog_Номенклатура",
        json=rows(
            {"Ref_Key": N1, "Description": "Латте", "Артикул": "101", "ТоварнаяКатегория_Key": CAT},
            {"Ref_Key": N2, "Description": "Круассан", "Артикул": "205", "ТоварнаяКатегория_Key": EMPTY_GUID},
        ),
    )
    mocked.get(
        f"{BASE}/Catalog_БонусныеПрограммыЛояльности",
        json=rows(
            {
                "Ref_Key": PROG,
                "Description": "Бонусы",
                "DeletionMark": False,
                "КурсКонвертацииБонусовВВалюту": 1,
            }
        ),
    )
    store_field = "Склад_Key" if ut else "Магазин_Key"
    mocked.get(
        f"{BASE}/{'Catalog_Склады' if ut else 'Catalog_Магазины'}",
        json=rows(
            {"Ref_Key": S1, "Code": "S01", "Description": "Магазин 1"},
            {"Ref_Key": S2, "Code": "S02", "Description": "Магазин 2"},
        ),
    )
    mocked.get(
        f"{BASE}/Catalog_КассыККМ",
        json=rows({"Ref_Key": K1, store_field: S1}, {"Ref_Key": K2, store_field: S2}),
    )
    if not ut:
        mocked.get(
            f"{BASE}/Catalog_ВидыОплатЧекаККМ",
            json=rows(
                {"Ref_Key": ref(201), "ТипОплаты": "Наличные"},
                {"Ref_Key": ref(202), "ТипОплаты": "ПлатежнаяКарта"},
                {"Ref_Key": ref(203), "ТипОплаты": "Бонусы"},
            ),
        )


def params(call: Any) -> dict[str, str]:
    raw = str(call.request.url).split("?", 1)[1]
    assert "+" not in raw
    assert " " not in raw
    return {key: unquote(value) for key, value in (part.split("=", 1) for part in raw.split("&"))}


def calls_to(mocked: responses.RequestsMock, entity_set: str, method: str = "GET") -> list[Any]:
    return [
        c for c in mocked.calls if c.request.method == method and entity_set in unquote(str(c.request.url))
    ]


# -- construction ------------------------------------------------------------------------------------------


def test_built_from_the_registry_speaks_every_seam_with_utf8_basic_auth(
    mocked: responses.RequestsMock,
) -> None:
    onec = build_adapter("onec", config(), session=requests.Session())
    assert isinstance(onec, OneCAdapter)
    assert all(
        isinstance(onec, seam) for seam in (DocumentSource, DocumentTarget, LedgerSource, LedgerTarget)
    )
    mock_catalogs(mocked)
    assert onec.partner_for_phone("+7 916 123 45 67") == P1
    first = mocked.calls[0].request
    assert str(first.url).startswith(BASE + "/Catalog_")  # /odata/standard.odata added to the base root
    assert (
        first.headers["Authorization"] == "Basic " + "0J7QsdC80LXQvTpzM2NyZXQtcHc="
    )  # "Обмен:s3cret-pw" UTF-8


@pytest.mark.parametrize(
    ("mapping", "flavour", "expected"),
    [
        ("onec/ut11", None, "ut"),
        ("onec/retail2", None, "retail"),
        ("custom/x", "retail", "retail"),
        (None, None, "ut"),
    ],
)
def test_flavour_from_mapping_or_option(mapping: str | None, flavour: str | None, expected: str) -> None:
    options = {"flavour": flavour} if flavour else {}
    cfg = SystemConfig(adapter="onec", base_url=BASE, mapping=mapping, options=options)
    assert OneCAdapter("onec", cfg).spec.name == expected


def test_unknown_flavour_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"options\.flavour"):
        OneCAdapter("onec", SystemConfig(adapter="onec", base_url=BASE, options={"flavour": "erp3000"}))


# -- catalogs ----------------------------------------------------------------------------------------------


def test_catalogs_are_read_once_in_the_shape_the_mappings_expect(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    onec = adapter()
    catalogs = onec.catalogs()
    assert onec.catalogs() == catalogs
    assert onec.partner_for_phone("89161234567") == P1
    assert onec.partner_for_card("2000000654321") == P2
    assert onec.partner_for_phone("+79990000000") is None
    assert onec.stores() == ["store-1", S2]
    assert len(mocked.calls) == 7  # one request per catalog, whatever was asked afterwards
    assert catalogs["partners"][P1] == {"phone": PHONE, "card": "2000000123456", "name": "Анна"}
    assert catalogs["partners"][ANON] == {"phone": None, "card": None, "name": "Розничный покупатель"}
    assert catalogs["cards"][C2] == {"number": "2000000654321", "partner": P2, "phone": "+79267654321"}
    assert catalogs["products"][N1] == {"sku": "101", "name": "Латте", "category": "coffee"}
    assert catalogs["products"][N2]["category"] is None
    assert catalogs["stores"] == {S1: "store-1", S2: S2}
    assert catalogs["programs"][PROG]["point_value"] == Decimal("1")
    partners_query = params(calls_to(mocked, "Catalog_Партнеры")[0])
    assert partners_query["$select"] == "Description,DeletionMark,КонтактнаяИнформация,Ref_Key"


def test_a_configured_store_missing_in_1c_is_a_config_error(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    mocked.assert_all_requests_are_fired = False  # the read stops at the stores
    with pytest.raises(ConfigError, match=r"store_ids\.store-9.*S09"):
        adapter(store_ids={"store-9": "S09"}).catalogs()


# -- reading receipts --------------------------------------------------------------------------------------


def cheque(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "Ref_Key": ref(n),
        "DataVersion": f"AAAA{n}",
        "DeletionMark": False,
        "Number": f"ТДМ-{n}",
        "Date": "2026-11-02T10:00:00",
        "Posted": True,
        "Склад_Key": S1,
        "СуммаДокумента": 2350.5,
        "Товары": [{"LineNumber": "1", "Номенклатура_Key": N1, "Сумма": 2350.5}],
        **extra,
    }


def test_ut_receipts_of_a_store_and_day(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    mocked.get(f"{BASE}/Document_ЧекККМ", json=rows(cheque(1), cheque(2, Posted=False)))
    mocked.get(f"{BASE}/Document_ЧекККМВозврат", json=rows(cheque(3, ЧекККМ_Key=ref(1))))
    records = list(adapter().documents("store-1", START, START + timedelta(days=1)))
    assert [(r.entity, r.id, r.version, r.store) for r in records] == [
        ("Document_ЧекККМ", ref(1), "AAAA1", "store-1"),
        ("Document_ЧекККМ", ref(2), "AAAA2", "store-1"),
        ("Document_ЧекККМВозврат", ref(3), "AAAA3", "store-1"),
    ]
    assert records[0].payload["СуммаДокумента"] == Decimal("2350.5")  # never a float
    assert records[1].payload["Posted"] is False  # unposted: returned, the mapping makes it a draft
    sale_call, return_call = calls_to(mocked, "Document_ЧекККМ")
    assert str(sale_call.request.url).startswith(f"{BASE}/Document_{CHEQUE}?")
    query = params(sale_call)
    assert query["$filter"] == (
        f"Date ge datetime'2026-11-02T00:00:00' and Date lt datetime'2026-11-03T00:00:00' "
        f"and Склад_Key eq guid'{S1}' and DeletionMark eq false"
    )
    assert query["$select"].startswith("Ref_Key,DataVersion,DeletionMark,Number,Date,Posted,КассаККМ_Key")
    assert "Товары" in query["$select"].split(",")
    assert "ЧекККМ_Key" not in query["$select"]
    assert (query["$orderby"], query["$top"], query["$skip"]) == ("Date,Ref_Key", "500", "0")
    assert "ЧекККМ_Key" in params(return_call)["$select"].split(",")


def test_a_week_is_read_a_day_at_a_time_in_the_bases_zone(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    mocked.get(f"{BASE}/Document_ЧекККМ", json=rows())
    utc_start = datetime(2026, 11, 1, 21, 0, tzinfo=ZoneInfo("UTC"))  # = 2026-11-02 00:00 in Moscow
    list(adapter().documents("store-1", utc_start, utc_start + timedelta(days=7), kinds=("sale",)))
    filters = [params(c)["$filter"] for c in calls_to(mocked, "Document_ЧекККМ")]
    assert len(filters) == 7
    assert filters[0].startswith(
        "Date ge datetime'2026-11-02T00:00:00' and Date lt datetime'2026-11-03T00:00:00'"
    )
    assert filters[6].startswith(
        "Date ge datetime'2026-11-08T00:00:00' and Date lt datetime'2026-11-09T00:00:00'"
    )


def test_retail_reads_one_set_and_splits_by_operation_kind(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked, "retail")
    mocked.get(f"{BASE}/Document_ЧекККМ", json=rows(cheque(1, ВидОперации="Продажа", Магазин_Key=S1)))
    onec = adapter("retail")
    both = list(onec.documents("store-1", START, START + timedelta(days=1)))
    returns = list(onec.documents("store-1", START, START + timedelta(days=1), kinds=("return",)))
    assert [r.entity for r in both + returns] == ["Document_ЧекККМ", "Document_ЧекККМ"]
    both_query, returns_query = (params(c) for c in calls_to(mocked, "Document_ЧекККМ"))
    assert f"Магазин_Key eq guid'{S1}'" in both_query["$filter"]
    assert "ВидОперации" not in both_query["$filter"]
    assert returns_query["$filter"].endswith("DeletionMark eq false and ВидОперации eq 'Возврат'")
    assert {"ВидОперации", "ЧекККМПродажа_Key", "Оплата"} <= set(both_query["$select"].split(","))


def test_deleted_documents_are_skipped_and_reported_apart(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    mocked.get(f"{BASE}/Document_ЧекККМ", json=rows(cheque(9, DeletionMark=True)))
    mocked.get(f"{BASE}/Document_ЧекККМВозврат", json=rows())
    deleted = list(adapter().deleted_documents(S1, START, START + timedelta(days=1)))
    assert [(r.id, r.payload["DeletionMark"], r.store) for r in deleted] == [(ref(9), True, "store-1")]
    assert all(params(c)["$filter"].endswith("DeletionMark eq true") for c in mocked.calls[7:])


def test_unknown_store_is_a_config_error(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    with pytest.raises(ConfigError, match="store-7"):
        list(adapter().documents("store-7", START, START + timedelta(days=1)))


# -- the register ------------------------------------------------------------------------------------------


def test_register_records_of_a_window_and_partner(mocked: responses.RequestsMock) -> None:
    record = {
        "Recorder": ref(5),
        "Recorder_Type": "StandardODATA.Document_ЧекККМ",
        "LineNumber": "2",
        "Period": "2026-11-02T00:00:00",
        "RecordType": "Receipt",
        "Партнер_Key": P1,
        "Начислено": 117,
    }
    mocked.get(f"{BASE}/AccumulationRegister_БонусныеБаллы_RecordType", json=rows(record))
    found = list(adapter().register_records(START, START + timedelta(days=7), holder=P1))
    assert [(r.entity, r.id, r.payload["Начислено"]) for r in found] == [
        ("AccumulationRegister_БонусныеБаллы_RecordType", f"{ref(5)}:2", 117)
    ]
    query = params(mocked.calls[0])
    assert query["$filter"] == (
        f"Period ge datetime'2026-11-02T00:00:00' and Period lt datetime'2026-11-09T00:00:00' "
        f"and Партнер_Key eq guid'{P1}'"
    )
    assert query["$orderby"] == "Period,Recorder,LineNumber"


@pytest.mark.parametrize(
    ("accrued", "due", "available"),
    [
        ("1267", "0", "1267"),
        ("1267", "200", "1067"),
        ("100", "-50", "100"),
        ("100", "150", "0"),
        ("-5", "0", "0"),
    ],
)
def test_available_points_formula(accrued: str, due: str, available: str) -> None:
    assert available_points(Decimal(accrued), Decimal(due)) == Decimal(available)


def test_balance_of_an_account_from_the_virtual_table(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    balance_url = (
        f"{BASE}/AccumulationRegister_БонусныеБаллы/Balance("
        f"Period=datetime'2026-11-20T00:00:00',Condition='Партнер_Key eq guid''{P1}''')"
    )
    mocked.get(
        balance_url,
        json=rows(
            {
                "БонуснаяПрограммаЛояльности_Key": PROG,
                "Партнер_Key": P1,
                "НачисленоBalance": 1267.5,
                "КСписаниюBalance": 200,
            },
            {
                "БонуснаяПрограммаЛояльности_Key": ref(999),
                "Партнер_Key": P1,
                "НачисленоBalance": 10,
                "КСписаниюBalance": 40,
            },
        ),
    )
    assert adapter().points_balance("card:2000000123456", at=datetime(2026, 11, 20, tzinfo=MSK)) == Decimal(
        "1067.5"
    )


# -- writing bonus documents -------------------------------------------------------------------------------


def posting(
    key: str = "evotor:e1:accrual", amount: str = "120", kind: str = "accrual", **extra: Any
) -> Posting:
    return Posting(
        key=key,
        account=PHONE,
        kind=kind,
        amount=Decimal(amount),
        status="pending",  # type: ignore[arg-type]
        occurred_at=datetime(2026, 11, 5, 12, 30, tzinfo=MSK),
        **extra,
    )


def stored(body: dict[str, Any], ref_key: str, **changes: Any) -> dict[str, Any]:
    """1C's answer to a create: the object as written (LineNumber as an Int64 string, a new Ref_Key)."""
    copy = json.loads(json.dumps(body, default=str))
    for value in copy.values():
        for row in value if isinstance(value, list) else []:
            row["LineNumber"] = str(row["LineNumber"])
    return {
        "Ref_Key": ref_key,
        "DataVersion": "AAAAAQ==",
        "Posted": False,
        "DeletionMark": False,
        **copy,
        **changes,
    }


def sent_json(call: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(call.request.body, parse_float=Decimal)
    return body


ACCRUAL_BODY = {
    "Date": "2026-11-05T12:30:00",
    "БонуснаяПрограммаЛояльности_Key": PROG,
    "Комментарий": "onec:evotor:e1:accrual",
    "Начисление": [{"LineNumber": 1, "Партнер_Key": P1, "Баллы": 120}],
    "Списание": [],
    "ПериодОтсрочкиНачалаДействия": "День",
    "КоличествоПериодовОтсрочкиНачалаДействия": 14,
    "ДатаОкончанияСрокаДействия": "2027-11-19T00:00:00",
}


def test_batched_lookup_then_each_absent_key_costs_create_and_post(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    mocked.get(
        f"{BASE}/{BONUS_SET}",
        json=rows({"Ref_Key": ref(50), "Комментарий": "onec:evotor:e0:accrual", "Posted": True}),
    )
    mocked.post(f"{BASE}/{BONUS_SET}", status=201, json=stored(ACCRUAL_BODY, ref(51)))
    mocked.post(f"{BASE}/{BONUS_SET}(guid'{ref(51)}')/Post", status=200)
    onec = adapter()
    keys = ["onec:evotor:e0:accrual", "onec:evotor:e1:accrual"]
    assert onec.find_postings(keys) == {"onec:evotor:e0:accrual": ref(50)}
    accrual = posting(
        available_at=datetime(2026, 11, 19, tzinfo=MSK), expires_at=datetime(2027, 11, 19, tzinfo=MSK)
    )
    result = onec.write_posting(accrual, "onec:evotor:e1:accrual")
    assert (result.remote_id, result.created) == (ref(51), True)
    again = onec.write_posting(posting("evotor:e0:accrual"), "onec:evotor:e0:accrual")  # found: no request
    assert (again.remote_id, again.created) == (ref(50), False)
    (lookup,), (create, post) = calls_to(mocked, BONUS_SET), calls_to(mocked, BONUS_SET, "POST")
    assert len(mocked.calls) == 7 + 3  # catalogs, ONE lookup for both keys, create, Post
    assert params(lookup)["$filter"] == (
        "(substringof('onec:evotor:e0:accrual', Комментарий) or "
        "substringof('onec:evotor:e1:accrual', Комментарий)) and DeletionMark eq false"
    )
    assert params(lookup)["$select"] == "Комментарий,Posted,Ref_Key"
    assert sent_json(create) == ACCRUAL_BODY
    assert params(post) == {"PostingModeOperational": "false"}


def test_a_key_not_looked_up_yet_is_looked_up_before_the_create(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    mocked.get(f"{BASE}/{BONUS_SET}", json=rows())
    body = {
        "Date": "2026-11-05T12:30:00",
        "БонуснаяПрограммаЛояльности_Key": PROG,
        "Комментарий": "onec:k2",
        "Начисление": [],
        "Списание": [{"LineNumber": 1, "Партнер_Key": P1, "Баллы": 45.5}],
    }
    mocked.post(f"{BASE}/{BONUS_SET}", status=201, json=stored(body, ref(52)))
    mocked.post(f"{BASE}/{BONUS_SET}(guid'{ref(52)}')/Post")
    adapter().write_posting(posting("evotor:e2:redemption", "-45.50", "redemption"), "onec:k2")
    lookup, create = calls_to(mocked, BONUS_SET)[0], calls_to(mocked, BONUS_SET, "POST")[0]
    assert "substringof('onec:k2', Комментарий)" in params(lookup)["$filter"]
    assert sent_json(create)["Списание"] == [{"LineNumber": 1, "Партнер_Key": P1, "Баллы": Decimal("45.50")}]
    assert "ДатаОкончанияСрокаДействия" not in sent_json(create)  # only accruals carry validity


def test_what_1c_dropped_is_an_error_naming_set_ref_and_fields(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    mocked.get(f"{BASE}/{BONUS_SET}", json=rows())
    answer = stored(
        ACCRUAL_BODY, ref(53), Комментарий="onec:evotor:e1:accr", КоличествоПериодовОтсрочкиНачалаДействия=0
    )
    answer["Начисление"][0]["Баллы"] = 12
    mocked.post(f"{BASE}/{BONUS_SET}", status=201, json=answer)  # no Post is registered: none may be sent
    accrual = posting(
        available_at=datetime(2026, 11, 19, tzinfo=MSK), expires_at=datetime(2027, 11, 19, tzinfo=MSK)
    )
    with pytest.raises(FatalRemoteError) as caught:
        adapter().write_posting(accrual, "onec:evotor:e1:accrual")
    message = str(caught.value)
    assert BONUS_SET in message
    assert ref(53) in message
    assert (
        caught.value.context["fields"]
        == "Комментарий, Начисление[1].Баллы, КоличествоПериодовОтсрочкиНачалаДействия"
    )


def test_verify_reread_reads_the_posted_document_back(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    mocked.get(f"{BASE}/{BONUS_SET}", json=rows())
    body = {**ACCRUAL_BODY, "Комментарий": "onec:k5"}
    for key in (
        "ПериодОтсрочкиНачалаДействия",
        "КоличествоПериодовОтсрочкиНачалаДействия",
        "ДатаОкончанияСрокаДействия",
    ):
        body.pop(key)
    mocked.post(f"{BASE}/{BONUS_SET}", status=201, json=stored(body, ref(54)))
    mocked.post(f"{BASE}/{BONUS_SET}(guid'{ref(54)}')/Post")
    mocked.get(f"{BASE}/{BONUS_SET}(guid'{ref(54)}')", json=stored(body, ref(54), Комментарий="другое"))
    with pytest.raises(FatalRemoteError, match="Комментарий"):
        adapter(verify="reread").write_posting(posting(), "onec:k5")


def test_unknown_outcome_of_a_create_is_resolved_by_lookup_not_a_second_create(
    mocked: responses.RequestsMock,
) -> None:
    mock_catalogs(mocked)
    key = "onec:evotor:e1:accrual"
    body = {k: v for k, v in ACCRUAL_BODY.items() if not k.startswith(("Период", "Количество", "Дата"))}
    mocked.get(f"{BASE}/{BONUS_SET}", json=rows())  # before the create: absent
    mocked.post(
        f"{BASE}/{BONUS_SET}",
        status=500,
        json={"odata.error": {"code": "-1", "message": {"value": "timeout"}}},
    )
    mocked.get(f"{BASE}/{BONUS_SET}", json=rows({"Ref_Key": ref(55), "Комментарий": key, "Posted": False}))
    mocked.get(f"{BASE}/{BONUS_SET}(guid'{ref(55)}')", json=stored(body, ref(55)))
    mocked.post(f"{BASE}/{BONUS_SET}(guid'{ref(55)}')/Post")
    result = adapter().write_posting(posting(), key)
    assert (result.remote_id, result.created) == (ref(55), True)
    creates = [
        c
        for c in calls_to(mocked, BONUS_SET, "POST")
        if not str(c.request.url).split("?")[0].endswith("/Post")
    ]
    assert len(creates) == 1  # the first create landed: found, checked and posted, never sent again


def test_unknown_outcome_with_nothing_found_creates_once_more(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    body = {**ACCRUAL_BODY, "Комментарий": "onec:k6"}
    for key in (
        "ПериодОтсрочкиНачалаДействия",
        "КоличествоПериодовОтсрочкиНачалаДействия",
        "ДатаОкончанияСрокаДействия",
    ):
        body.pop(key)
    mocked.get(f"{BASE}/{BONUS_SET}", json=rows())
    mocked.post(f"{BASE}/{BONUS_SET}", body=requests.exceptions.ReadTimeout("lost"))
    mocked.get(f"{BASE}/{BONUS_SET}", json=rows())
    mocked.post(f"{BASE}/{BONUS_SET}", status=201, json=stored(body, ref(56)))
    mocked.post(f"{BASE}/{BONUS_SET}(guid'{ref(56)}')/Post")
    assert adapter().write_posting(posting(), "onec:k6").remote_id == ref(56)


def test_a_document_created_but_not_posted_is_posted_on_the_retry(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    body = {**ACCRUAL_BODY, "Комментарий": "onec:k7"}
    for key in (
        "ПериодОтсрочкиНачалаДействия",
        "КоличествоПериодовОтсрочкиНачалаДействия",
        "ДатаОкончанияСрокаДействия",
    ):
        body.pop(key)
    mocked.get(
        f"{BASE}/{BONUS_SET}", json=rows({"Ref_Key": ref(57), "Комментарий": "onec:k7", "Posted": False})
    )
    mocked.get(f"{BASE}/{BONUS_SET}(guid'{ref(57)}')", json=stored(body, ref(57)))
    mocked.post(f"{BASE}/{BONUS_SET}(guid'{ref(57)}')/Post")
    result = adapter().write_posting(posting(), "onec:k7")
    assert (result.remote_id, result.created) == (ref(57), False)


def test_an_account_unknown_to_1c_is_not_found_with_the_phone_masked(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    mocked.get(f"{BASE}/{BONUS_SET}", json=rows())
    with pytest.raises(RemoteNotFoundError) as caught:
        adapter().write_posting(posting().model_copy(update={"account": "+79035550011"}), "onec:k8")
    assert "79035550011" not in str(caught.value)
    assert "Catalog_Партнеры" in str(caught.value)


# -- writing receipts --------------------------------------------------------------------------------------


def sale(**changes: Any) -> Sale:
    fields: dict[str, Any] = {
        "ref": DocRef(system="evotor", kind="receipt", id="e1"),
        "number": "17",
        "store": "store-1",
        "occurred_at": datetime(2026, 11, 5, 9, 15, tzinfo=MSK),
        "business_date": date(2026, 11, 5),
        "customer": Customer(phone=PHONE),
        "lines": (
            Line(
                line_no=1,
                sku="101",
                quantity=Decimal("2"),
                price=Decimal("250"),
                amount=Decimal("450"),
                discount=Decimal("50"),
                bonus_redeemed=Decimal("30"),
            ),
        ),
        "payments": (
            Payment(method="cash", amount=Decimal("100")),
            Payment(method="card", amount=Decimal("320")),
            Payment(method="bonus", amount=Decimal("30")),
        ),
        "total": Decimal("450"),
        "bonus_redeemed": Decimal("30"),
    }
    return Sale(**(fields | changes))


UT_SALE = {
    "Date": "2026-11-05T09:15:00",
    "Склад_Key": S1,
    "КассаККМ_Key": K1,
    "СуммаДокумента": 450,
    "Комментарий": "onec:evotor:e1:sale",
    "Статус": "Пробит",
    "Партнер_Key": P1,
    "КартаЛояльности_Key": C1,
    "ИспользоватьОплатуБонуснымиБаллами": False,
    "Товары": [
        {
            "LineNumber": 1,
            "Номенклатура_Key": N1,
            "Количество": 2,
            "КоличествоУпаковок": 2,
            "Цена": 250,
            "Сумма": 450,
            "СуммаРучнойСкидки": 50,
            "СуммаБонусныхБалловКСписанию": 30,
            "СуммаБонусныхБалловКСписаниюВВалюте": 30,
        }
    ],
    "ОплатаПлатежнымиКартами": [{"LineNumber": 1, "Сумма": 320}],
    "ПолученоНаличными": 100,
}


def test_ut_sale_is_written_with_partner_products_and_no_bonus_rows(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    mocked.get(f"{BASE}/Document_ЧекККМ", json=rows())
    mocked.get(f"{BASE}/Document_ЧекККМВозврат", json=rows())
    mocked.post(f"{BASE}/Document_ЧекККМ", status=201, json=stored(UT_SALE, ref(60)))
    mocked.post(f"{BASE}/Document_ЧекККМ(guid'{ref(60)}')/Post")
    onec = adapter()
    assert onec.find_documents(["onec:evotor:e1:sale"]) == {}
    assert onec.write_document(sale(), "onec:evotor:e1:sale").remote_id == ref(60)
    body = sent_json(calls_to(mocked, "Document_ЧекККМ", "POST")[0])
    assert body == json.loads(json.dumps(UT_SALE), parse_float=Decimal)
    assert "БонусныеБаллы" not in body
    assert len(mocked.calls) == 7 + 2 + 2  # catalogs, one lookup per set, create, Post


def test_anonymous_sale_gets_the_empty_partner(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    expected = {
        **UT_SALE,
        "Партнер_Key": EMPTY_GUID,
        "КартаЛояльности_Key": EMPTY_GUID,
        "Комментарий": "onec:s2",
    }
    mocked.get(f"{BASE}/Document_ЧекККМ", json=rows())
    mocked.post(f"{BASE}/Document_ЧекККМ", status=201, json=stored(expected, ref(61)))
    mocked.post(f"{BASE}/Document_ЧекККМ(guid'{ref(61)}')/Post")
    adapter().write_document(sale(customer=None), "onec:s2")
    body = sent_json(calls_to(mocked, "Document_ЧекККМ", "POST")[0])
    assert (body["Партнер_Key"], body["КартаЛояльности_Key"]) == (EMPTY_GUID, EMPTY_GUID)


def refund(**changes: Any) -> Return:
    base = sale().model_dump(by_alias=True, exclude={"type"})
    base |= {
        "ref": DocRef(system="evotor", kind="receipt", id="e2"),
        "original": DocRef(system="evotor", kind="receipt", id="e1"),
        "payments": (Payment(method="cash", amount=Decimal("420")),),
        "bonus_redeemed": Decimal("30"),
    }
    return Return(**(base | changes))


def test_ut_return_names_the_sale_written_earlier_found_by_its_key(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    mocked.get(f"{BASE}/Document_ЧекККМВозврат", json=rows())  # the return's own key: absent
    mocked.get(
        f"{BASE}/Document_ЧекККМ",
        json=rows({"Ref_Key": ref(60), "Комментарий": "onec:evotor:e1:sale", "Posted": True}),
    )
    expected = {k: v for k, v in UT_SALE.items() if k not in ("ПолученоНаличными", "ОплатаПлатежнымиКартами")}
    expected |= {
        "Комментарий": "onec:evotor:e2:return",
        "ЧекККМ_Key": ref(60),
        "ВыданоНаличными": 420,
        "СуммаБонусныхБалловКВозврату": 30,
        "ОплатаПлатежнымиКартами": [],
    }
    mocked.post(f"{BASE}/Document_ЧекККМВозврат", status=201, json=stored(expected, ref(62)))
    mocked.post(f"{BASE}/Document_ЧекККМВозврат(guid'{ref(62)}')/Post")
    adapter().write_document(refund(), "onec:evotor:e2:return")
    sale_lookup = params(calls_to(mocked, "Document_ЧекККМ")[1])
    assert "substringof('onec:evotor:e1:sale', Комментарий)" in sale_lookup["$filter"]
    body = sent_json(calls_to(mocked, "Document_ЧекККМВозврат", "POST")[0])
    assert body["ЧекККМ_Key"] == ref(60)
    assert body["СуммаБонусныхБалловКВозврату"] == Decimal("30.00")


def test_retail_return_is_a_cheque_with_operation_kind_and_sale_key(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked, "retail")
    mocked.get(f"{BASE}/Document_ЧекККМ", json=rows())
    expected = {
        "Date": "2026-11-05T09:15:00",
        "Магазин_Key": S1,
        "КассаККМ_Key": K1,
        "СуммаДокумента": 450,
        "Комментарий": "onec:r1",
        "ВидОперации": "Возврат",
        "СтатусЧекаККМ": "Пробитый",
        "ДисконтнаяКарта_Key": C1,
        "Телефон": PHONE,
        "ЧекККМПродажа_Key": ref(70),
        "Товары": [
            {
                "LineNumber": 1,
                "Номенклатура_Key": N1,
                "Количество": 2,
                "Цена": 250,
                "Сумма": 450,
                "СуммаРучнойСкидки": 50,
                "СуммаСкидкиОплатыБонусом": 30,
            }
        ],
        "Оплата": [{"LineNumber": 1, "ВидОплаты_Key": ref(201), "Сумма": 420}],
    }
    mocked.post(f"{BASE}/Document_ЧекККМ", status=201, json=stored(expected, ref(71)))
    mocked.post(f"{BASE}/Document_ЧекККМ(guid'{ref(71)}')/Post")
    onec_original = DocRef(system="onec", kind="Document_ЧекККМ", id=ref(70))  # a sale read from 1C itself
    adapter("retail").write_document(refund(original=onec_original), "onec:r1")
    assert sent_json(calls_to(mocked, "Document_ЧекККМ", "POST")[0]) == json.loads(
        json.dumps(expected), parse_float=Decimal
    )


def test_a_line_whose_sku_1c_lacks_is_not_found(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    mocked.get(f"{BASE}/Document_ЧекККМ", json=rows())
    line = Line(line_no=3, sku="999", quantity=Decimal("1"), price=Decimal("450"), amount=Decimal("450"))
    with pytest.raises(RemoteNotFoundError, match="sku '999'") as caught:
        adapter().write_document(sale(lines=(line,), bonus_redeemed=Decimal("0"), payments=()), "onec:s3")
    assert caught.value.context["field"] == "lines[3].sku"
    assert caught.value.context["system"] == "onec"


# -- SOAP --------------------------------------------------------------------------------------------------

WS = "http://1c.test/ut/ws/LoyaltyExchange.1cws"


def soap_answer(operation: str, value: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f'<m:{operation}Response xmlns:m="http://localhost/rt2discountservice"><m:return>{value}</m:return>'
        f"</m:{operation}Response></soap:Body></soap:Envelope>"
    )


def test_soap_balance_and_bonus_operation_with_the_key_as_operation_id(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(WS, body=wsdl_text("http://srv-1c/ut/ws/LoyaltyExchange.1cws"))  # an internal host: overridden
    mocked.post(WS, body=soap_answer("ПолучитьОстатокБонусов", "1067.50"), content_type="text/xml")
    mocked.post(WS, body=soap_answer("ОбновитьДанныеОБонусах", ref(80)), content_type="text/xml")
    onec = adapter(protocol="soap")
    assert onec.points_balance("card:2000000123456") == Decimal("1067.50")
    result = onec.write_posting(
        posting(expires_at=datetime(2027, 11, 19, tzinfo=MSK)), "onec:evotor:e1:accrual"
    )
    assert result.remote_id == ref(80)
    balance_xml = mocked.calls[1].request.body.decode()
    assert "<ns0:ИдентификаторКарты>2000000123456</ns0:ИдентификаторКарты>" in balance_xml
    write_xml = mocked.calls[2].request.body.decode()
    for fragment in (
        "<ns0:ИдентификаторОперации>onec:evotor:e1:accrual</ns0:ИдентификаторОперации>",
        "<ns0:ВидДвижения>Начисление</ns0:ВидДвижения>",
        f"<ns0:НомерТелефона>{PHONE}</ns0:НомерТелефона>",
        "<ns0:Сумма>120</ns0:Сумма>",
        "<ns0:ДатаОкончанияСрокаДействия>2027-11-19</ns0:ДатаОкончанияСрокаДействия>",
    ):
        assert fragment in write_xml
    assert onec.find_postings(["onec:evotor:e1:accrual"]) == {}  # the service dedupes by operation id itself


@pytest.mark.parametrize("call", ["documents", "find_documents", "write_document", "catalogs", "operations"])
def test_soap_1c_offers_no_receipts_and_says_so(call: str) -> None:
    onec = adapter(protocol="soap")
    actions = {
        "documents": lambda: list(onec.documents("store-1", START, START + timedelta(days=1))),
        "find_documents": lambda: onec.find_documents(["k"]),
        "write_document": lambda: onec.write_document(sale(), "k"),
        "catalogs": onec.catalogs,
        "operations": lambda: list(onec.operations(START, START + timedelta(days=1))),
    }
    with pytest.raises(ConfigError, match=r"not offered by the 1C web service.*protocol: odata"):
        actions[call]()


def test_receipts_routed_to_a_soap_1c_are_refused_at_start_up() -> None:
    adapter().check_route("documents")
    adapter(protocol="soap").check_route("bonus_documents")
    with pytest.raises(ConfigError, match=r"writing receipts is not offered"):
        adapter(protocol="soap").check_route("documents")


def test_lookup_of_many_keys_is_chunked_and_refresh_forgets(mocked: responses.RequestsMock) -> None:
    keys = [f"onec:evotor:e{n}:accrual" for n in range(45)]
    mocked.get(f"{BASE}/{BONUS_SET}", json=rows({"Ref_Key": ref(91), "Комментарий": f"{keys[3]}_reversal"}))
    mocked.get(
        f"{BASE}/{BONUS_SET}", json=rows({"Ref_Key": ref(90), "Комментарий": keys[44], "Posted": True})
    )
    onec = adapter()
    assert onec.find_postings(keys) == {keys[44]: ref(90)}  # a longer key that contains one is not it
    assert [params(c)["$filter"].count("substringof") for c in mocked.calls] == [40, 5]
    assert onec.writer.known(keys[3], (BONUS_SET,)) is None  # remembered: no request
    assert len(mocked.calls) == 2
    onec.refresh_catalogs()
    mocked.get(f"{BASE}/{BONUS_SET}", json=rows())
    assert onec.writer.known(keys[3], (BONUS_SET,)) is None
    assert len(mocked.calls) == 3


def test_a_post_that_failed_is_completed_by_the_next_write_without_a_create(
    mocked: responses.RequestsMock,
) -> None:
    mock_catalogs(mocked)
    body = {**ACCRUAL_BODY, "Комментарий": "onec:k9"}
    for key in (
        "ПериодОтсрочкиНачалаДействия",
        "КоличествоПериодовОтсрочкиНачалаДействия",
        "ДатаОкончанияСрокаДействия",
    ):
        body.pop(key)
    closed = {"odata.error": {"code": "-1", "message": {"value": "Дата запрета изменения"}}}
    mocked.get(f"{BASE}/{BONUS_SET}", json=rows())
    mocked.post(f"{BASE}/{BONUS_SET}", status=201, json=stored(body, ref(58)))
    post_url = f"{BASE}/{BONUS_SET}(guid'{ref(58)}')/Post"
    for _ in range(3):  # the first attempt and the policy's two retries
        mocked.post(post_url, status=500, json=closed)
    onec = adapter()
    with pytest.raises(RetriableRemoteError, match="Дата запрета изменения"):
        onec.write_posting(posting(), "onec:k9")
    mocked.get(f"{BASE}/{BONUS_SET}(guid'{ref(58)}')", json=stored(body, ref(58)))
    mocked.post(post_url, status=200)
    result = onec.write_posting(posting(), "onec:k9")
    assert (result.remote_id, result.created) == (ref(58), False)
    creates = [c for c in calls_to(mocked, BONUS_SET, "POST") if "/Post" not in unquote(str(c.request.url))]
    assert len(creates) == 1
    assert len(calls_to(mocked, BONUS_SET)) == 2  # one lookup, one read of the unposted document


def test_a_store_in_another_zone_is_windowed_in_its_own_local_time(mocked: responses.RequestsMock) -> None:
    mock_catalogs(mocked)
    mocked.get(f"{BASE}/Document_ЧекККМ", json=rows())
    onec = adapter(store_timezones={"store-1": "Asia/Yekaterinburg"})
    list(onec.documents("store-1", START, START + timedelta(days=1), kinds=("sale",)))
    assert params(calls_to(mocked, "Document_ЧекККМ")[0])["$filter"].startswith(
        "Date ge datetime'2026-11-02T02:00:00' and Date lt datetime'2026-11-03T02:00:00'"
    )
