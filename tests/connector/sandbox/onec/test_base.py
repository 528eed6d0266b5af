"""The in-memory infobase: writes, DataVersion, posting into the bonus register, Balance."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from connector.sandbox.onec.base import OneCInfobase
from connector.sandbox.onec.odata_query import Fields, parse_query
from connector.sandbox.onec.results import run_query
from connector.sandbox.onec.wire import EMPTY_GUID, OneCServiceError

PROGRAM = "a7b8c9d0-8888-11ee-8a3c-00155d0a1f01"
PARTNER = "c3d4e5f6-4444-11ee-8a3c-00155d0a1f01"
RECEIPTS = "Document_ЧекККМ"
MANUAL = "Document_НачислениеИСписаниеБонусныхБаллов"
RECORDS = "AccumulationRegister_БонусныеБаллы_RecordType"


@pytest.fixture
def base() -> OneCInfobase:
    infobase = OneCInfobase("ut")
    infobase.create("Catalog_БонусныеПрограммыЛояльности", {"Ref_Key": PROGRAM, "Description": "Бонусы"})
    infobase.create("Catalog_Партнеры", {"Ref_Key": PARTNER, "Description": "Иванов"})
    return infobase


def receipt(partner: str = PARTNER, *, use_points: bool = True) -> dict[str, object]:
    return {
        "Date": "2026-11-19T14:32:07",
        "Партнер_Key": partner,
        "Статус": "Пробит",
        "ИспользоватьОплатуБонуснымиБаллами": use_points,
        "Товары": [
            {"LineNumber": "1", "Сумма": 2250, "СуммаБонусныхБалловКСписанию": 150},
            {"LineNumber": "2", "Сумма": 250, "СуммаБонусныхБалловКСписанию": 0},
        ],
        "БонусныеБаллы": [
            {
                "LineNumber": "1",
                "БонуснаяПрограммаЛояльности_Key": PROGRAM,
                "ДатаНачисления": "2026-12-03T00:00:00",
                "ДатаСписания": "2027-12-03T00:00:00",
                "СуммаБонусныхБаллов": 117,
            },
        ],
    }


def moves(base: OneCInfobase) -> list[tuple[str, str, Decimal, Decimal]]:
    return [
        (r["RecordType"], r["Period"].isoformat(), r["Начислено"], r["КСписанию"]) for r in base.rows(RECORDS)
    ]


def test_a_created_document_is_unposted_and_moves_nothing(base: OneCInfobase) -> None:
    ref = base.create(RECEIPTS, receipt())
    row = base.rows(RECEIPTS)[0]
    assert (row["Ref_Key"], row["Posted"], row["Number"]) == (ref, False, "00ЦБ-000001")
    assert base.rows(RECORDS) == []


def test_posting_a_receipt_writes_redemption_accrual_and_expiry_as_ut_does(base: OneCInfobase) -> None:
    ref = base.create(RECEIPTS, receipt())
    base.post(RECEIPTS, ref)
    assert moves(base) == [
        ("Expense", "2026-11-19T00:00:00", Decimal(150), Decimal(150)),
        ("Receipt", "2026-12-03T00:00:00", Decimal(117), Decimal(0)),
        ("Receipt", "2027-12-03T00:00:00", Decimal(0), Decimal(117)),
    ]
    record = base.rows(RECORDS)[0]
    assert record["Recorder"] == ref
    assert record["Recorder_Type"] == "StandardODATA.Document_ЧекККМ"
    assert (record["Партнер_Key"], record["БонуснаяПрограммаЛояльности_Key"]) == (PARTNER, PROGRAM)
    assert [r["LineNumber"] for r in base.rows(RECORDS)] == [1, 2, 3]


def test_anonymous_or_connector_written_receipts_move_no_points(base: OneCInfobase) -> None:
    anonymous = base.create(RECEIPTS, receipt(EMPTY_GUID))
    connector_style = base.create(RECEIPTS, receipt(use_points=False) | {"БонусныеБаллы": []})
    base.post(RECEIPTS, anonymous)
    base.post(RECEIPTS, connector_style)
    assert base.rows(RECORDS) == []
    assert all(row["Posted"] for row in base.rows(RECEIPTS))


def test_reposting_replaces_movements_and_unposting_removes_them(base: OneCInfobase) -> None:
    ref = base.create(RECEIPTS, receipt())
    base.post(RECEIPTS, ref)
    base.update(RECEIPTS, ref, {"БонусныеБаллы": []})
    base.post(RECEIPTS, ref)
    assert moves(base) == [("Expense", "2026-11-19T00:00:00", Decimal(150), Decimal(150))]
    base.unpost(RECEIPTS, ref)
    assert base.rows(RECORDS) == []
    assert base.rows(RECEIPTS)[0]["Posted"] is False


def test_manual_document_defers_accrual_schedules_expiry_and_writes_off_at_day_start(
    base: OneCInfobase,
) -> None:
    ref = base.create(
        MANUAL,
        {
            "Date": "2026-11-19T14:32:07",
            "БонуснаяПрограммаЛояльности_Key": PROGRAM,
            "ПериодОтсрочкиНачалаДействия": "День",
            "КоличествоПериодовОтсрочкиНачалаДействия": 14,
            "ПериодДействия": "Год",
            "КоличествоПериодовДействия": 1,
            "Начисление": [{"Партнер_Key": PARTNER, "Баллы": 100}],
            "Списание": [{"Партнер_Key": PARTNER, "Баллы": "30.5"}],
        },
    )
    base.post(MANUAL, ref)
    assert moves(base) == [
        ("Receipt", "2026-12-03T00:00:00", Decimal(100), Decimal(0)),
        ("Receipt", "2027-12-03T00:00:00", Decimal(0), Decimal(100)),
        ("Expense", "2026-11-19T00:00:00", Decimal("30.5"), Decimal("30.5")),
    ]


def test_balance_excludes_the_boundary_moment_and_later_movements(base: OneCInfobase) -> None:
    base.post(RECEIPTS, base.create(RECEIPTS, receipt()))
    before = base.balance(datetime(2026, 12, 3))
    after = base.balance(datetime(2026, 12, 3, 0, 0, 1))
    expired = base.balance(datetime(2028, 1, 1))
    assert [(r["НачисленоBalance"], r["КСписаниюBalance"]) for r in before] == [
        (Decimal(-150), Decimal(-150))
    ]
    assert [(r["НачисленоBalance"], r["КСписаниюBalance"]) for r in after] == [(Decimal(-33), Decimal(-150))]
    assert [(r["НачисленоBalance"], r["КСписаниюBalance"]) for r in expired] == [(Decimal(-33), Decimal(-33))]


def test_every_write_changes_data_version(base: OneCInfobase) -> None:
    ref = base.create(RECEIPTS, receipt())
    versions = [base.rows(RECEIPTS)[0]["DataVersion"]]
    for action in (
        lambda: base.update(RECEIPTS, ref, {"Комментарий": "x"}),
        lambda: base.post(RECEIPTS, ref),
        lambda: base.unpost(RECEIPTS, ref),
    ):
        action()
        versions.append(base.rows(RECEIPTS)[0]["DataVersion"])
    assert len(set(versions)) == 4


def test_unknown_fields_are_dropped_and_posted_cannot_be_written(base: OneCInfobase) -> None:
    ref = base.create(RECEIPTS, receipt() | {"НетТакогоПоля": 1, "Posted": True})
    row = base.rows(RECEIPTS)[0]
    assert "НетТакогоПоля" not in row
    assert row["Posted"] is False
    assert base.get(RECEIPTS, ref)["Товары"][0]["Ref_Key"] == ref


def test_strict_line_numbers_refuse_gaps_and_missing_numbers(base: OneCInfobase) -> None:
    with pytest.raises(OneCServiceError) as gap:
        base.create(RECEIPTS, {"Товары": [{"LineNumber": "2"}]}, strict_lines=True)
    with pytest.raises(OneCServiceError) as missing:
        base.create(RECEIPTS, {"Товары": [{"Сумма": 1}]}, strict_lines=True)
    assert (gap.value.status, missing.value.status, missing.value.code) == (400, 500, "-1")


def test_a_marked_document_cannot_be_posted(base: OneCInfobase) -> None:
    ref = base.create(RECEIPTS, receipt() | {"DeletionMark": True})
    with pytest.raises(OneCServiceError) as caught:
        base.post(RECEIPTS, ref)
    assert (caught.value.code, caught.value.status) == ("-1", 500)


def test_retail_redemption_is_a_bonus_payment_row_and_returns_refund() -> None:
    base = OneCInfobase("retail")
    base.create("Catalog_БонусныеПрограммыЛояльности", {"Ref_Key": PROGRAM})
    kind = base.create("Catalog_ВидыОплатЧекаККМ", {"ТипОплаты": "Бонусы"})
    card = base.create("Catalog_ИнформационныеКарты", {"КодКарты": "200"})
    sale = {
        "Date": "2026-11-19T14:00:00",
        "ВидОперации": "Продажа",
        "ДисконтнаяКарта_Key": card,
        "Оплата": [{"ВидОплаты_Key": kind, "Сумма": 50, "КоличествоБонусов": 50}],
    }
    base.post("Document_ЧекККМ", base.create("Document_ЧекККМ", sale))
    base.post("Document_ЧекККМ", base.create("Document_ЧекККМ", sale | {"ВидОперации": "Возврат"}))
    records = base.rows(RECORDS)
    assert [(r["RecordType"], r["Начислено"], r["ДисконтнаяКарта_Key"]) for r in records] == [
        ("Expense", Decimal(50), card),
        ("Receipt", Decimal(50), card),
    ]
    assert base.balance() == []


def test_seed_normalises_guids_and_doubles_and_numbers_lines(base: OneCInfobase) -> None:
    ref = base.seed(
        RECEIPTS,
        {
            "Ref_Key": "5F0C2A1E-E2B7-11EE-8A3C-00155D0A1F09",
            "Date": datetime(2026, 11, 19, 10),
            "Партнер_Key": PARTNER,
            "СуммаДокумента": Decimal("2350.00"),
            "Товары": [{"Сумма": Decimal("117.50")}, {"Сумма": 3}],
        },
        posted=True,
    )
    row = base.get(RECEIPTS, ref)
    assert ref == "5f0c2a1e-e2b7-11ee-8a3c-00155d0a1f09"
    assert (str(row["СуммаДокумента"]), row["Posted"]) == ("2350", True)
    assert [(line["LineNumber"], str(line["Сумма"]), line["Ref_Key"]) for line in row["Товары"]] == [
        (1, "117.5", ref),
        (2, "3", ref),
    ]
    assert base.rows(RECORDS) == []


def test_balance_by_chosen_dimensions(base: OneCInfobase) -> None:
    other = base.create("Catalog_Партнеры", {"Description": "Петров"})
    for partner in (PARTNER, other):
        base.post(RECEIPTS, base.create(RECEIPTS, receipt(partner)))
    by_program = base.balance(dimensions=["БонуснаяПрограммаЛояльности_Key"])
    assert by_program == [
        {
            "БонуснаяПрограммаЛояльности_Key": PROGRAM,
            "НачисленоBalance": Decimal(-66),
            "КСписаниюBalance": Decimal(-66),
        }
    ]


def _keyed(base: OneCInfobase, comment: str) -> str:
    return base.create(RECEIPTS, {**receipt(), "Комментарий": comment})


def _found(base: OneCInfobase, flt: str, *, indexed: bool) -> list[str]:
    source = base.source(RECEIPTS)
    query = parse_query({"$filter": flt, "$orderby": "Date"}, Fields.of_layout(source.layout))
    lookup = source.lookup if indexed else None
    page, _ = run_query(query, source.name, source.version, source.rows, lookup=lookup)
    return [row[0] for row in page]


def test_key_lookups_by_the_word_index_find_what_a_scan_finds_after_every_write(base: OneCInfobase) -> None:
    sale = _keyed(base, "onec:evotor:a-1:sale")
    longer = _keyed(base, "onec:evotor:a-1:sale_reversal")  # contains the sale's key: substringof matches it
    ret = _keyed(base, "onec:evotor:b-2:return")
    _keyed(base, "вручную")
    flt = (
        "(substringof('onec:evotor:a-1:sale', Комментарий) or substringof('onec:evotor:b-2:return', Комментарий)"
        " or substringof('onec:evotor:c-3:sale', Комментарий)) and DeletionMark eq false"
    )
    assert _found(base, flt, indexed=True) == _found(base, flt, indexed=False) == [sale, longer, ret]

    base.update(RECEIPTS, ret, {"Комментарий": "onec:evotor:c-3:sale"})
    base.delete(RECEIPTS, sale)
    moved = _keyed(base, "onec:evotor:b-2:return")
    assert _found(base, flt, indexed=True) == _found(base, flt, indexed=False) == [longer, ret, moved]


def test_the_word_index_narrows_only_what_a_needle_pins_down(base: OneCInfobase) -> None:
    sale = _keyed(base, "onec:evotor:a-1:sale")
    _keyed(base, "onec:evotor:b-2:sale")
    position = base.layouts[RECEIPTS].index["Комментарий"]
    assert base.containing(RECEIPTS, position, ":a-1:") == {sale}
    assert base.containing(RECEIPTS, position, "evotor:a") is None  # no whole word: the caller scans
    # a filter that is not only substringof terms is answered by a scan, with the same result
    flt = "substringof('onec:evotor:a-1:sale', Комментарий) or Posted eq true"
    assert _found(base, flt, indexed=True) == _found(base, flt, indexed=False) == [sale]
