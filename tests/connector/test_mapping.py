"""The mapping engine and the shipped mappings, checked field by field on hand-written raw payloads.

Fixtures in tests/data/raw/ follow the shapes of reference/evotor.md §3, reference/onec.md §1.3/§3 and
reference/loyalty-platforms.md §2/§8.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connector.errors import ConfigError, MappingError
from connector.mapping import TRANSFORM_NAMES, load_mapping, shipped_mappings
from connector.mapping.functions import Scope, quote_identifiers
from connector.mapping.transforms import parse_transform
from connector.model import DocRef, Posting, Return, Sale

RAW = Path(__file__).parent.parent / "data" / "raw"
ROOT = Path(__file__).parent.parent.parent
MSK = timezone(timedelta(hours=3))
BONUS_APP = "7f1d0c2b-b0b0-4b0b-8b0b-00000000b0b0"
SALE_ID = "5d1c2f0a-8b4e-4c1a-9f3e-2a7b6c5d4e01"
STORE = "20230110-AAAA-40BB-80CC-DDDDEEEEFFFF"
RECEIPT_1C = "5f0c2a1e-e2b7-11ee-8a3c-00155d0a1f01"
RETURN_1C = "6a1d3b2f-e2b8-11ee-8a3c-00155d0a1f01"


def raw(name: str) -> Any:
    return json.loads((RAW / name).read_text(encoding="utf-8"), parse_float=Decimal)


def onec_catalogs() -> dict[str, Any]:
    return raw("onec/catalogs.json")  # type: ignore[no-any-return]


def amounts(document: Sale | Return) -> list[tuple[str, str, str, str]]:
    """(amount, discount, bonus_redeemed, quantity) of each line, as canonical JSON writes them."""
    return [
        (f"{line.amount:.2f}", f"{line.discount:.2f}", f"{line.bonus_redeemed:.2f}", f"{line.quantity:.3f}")
        for line in document.lines
    ]


def payments(document: Sale | Return) -> list[tuple[str, str]]:
    return [(payment.method, f"{payment.amount:.2f}") for payment in document.payments]


# --- Evotor v2 ----------------------------------------------------------------------------------------------


def test_evotor_sell_with_bonus_app_payment_keeps_local_offset_and_business_date() -> None:
    mapping = load_mapping("evotor/v2", params={"bonus_app_ids": [BONUS_APP]})
    sale = mapping.map(raw("evotor/sell_bonus_payment.json"), system="evotor")

    assert isinstance(sale, Sale)
    assert sale.ref == DocRef(system="evotor", kind="receipt", id=SALE_ID)
    assert (sale.number, sale.store, sale.register_) == (
        "1842",
        STORE,
        "20230110-1B2C-40D3-80E4-F5A6B7C8D9E0",
    )
    # 22:41 UTC is 01:41 the next day in the till's zone (+03:00): the offset is kept, the date is local.
    assert sale.occurred_at == datetime(2024, 5, 18, 1, 41, 12, 318000, tzinfo=MSK)
    assert sale.occurred_at.utcoffset() == timedelta(hours=3)
    assert sale.business_date == date(2024, 5, 18)
    assert sale.customer is not None
    assert (sale.customer.phone, sale.customer.card) == (
        "+79161234567",
        "2000000123456",
    )  # phone was a number
    assert [(line.line_no, line.sku, line.name) for line in sale.lines] == [
        (1, "101", "Латте 0.3"),
        (2, "205", "Круассан"),
    ]
    # Points paid through the app's payment system are already inside result_sum; lines stay at zero.
    assert amounts(sale) == [("500.00", "0.00", "0.00", "2.000"), ("140.15", "10.00", "0.00", "1.500")]
    assert (sale.total, sale.bonus_redeemed, sale.discount) == (
        Decimal("640.15"),
        Decimal("200.00"),
        Decimal("10.00"),
    )
    assert payments(sale) == [("cash", "440.15"), ("bonus", "200.00")]
    assert sale.fiscal is not None
    assert (sale.fiscal.fn, sale.fiscal.fd, sale.fiscal.fp) == ("7281440500000000", "3120", "1234567890")
    assert sale.status == "posted"


def test_evotor_sandbox_loyalty_app_is_a_bonus_payment_by_default() -> None:
    document = raw("evotor/sell_bonus_payment.json")
    document["body"]["payments"][1]["app_payment"]["app_id"] = "6f1d3c2a-5b7e-4a90-8c3d-b0b0c0de0001"
    sale = load_mapping("evotor/v2").map(document)
    assert (sale.bonus_redeemed, payments(sale)) == (
        Decimal("200.00"),
        [("cash", "440.15"), ("bonus", "200.00")],
    )
    # Another app's payment (a bank's acquiring) is a card payment, not points.
    plain = load_mapping("evotor/v2").map(raw("evotor/sell_bonus_payment.json"))
    assert (plain.bonus_redeemed, payments(plain)) == (Decimal("0"), [("cash", "440.15"), ("card", "200.00")])


def test_evotor_points_booked_as_doc_discount_are_added_back_to_lines() -> None:
    mapping = load_mapping("evotor/v2", params={"bonus_discount_types": ["SUM"]})
    sale = mapping.map(raw("evotor/sell_bonus_discount.json"), system="evotor")

    assert isinstance(sale, Sale)
    # result_sum 423.08 / 126.92 + their distributed 76.92 / 23.08 of points: amount includes the part paid with points.
    assert amounts(sale) == [("500.00", "0.00", "76.92", "2.000"), ("150.00", "0.00", "23.08", "1.000")]
    assert (sale.total, sale.bonus_redeemed) == (Decimal("650.00"), Decimal("100.00"))
    assert payments(sale) == [("cash", "300.00"), ("card", "250.00"), ("bonus", "100.00")]
    assert sale.occurred_at == datetime(2024, 5, 17, 12, 41, 12, 318000, tzinfo=MSK)


def test_evotor_doc_discount_that_is_not_points_stays_a_discount() -> None:
    sale = load_mapping("evotor/v2").map(raw("evotor/sell_bonus_discount.json"), system="evotor")

    assert amounts(sale) == [("423.08", "76.92", "0.00", "2.000"), ("126.92", "23.08", "0.00", "1.000")]
    assert (sale.total, sale.bonus_redeemed) == (Decimal("550.00"), Decimal("0"))


def test_evotor_mixed_doc_discounts_count_only_the_points_share() -> None:
    document = raw("evotor/sell_bonus_discount.json")
    document["body"]["doc_discounts"] = [
        {"discount_type": "BONUS", "discount_sum": Decimal("75.00")},
        {"discount_type": "SUM", "discount_sum": Decimal("25.00")},
    ]
    mapping = load_mapping("evotor/v2", params={"bonus_discount_types": ["BONUS"]})
    sale = mapping.map(document, system="evotor")

    # 76.92 · 75/100 = 57.69, 23.08 · 75/100 = 17.31: added back; the rest stays a discount.
    assert amounts(sale) == [("480.77", "19.23", "57.69", "2.000"), ("144.23", "5.77", "17.31", "1.000")]
    assert sale.bonus_redeemed == Decimal("75.00")


def test_evotor_payback_with_wrapped_arrays_names_its_sale() -> None:
    refund = load_mapping("evotor/v2").map(raw("evotor/payback_wrapped.json"), system="evotor")

    assert isinstance(refund, Return)
    assert refund.original == DocRef(system="evotor", kind="receipt", id=SALE_ID)
    assert refund.original_number == "1842"
    assert amounts(refund) == [("211.54", "38.46", "0.00", "1.000")]
    assert payments(refund) == [("cash", "211.54")]
    assert refund.occurred_at == datetime(2024, 5, 17, 17, 2, 55, 4000, tzinfo=MSK)


def test_evotor_payback_without_basis_has_no_original() -> None:
    document = raw("evotor/payback_wrapped.json")
    del document["body"]["base_document_id"], document["body"]["base_document_number"]
    refund = load_mapping("evotor/v2").map(document, system="till")

    assert isinstance(refund, Return)
    assert (refund.original, refund.original_number, refund.ref.system) == (None, None, "till")


@pytest.mark.parametrize("phone", [79161234567, "79161234567", "+7 (916) 123-45-67", "89161234567"])
def test_evotor_customer_phone_number_or_string(phone: Any) -> None:
    document = raw("evotor/payback_wrapped.json")
    document["body"]["customer_phone"] = phone
    refund = load_mapping("evotor/v2").map(document, system="evotor")
    assert refund.customer is not None
    assert refund.customer.phone == "+79161234567"


def test_evotor_anonymous_receipt_has_no_customer() -> None:
    document = raw("evotor/payback_wrapped.json")
    del document["body"]["customer_phone"]
    assert load_mapping("evotor/v2").map(document).customer is None


def test_evotor_products_catalog_gives_sku_and_category() -> None:
    catalogs = {"products": {"c0ffee00-0001-4000-8000-000000000001": {"sku": "LAT-03", "category": "coffee"}}}
    refund = load_mapping("evotor/v2").map(raw("evotor/payback_wrapped.json"), catalogs=catalogs)
    assert (refund.lines[0].sku, refund.lines[0].category) == ("LAT-03", "coffee")


def test_evotor_supplier_return_is_not_mapped() -> None:
    document = raw("evotor/payback_wrapped.json") | {"type": "RETURN"}
    with pytest.raises(MappingError, match="no file of mapping evotor/v2 maps this document"):
        load_mapping("evotor/v2").map(document, system="evotor")


# --- 1C УТ 11 -----------------------------------------------------------------------------------------------


def test_ut11_receipt_field_by_field() -> None:
    sale = load_mapping("onec/ut11").map(
        raw("onec/ut11_receipt.json"), system="onec", entity="Document_ЧекККМ", catalogs=onec_catalogs()
    )

    assert isinstance(sale, Sale)
    assert sale.ref == DocRef(system="onec", kind="Document_ЧекККМ", id=RECEIPT_1C)
    assert (sale.number, sale.store, sale.register_) == ("ТДМ-0001234", STORE, None)  # empty GUID -> null
    # Zone-less 1C time + the system zone; late evening stays on its local date.
    assert sale.occurred_at == datetime(2024, 3, 15, 23, 32, 7, tzinfo=MSK)
    assert sale.occurred_at.utcoffset() == timedelta(hours=3)
    assert sale.business_date == date(2024, 3, 15)
    assert sale.customer is not None
    assert sale.customer.phone == "+79161234567"  # "8 (916) 123-45-67" in the partners catalog
    assert (sale.customer.card, sale.customer.refs) == (
        "2000000012345",
        {"onec": "c3d4e5f6-4444-11ee-8a3c-00155d0a1f01"},
    )
    assert [line.line_no for line in sale.lines] == [1, 2, 3]  # Int64 "1", "2", "3"
    assert [(line.sku, line.category) for line in sale.lines] == [
        ("A-001", "dairy"),
        ("A-002", "tobacco"),
        ("e5f6a7b8-9999-11ee-8a3c-00155d0a1f01", None),  # not in the catalog: the 1C key
    ]
    # 0.30000000000000004 (a double) is 0.30; 0.1 + 0.2 of discounts is exactly 0.30.
    assert amounts(sale) == [
        ("2250.00", "150.00", "150.00", "2.000"),
        ("250.00", "0.00", "0.00", "1.000"),
        ("0.30", "0.30", "0.00", "3.000"),
    ]
    assert (sale.total, sale.bonus_redeemed, sale.bonus_accrued) == (
        Decimal("2500.30"),
        Decimal("150.00"),
        Decimal("117.00"),
    )
    assert payments(sale) == [("cash", "2350.30"), ("bonus", "150.00")]
    assert (sale.status, sale.version, sale.fiscal) == ("posted", "AAAAAgAAAAA=", None)


def test_ut11_receipt_is_recognised_without_entity_and_zone_is_a_parameter() -> None:
    mapping = load_mapping("onec/ut11", params={"timezone": "Asia/Yekaterinburg"})
    sale = mapping.map(raw("onec/ut11_receipt.json"), catalogs=onec_catalogs())
    assert sale.occurred_at == datetime(2024, 3, 15, 23, 32, 7, tzinfo=timezone(timedelta(hours=5)))
    assert sale.ref.system == "onec"


def test_ut11_dates_are_local_to_the_store_when_the_catalog_names_its_zone() -> None:
    document = raw("onec/ut11_receipt.json") | {"Склад_Key": "7a1b2c3d-0003-11ee-8a3c-00155d0a1f01"}
    sale = load_mapping("onec/ut11").map(document, catalogs=onec_catalogs())
    assert sale.store == "20230110-BBBB-40BB-80CC-DDDDEEEEFFFF"
    assert sale.occurred_at == datetime(2024, 3, 15, 23, 32, 7, tzinfo=timezone(timedelta(hours=4)))
    assert sale.business_date == date(2024, 3, 15)


def test_ut11_guids_in_any_case_find_lower_case_catalog_keys_and_a_store_entry_may_be_just_its_id() -> None:
    catalogs = onec_catalogs()
    catalogs["stores"] = {"7a1b2c3d-0002-11ee-8a3c-00155d0a1f01": "S01"}
    document = raw("onec/ut11_receipt.json")
    document["Склад_Key"] = document["Склад_Key"].upper()
    document["Партнер_Key"] = document["Партнер_Key"].upper()
    sale = load_mapping("onec/ut11").map(document, catalogs=catalogs)
    assert sale.store == "S01"
    assert sale.customer is not None
    assert sale.customer.phone == "+79161234567"
    assert sale.occurred_at.utcoffset() == timedelta(hours=3)  # no zone in the entry: the mapping's timezone


@pytest.mark.parametrize(
    ("posted", "deleted", "status"),
    [(True, False, "posted"), (False, False, "draft"), (True, True, "deleted")],
)
def test_ut11_posted_and_deletion_mark_give_status(posted: bool, deleted: bool, status: str) -> None:
    document = raw("onec/ut11_receipt.json") | {"Posted": posted, "DeletionMark": deleted}
    sale = load_mapping("onec/ut11").map(document, entity="Document_ЧекККМ", catalogs=onec_catalogs())
    assert sale.status == status


def test_ut11_point_value_converts_points_when_no_money_column() -> None:
    document = raw("onec/ut11_receipt.json")
    del document["Товары"][0]["СуммаБонусныхБалловКСписаниюВВалюте"]
    mapping = load_mapping("onec/ut11", params={"point_value": "0.50"})
    sale = mapping.map(document, entity="Document_ЧекККМ", catalogs=onec_catalogs())
    assert (sale.lines[0].bonus_redeemed, sale.bonus_redeemed) == (Decimal("75.00"), Decimal("75.00"))


def test_ut11_returns_page() -> None:
    page = raw("onec/ut11_returns_page.json")
    results = list(
        load_mapping("onec/ut11").map_many(
            page["value"], system="onec", entity="Document_ЧекККМВозврат", catalogs=onec_catalogs()
        )
    )
    first, second = (result.value for result in results)

    assert isinstance(first, Return)
    assert isinstance(second, Return)
    assert first.original == DocRef(system="onec", kind="Document_ЧекККМ", id=RECEIPT_1C)
    assert (first.status, amounts(first), payments(first)) == (
        "posted",
        [("250.00", "0.00", "0.00", "1.000")],
        [("cash", "250.00")],
    )
    # No basis (empty ЧекККМ_Key), not posted, store missing from the catalog, points only at document level.
    assert (second.original, second.status, second.store) == (
        None,
        "draft",
        "7a1b2c3d-0009-11ee-8a3c-00155d0a1f01",
    )
    assert second.customer is not None
    assert (second.customer.phone, second.customer.account) == (
        None,
        "card:2000000099999",
    )
    assert (second.bonus_redeemed, second.lines[0].bonus_redeemed) == (Decimal("50.00"), Decimal("0.00"))
    assert payments(second) == [("cash", "450.00"), ("bonus", "50.00")]


def test_ut11_register_rows_become_postings() -> None:
    page = raw("onec/ut11_register_page.json")
    mapping = load_mapping("onec/ut11")
    postings = [
        result.value
        for result in mapping.map_many(
            page["value"], entity="AccumulationRegister_БонусныеБаллы_RecordType", catalogs=onec_catalogs()
        )
    ]

    assert all(isinstance(posting, Posting) for posting in postings)
    rows = [(p.key, p.kind, f"{p.amount:.2f}", p.status) for p in postings if isinstance(p, Posting)]
    assert rows == [
        (f"onec:{RECEIPT_1C}:redemption", "redemption", "-150.00", "active"),
        (f"onec:{RECEIPT_1C}:accrual", "accrual", "117.00", "pending"),
        (f"onec:{RECEIPT_1C}:expiry", "expiry", "-117.00", "pending"),  # the expiry schedule row
        (f"onec:{RETURN_1C}:accrual_reversal", "accrual_reversal", "-11.70", "active"),
        (f"onec:{RETURN_1C}:redemption_refund", "redemption_refund", "50.00", "active"),
        (f"onec:{RETURN_1C}:expiry", "expiry", "11.70", "cancelled"),  # the schedule withdrawn by the return
    ]
    accrual = postings[1]
    assert isinstance(accrual, Posting)
    assert accrual.account == "+79161234567"
    assert accrual.document == DocRef(system="onec", kind="Document_ЧекККМ", id=RECEIPT_1C)
    assert accrual.ref == DocRef(
        system="onec", kind="AccumulationRegister_БонусныеБаллы", id=f"{RECEIPT_1C}:2"
    )
    assert accrual.occurred_at == accrual.available_at == datetime(2024, 3, 29, tzinfo=MSK)


def test_ut11_register_row_of_unknown_partner_is_an_error_naming_the_field() -> None:
    row = raw("onec/ut11_register_page.json")["value"][0] | {
        "Партнер_Key": "99999999-4444-11ee-8a3c-00155d0a1f01"
    }
    with pytest.raises(MappingError) as caught:
        load_mapping("onec/ut11").map(row, system="onec", catalogs=onec_catalogs())
    assert caught.value.context["field"] == "account"
    assert caught.value.context["source"] == "Партнер_Key"
    assert "has no '99999999-4444-11ee-8a3c-00155d0a1f01'" in caught.value.message


def test_ut11_bonus_documents_become_postings_with_the_connector_key() -> None:
    documents = raw("onec/ut11_bonus_documents.json")
    mirrored, manual = (
        result.value for result in load_mapping("onec/ut11").map_many(documents, catalogs=onec_catalogs())
    )

    assert isinstance(mirrored, Posting)
    assert isinstance(manual, Posting)
    assert (mirrored.key, mirrored.kind, mirrored.amount, mirrored.status) == (
        f"evotor:{SALE_ID}:accrual",
        "accrual",
        Decimal("32.00"),
        "pending",
    )
    assert (mirrored.available_at, mirrored.expires_at) == (
        datetime(2024, 5, 31, tzinfo=MSK),
        datetime(2025, 5, 31, tzinfo=MSK),
    )
    assert mirrored.ref == DocRef(
        system="onec",
        kind="Document_НачислениеИСписаниеБонусныхБаллов",
        id="8b2c4d6e-f001-11ee-8a3c-00155d0a1f01",
    )
    assert (manual.key, manual.kind, manual.amount, manual.account) == (
        "onec:8b2c4d6e-f002-11ee-8a3c-00155d0a1f01:adjustment",
        "adjustment",
        Decimal("-40.50"),
        "card:2000000099999",
    )
    assert (manual.available_at, manual.expires_at, manual.status) == (
        None,
        None,
        "active",
    )  # 0001-01-01 -> null


# --- 1C Розница 2 --------------------------------------------------------------------------------------------


def test_retail2_sale_and_return_by_operation_kind() -> None:
    page = raw("onec/retail2_page.json")
    sale, refund = (
        result.value
        for result in load_mapping("onec/retail2").map_many(
            page["value"], entity="Document_ЧекККМ", catalogs=onec_catalogs()
        )
    )

    assert isinstance(sale, Sale)
    assert isinstance(refund, Return)
    assert sale.customer is not None
    assert (sale.customer.phone, sale.customer.card) == (
        "+79161234567",
        "2000000012345",
    )
    assert sale.store == STORE
    # Сумма includes the part paid with points; СуммаСкидкиОплатыБонусом is that part per line.
    assert amounts(sale) == [("199.80", "0.00", "66.60", "2.000"), ("100.20", "0.00", "33.40", "1.000")]
    assert (sale.total, sale.bonus_redeemed) == (Decimal("300.00"), Decimal("100.00"))
    assert payments(sale) == [("cash", "200.00"), ("bonus", "100.00")]
    assert refund.original == DocRef(
        system="onec", kind="Document_ЧекККМ", id="91a2b3c4-0001-11ee-8a3c-00155d0a1f01"
    )
    assert (refund.bonus_redeemed, payments(refund)) == (
        Decimal("33.40"),
        [("card", "66.80"), ("bonus", "33.40")],
    )


def test_retail2_points_deducted_from_line_sum_are_added_back() -> None:
    document = raw("onec/retail2_page.json")["value"][0]
    for line in document["Товары"]:
        line["Сумма"] -= line["СуммаСкидкиОплатыБонусом"]
    mapping = load_mapping("onec/retail2", params={"bonus_in_line_sum": False})
    sale = mapping.map(document, entity="Document_ЧекККМ", catalogs=onec_catalogs())
    assert amounts(sale) == [("199.80", "0.00", "66.60", "2.000"), ("100.20", "0.00", "33.40", "1.000")]


def test_retail2_line_points_disagreeing_with_the_payment_row_are_reported() -> None:
    document = raw("onec/retail2_page.json")["value"][0]
    document["Оплата"][1]["Сумма"] = Decimal("90")
    with pytest.raises(
        MappingError, match=r"receipt-level 90\.00 differs from the sum over lines 100\.00"
    ) as caught:
        load_mapping("onec/retail2").map(document, catalogs=onec_catalogs())
    assert caught.value.context["field"] == "bonus_redeemed"


def test_retail2_register_rows_and_bonus_documents_use_the_discount_card() -> None:
    card = "d4e5f6a7-5555-11ee-8a3c-00155d0a1f01"
    rows = raw("onec/ut11_register_page.json")["value"][:3]
    for row in rows:
        del row["Партнер_Key"]
        row["ДисконтнаяКарта_Key"] = card
    documents = raw("onec/ut11_bonus_documents.json")[:1]
    documents[0]["Начисление"][0] = {"LineNumber": "1", "ДисконтнаяКарта_Key": card, "Баллы": 32}
    mapping = load_mapping("onec/retail2")
    results = [
        *mapping.map_many(rows, catalogs=onec_catalogs()),
        *mapping.map_many(documents, catalogs=onec_catalogs()),
    ]
    postings = [result.value for result in results]

    assert all(isinstance(posting, Posting) for posting in postings)
    summary = [(p.kind, f"{p.amount:.2f}", p.account) for p in postings if isinstance(p, Posting)]
    assert summary == [
        ("redemption", "-150.00", "+79161234567"),  # the cards catalog gives the owner's phone
        ("accrual", "117.00", "+79161234567"),
        ("expiry", "-117.00", "+79161234567"),
        ("accrual", "32.00", "+79161234567"),
    ]


def test_bonus_document_expiry_date_wins_over_the_period_and_months_are_calendar_months() -> None:
    document = raw("onec/ut11_bonus_documents.json")[0]
    mapping = load_mapping("onec/ut11")
    document |= {"ПериодОтсрочкиНачалаДействия": "Месяц", "КоличествоПериодовОтсрочкиНачалаДействия": 1}
    document |= {"Date": "2024-01-31T18:00:00", "ПериодДействия": "Квартал", "КоличествоПериодовДействия": 2}
    posting = mapping.map(document, catalogs=onec_catalogs())
    # 31 January + 1 month = 29 February 2024 (clamped), + 2 quarters = 29 August.
    assert (posting.available_at, posting.expires_at) == (
        datetime(2024, 2, 29, tzinfo=MSK),
        datetime(2024, 8, 29, tzinfo=MSK),
    )
    document["ДатаОкончанияСрокаДействия"] = "2024-12-31T00:00:00"
    assert mapping.map(document, catalogs=onec_catalogs()).expires_at == datetime(2024, 12, 31, tzinfo=MSK)
    document["ПериодДействия"] = "Век"
    document["ДатаОкончанияСрокаДействия"] = "0001-01-01T00:00:00"
    with pytest.raises(MappingError, match="unknown period 'Век'") as caught:
        mapping.map(document, catalogs=onec_catalogs())
    assert caught.value.context["field"] == "expires_at"


# --- CRM ----------------------------------------------------------------------------------------------------


def test_retailcrm_operations_become_postings() -> None:
    page = raw("crm/retailcrm_operations_page.json")
    results = list(
        load_mapping("crm/retailcrm").map_many(page["bonusOperations"], catalogs=raw("crm/catalogs.json"))
    )
    postings = [result.value for result in results]

    assert all(isinstance(posting, Posting) for posting in postings)
    rows = [
        (p.key, p.account, p.kind, f"{p.amount:.2f}", p.status) for p in postings if isinstance(p, Posting)
    ]
    assert rows == [
        (
            f"evotor:{SALE_ID}:accrual",
            "+79161234567",
            "accrual",
            "32.00",
            "pending",
        ),  # comment crm:<posting key>
        (f"evotor:{SALE_ID}:redemption", "+79161234567", "redemption", "-200.00", "active"),
        ("crm:5003:accrual", "card:2000000099999", "accrual", "6.00", "pending"),
        ("crm:5004:birthday", "+79161234567", "birthday", "300.00", "active"),
        ("crm:5005:expiry", "+79161234567", "expiry", "-12.50", "active"),
    ]
    first = postings[0]
    assert isinstance(first, Posting)
    assert first.occurred_at == datetime(2024, 5, 17, 12, 45, tzinfo=MSK)
    assert (first.available_at, first.expires_at) == (
        datetime(2024, 5, 31, tzinfo=MSK),
        datetime(2025, 5, 31, tzinfo=MSK),
    )
    assert first.ref == DocRef(system="crm", kind="bonus_operation", id="5001")
    third = postings[2]
    assert isinstance(third, Posting)
    assert third.document == DocRef(system="crm", kind="order", id="1c-ЧК-00017")


def test_generic_crm_example_maps_its_sample_page() -> None:
    items = raw("crm/generic_operations.json")["items"]
    accrual, expiry = (result.value for result in load_mapping("crm/generic-example").map_many(items))

    assert isinstance(accrual, Posting)
    assert isinstance(expiry, Posting)
    assert (accrual.key, accrual.account, accrual.amount, accrual.status) == (
        f"evotor:{SALE_ID}:accrual",
        "+79161234567",
        Decimal("32.00"),
        "pending",
    )
    assert (expiry.key, expiry.account, expiry.kind, expiry.amount) == (
        "crm:op-7f3b:expiry",
        "card:2000000099999",
        "expiry",
        Decimal("-15.50"),
    )


# --- batches and errors on documents ------------------------------------------------------------------------


def test_a_bad_document_in_a_batch_is_reported_with_index_and_field_and_the_rest_is_mapped() -> None:
    good = raw("evotor/sell_bonus_payment.json")
    bad = copy.deepcopy(good) | {"id": "bad-1"}
    bad["body"]["positions"][1]["quantity"] = "полтора"
    results = list(load_mapping("evotor/v2").map_many([good, bad, good]))

    assert [result.ok for result in results] == [True, False, True]
    error = results[1].error
    assert error is not None
    assert results[1].index == 1
    assert error.context == {
        "system": "evotor",
        "document": "bad-1",
        "field": "lines[1].quantity",
        "source": "quantity",
    }
    assert "'полтора' is not a number" in error.message


def test_a_float_in_a_raw_document_is_refused() -> None:
    document = raw("evotor/payback_wrapped.json")
    document["body"]["positions"][0]["position"]["result_sum"] = 211.54
    with pytest.raises(MappingError, match="not an exact number") as caught:
        load_mapping("evotor/v2").map(document)
    assert caught.value.context["field"] == "lines[0].amount"


def test_a_canonical_rule_broken_by_the_data_names_the_canonical_field() -> None:
    document = raw("onec/ut11_receipt.json")
    document["Товары"][1]["СуммаБонусныхБалловКСписанию"] = 300  # more points than the line's 250
    with pytest.raises(
        MappingError, match=r"bonus_redeemed 300\.00 must be between 0 and amount 250\.00"
    ) as caught:
        load_mapping("onec/ut11").map(document, catalogs=onec_catalogs())
    assert caught.value.context["field"] == "lines[1]"
    assert caught.value.context["document"] == RECEIPT_1C


# --- loading and validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["evotor/v2", "onec/ut11", "onec/retail2", "crm/retailcrm", "crm/generic-example"]
)
def test_every_shipped_mapping_loads(name: str) -> None:
    assert name in shipped_mappings()
    mapping = load_mapping(name)
    assert mapping.files
    assert mapping.system == name.split("/")[0]


MINIMAL = """\
system: test
produces: posting
fields:
  kind: {value: adjustment}
  account: phone
  amount:
    path: points
    transforms: [{decimal: 2}]
  occurred_at: {path: at, transforms: [{datetime: UTC}]}
  status: {value: active}
