"""The canonical model: Decimal money, aware times, exact JSON round trips, clear validation errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connector.model import (
    Customer,
    DocRef,
    Line,
    Posting,
    Return,
    Sale,
    canonical_json_schema,
    dump_document,
    dump_posting,
    normalize_phone,
    parse_document,
)


def _sale(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "type": "sale",
        "ref": {"system": "evotor", "kind": "receipt", "id": "5f0c2a1e"},
        "number": "1234",
        "store": "store-1",
        "register": "till-2",
        "occurred_at": "2026-11-19T14:32:07+03:00",
        "business_date": "2026-11-19",
        "customer": {"phone": "+79161234567", "card": None, "email": None, "name": None, "refs": {}},
        "lines": [
            {
                "line_no": 1,
                "sku": "A-1",
                "name": "Молоко",
                "category": "dairy",
                "quantity": "2.000",
                "price": "1200.00",
                "amount": "2250.00",
                "discount": "150.00",
                "bonus_redeemed": "150.00",
            },
            {
                "line_no": 2,
                "sku": "A-2",
                "name": "Хлеб",
                "category": None,
                "quantity": "0.355",
                "price": "250.00",
                "amount": "88.75",
                "discount": "0.00",
                "bonus_redeemed": "0.00",
            },
        ],
        "payments": [{"method": "cash", "amount": "2188.75"}, {"method": "bonus", "amount": "150.00"}],
        "total": "2338.75",
        "discount": "150.00",
        "bonus_redeemed": "150.00",
        "bonus_accrued": None,
        "fiscal": {"fn": "9999078900012345", "fd": "12345", "fp": "3053468374"},
        "status": "posted",
        "version": "AAAAAgAAAAA=",
    }
    document.update(overrides)
    return document


def test_sale_round_trips_exactly_through_json() -> None:
    text = json.dumps(_sale(), ensure_ascii=False, sort_keys=True)
    sale = parse_document(text)
    assert isinstance(sale, Sale)
    assert json.dumps(dump_document(sale), ensure_ascii=False, sort_keys=True) == text


def test_money_is_decimal_and_written_with_two_decimals() -> None:
    sale = parse_document(_sale())
    assert sale.total == Decimal("2338.75")
    assert isinstance(sale.lines[1].quantity, Decimal)
    dumped = dump_document(sale)
    assert dumped["lines"][1]["quantity"] == "0.355"
    assert dumped["lines"][0]["price"] == "1200.00"
    assert dumped["register"] == "till-2"


def test_integers_are_written_as_two_decimal_strings() -> None:
    line = Line(line_no=1, quantity=Decimal(1), price=Decimal(100), amount=Decimal(100))
    assert line.model_dump(mode="json")["amount"] == "100.00"
    assert line.model_dump(mode="json")["quantity"] == "1.000"


def test_json_number_is_read_without_binary_float() -> None:
    text = json.dumps(_sale()).replace('"88.75"', "88.75")
    assert parse_document(text).lines[1].amount == Decimal("88.75")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("total", "12.345", "more than 2 decimal places"),
        ("total", "abc", "is not a decimal number"),
        ("total", 2338.75, "not float"),
        ("total", "NaN", "not a finite number"),
    ],
)
def test_bad_money_is_refused_with_a_reason(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        parse_document(_sale(**{field: value}))
    assert message in str(excinfo.value)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        parse_document(_sale(occurred_at="2026-11-19T14:32:07"))


def test_source_offset_is_kept() -> None:
    sale = parse_document(_sale(occurred_at="2026-11-19T23:30:00+05:00"))
    assert sale.occurred_at.utcoffset() == timedelta(hours=5)
    assert dump_document(sale)["occurred_at"] == "2026-11-19T23:30:00+05:00"


def test_total_must_be_the_sum_of_line_amounts() -> None:
    with pytest.raises(ValidationError, match=r"not the sum of line amounts 2338\.75"):
        parse_document(_sale(total="2338.70"))


def test_line_redeemed_must_agree_with_the_receipt() -> None:
    with pytest.raises(ValidationError, match=r"differs from the sum over lines 150\.00"):
        parse_document(_sale(bonus_redeemed="100.00"))


def test_receipt_level_redemption_alone_is_accepted() -> None:
    document = _sale()
    document["lines"][0]["bonus_redeemed"] = "0.00"
    assert parse_document(document).bonus_redeemed == Decimal("150.00")


def test_unknown_type_and_enum_are_refused() -> None:
    with pytest.raises(ValidationError, match="sale"):
        parse_document(_sale(type="refund"))
    with pytest.raises(ValidationError, match="posted"):
        parse_document(_sale(status="void"))


def test_return_carries_its_original() -> None:
    document = _sale(type="return", original={"system": "evotor", "kind": "receipt", "id": "s-1"})
    document["original_number"] = "1200"
    ret = parse_document(document)
    assert isinstance(ret, Return)
    assert ret.original == DocRef(system="evotor", kind="receipt", id="s-1")
    assert str(ret.original) == "evotor:receipt:s-1"


def test_models_are_frozen() -> None:
    sale = parse_document(_sale())
    with pytest.raises(ValidationError, match="frozen"):
        sale.number = "1"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "e164"),
    [("+7 916 123-45-67", "+79161234567"), ("89161234567", "+79161234567"), (79161234567, "+79161234567")],
)
def test_phones_become_e164(raw: str | int, e164: str) -> None:
    assert normalize_phone(raw) == e164
    assert Customer(phone=raw).phone == e164  # type: ignore[arg-type]


def test_bad_phone_error_does_not_echo_the_whole_number() -> None:
    with pytest.raises(ValidationError) as excinfo:
        Customer(phone="12345678")
    assert "12345678" not in str(excinfo.value)


def test_account_is_phone_else_card() -> None:
    assert Customer(phone="+79161234567", card="200").account == "+79161234567"
    assert Customer(card="2000000012345").account == "card:2000000012345"
    assert Customer(email="a@b.ru").account is None
    assert parse_document(_sale(customer=None)).account is None


def test_posting_round_trip_and_signed_points() -> None:
    posting = Posting(
        key="evotor:5f0c2a1e:redemption",
        account="+79161234567",
        kind="redemption",
        amount=Decimal("-150.00"),
        document=DocRef(system="evotor", kind="receipt", id="5f0c2a1e"),
        occurred_at=datetime(2026, 11, 19, 11, 32, 7, tzinfo=UTC),
        status="active",
    )
    dumped = dump_posting(posting)
    assert dumped["amount"] == "-150.00"
    assert dumped["available_at"] is None
    assert Posting.model_validate_json(json.dumps(dumped)) == posting


def test_schema_describes_documents_and_postings() -> None:
    schema = canonical_json_schema()
    defs = schema["$defs"]
    assert {"Sale", "Return", "Posting", "Document", "Line"} <= set(defs)
    assert defs["Line"]["properties"]["amount"]["type"] == "string"
    assert "register" in defs["Sale"]["properties"]
    assert set(defs["Posting"]["properties"]["kind"]["enum"]) >= {"accrual", "redemption_refund", "expiry"}


@given(
    cents=st.integers(min_value=-(10**12), max_value=10**12),
    millis=st.integers(min_value=0, max_value=10**9),
)
def test_any_money_and_quantity_round_trip(cents: int, millis: int) -> None:
    amount = Decimal(cents).scaleb(-2)
    quantity = Decimal(millis).scaleb(-3)
    line = Line(line_no=1, quantity=quantity, price=abs(amount), amount=abs(amount))
    again = Line.model_validate_json(line.model_dump_json())
    assert again == line
    assert again.model_dump(mode="json")["amount"] == f"{abs(amount):.2f}"