ref:
  kind: {value: op}
  id: id
"""


def minimal(old: str = "", new: str = "") -> str:
    return MINIMAL.replace(old, new) if old else MINIMAL


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "custom.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_custom_mapping_file_maps_by_path(tmp_path: Path) -> None:
    path = write(tmp_path, minimal())
    posting = load_mapping(str(path)).map(
        {"id": 7, "phone": "+79161234567", "points": "1.005", "at": "2024-01-01T10:00:00"}
    )
    assert isinstance(posting, Posting)
    assert (posting.key, posting.amount, posting.occurred_at.utcoffset()) == (
        "test:7:adjustment",
        Decimal("1.01"),
        timedelta(0),
    )


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        (
            minimal("{decimal: 2}", "decimall"),
            8,
            "fields.amount.transforms[0]",
            "unknown transform 'decimall'",
        ),
        (
            minimal("{decimal: 2}", "{decimal: {digits: 2}}"),
            8,
            "fields.amount.transforms[0]",
            "bad arguments",
        ),
        (minimal("account: phone", "account: 'phone[?'"), 5, "fields.account", "bad JMESPath expression"),
        (
            minimal("account: phone", "account: 'lower(phone)'"),
            5,
            "fields.account",
            "unknown function lower()",
        ),
        (
            minimal("{datetime: UTC}", "{datetime: Mars/Olympus}"),
            9,
            "fields.occurred_at.transforms[0]",
            "time zone",
        ),
        (minimal("  status:", "  stauts:"), 10, "fields.stauts", "Input should be"),
        (minimal("produces: posting", "produces: postings"), 2, "produces", "'receipt', 'posting'"),
        (
            minimal("{datetime: UTC}", "{datetime: $zone}"),
            9,
            "fields.occurred_at.transforms[0].datetime",
            "parameter 'zone'",
        ),
        (
            minimal("account: phone", "account: \"param('who')\""),
            5,
            "fields.account",
            "unknown parameter 'who'",
        ),
    ],
)
def test_invalid_mapping_is_a_config_error_with_file_and_line(
    tmp_path: Path, text: str, line: int, key: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_mapping(str(path))
    assert message in caught.value.message
    assert (caught.value.context["file"], caught.value.context["line"], caught.value.context.get("key")) == (
        str(path),
        line,
        key,
    )


def test_unparsable_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "system: x\nproduces: [posting\nfields: {}\n")
    with pytest.raises(ConfigError, match="not valid YAML") as caught:
        load_mapping(str(path))
    assert caught.value.context["line"] == 3


def test_unknown_parameter_override_and_unknown_name_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown mapping parameter 'bonus_app_id'"):
        load_mapping("evotor/v2", params={"bonus_app_id": ["x"]})
    with pytest.raises(ConfigError, match=r"no mapping 'evotor/v9'.*evotor/v2"):
        load_mapping("evotor/v9")


def test_transform_names_are_the_documented_ones() -> None:
    assert {
        "decimal",
        "datetime",
        "date",
        "enum",
        "phone",
        "lookup",
        "default",
        "negate",
        "abs",
        "template",
    } <= set(TRANSFORM_NAMES)


def test_cyrillic_identifiers_are_quoted_outside_literals() -> None:
    assert quote_identifiers("Товары[?Сумма > `0`].LineNumber") == '"Товары"[?"Сумма" > `0`].LineNumber'
    assert (
        quote_identifiers("starts_with(Комментарий, 'onec:Чек')")
        == "starts_with(\"Комментарий\", 'onec:Чек')"
    )
    assert quote_identifiers('"Уже"."в кавычках"') == '"Уже"."в кавычках"'


TRANSFORM_CASES: list[tuple[Any, Any, Any]] = [
    ({"decimal": 2}, Decimal("0.30000000000000004"), Decimal("0.30")),
    ({"decimal": 2}, "2.345", Decimal("2.35")),  # half up
    ("decimal", 7, Decimal(7)),
    ("int", "12", 12),
    ("string", Decimal("1842"), "1842"),
    ("guid", "00000000-0000-0000-0000-000000000000", None),
    ("bool", "true", True),
    ({"datetime": "Europe/Moscow"}, "0001-01-01T00:00:00", None),
    ({"datetime": "UTC"}, 1715939472318, datetime(2024, 5, 17, 9, 51, 12, 318000, tzinfo=UTC)),
    ({"date": "Europe/Moscow"}, "2024-05-17T23:59:59", date(2024, 5, 17)),
    ({"enum": {"values": {"Пробит": "posted"}, "default": "draft"}}, "Отложен", "draft"),
    ({"enum": {"CASH": "cash"}}, "CASH", "cash"),
    ({"phone": "RU"}, Decimal("79161234567"), "+79161234567"),
    ("account", {"card": "2000000012345"}, "card:2000000012345"),
    ("account", "card:42", "card:42"),
    ({"null_if": ["", "-"]}, "-", None),
    ({"default": "0"}, None, "0"),
    ("negate", "1.50", Decimal("-1.50")),
    ("abs", Decimal("-3"), Decimal(3)),
    ({"template": "card:{value}"}, 77, "card:77"),
    ({"after_prefix": "crm:"}, "crm:evotor:1:accrual", "evotor:1:accrual"),
    ({"after_prefix": "crm:"}, "manual credit", None),
]


@pytest.mark.parametrize(("spec", "value", "expected"), TRANSFORM_CASES)
def test_transform_values(spec: Any, value: Any, expected: Any) -> None:
    assert parse_transform(spec).apply(value, Scope(root={})) == expected


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        ("decimal", 0.1, "is a float, not an exact number"),
        ("int", "1.5", "is not a whole number"),
        ({"enum": {"CASH": "cash"}}, "BARTER", "'BARTER' is not in the enum table (CASH)"),
        ("phone", "12", "is not a possible phone number"),
        ({"datetime": "Europe/Moscow"}, "17.05.2024", "is not an ISO 8601 date or time"),
        ("datetime", "2024-05-17T10:00:00", "has no offset and the mapping names no zone"),
        ({"lookup": {"catalog": "partners", "missing": "error"}}, "p-1", "catalog 'partners' is not loaded"),
    ],
)
def test_transform_failures_say_why(spec: Any, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_transform(spec).apply(value, Scope(root={}))


def test_template_reads_mapping_parameters() -> None:
    scope = Scope(root={}, params={"prefix": "shop-7"})
    assert parse_transform({"template": "{$prefix}/{value}"}).apply("A-1", scope) == "shop-7/A-1"


# --- packaging ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_wheel_ships_the_mapping_files(tmp_path: Path) -> None:
    # Build from a clean copy: an in-tree build/ directory could carry stale files into the wheel.
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in ("connector", "adapters", "mappings"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(tmp_path / "dist")],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (wheel,) = (tmp_path / "dist").glob("loyalty_connector-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {str(path.relative_to(ROOT)).replace("\\", "/") for path in (ROOT / "mappings").rglob("*.yaml")}
    assert "mappings/onec/ut11/receipt.yaml" in shipped
    assert shipped <= names


def test_system_mapping_takes_the_system_zone_and_params() -> None:
    from connector.config import SystemConfig
    from connector.mapping import load_system_mapping

    onec = SystemConfig(
        adapter="onec", base_url="http://1c/base", mapping="onec/ut11", timezone="Asia/Yekaterinburg"
    )
    evotor = SystemConfig(
        adapter="evotor",
        base_url="http://evotor",
        mapping="evotor/v2",
        mapping_params={"bonus_app_ids": ["x"]},
    )
    onec_mapping = load_system_mapping("onec", onec)
    assert onec_mapping.params(onec_mapping.files[0][0])["timezone"] == "Asia/Yekaterinburg"
    evotor_mapping = load_system_mapping("evotor", evotor)
    assert evotor_mapping.params(evotor_mapping.files[0][0])["bonus_app_ids"] == ["x"]
    with pytest.raises(ConfigError, match=r"systems\.crm\.mapping"):
        load_system_mapping("crm", SystemConfig(adapter="crm", base_url="http://crm"))
