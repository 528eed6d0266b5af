"""Packed rows: lossless round trip, and JSON written from the tuple exactly as the generic writer does."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from connector.sandbox.onec.layout import Layout
from connector.sandbox.onec.wire import EMPTY_DATE, Int64, canonical_decimal, dump_json

LAYOUT = Layout(
    {
        "Ref_Key": "Guid",
        "Date": "DateTime",
        "Сумма": "Double",
        "Posted": "Boolean",
        "Комментарий": "String",
        "НомерЧекаККМ": "Int32",
    },
    {"Товары": {"Ref_Key": "Guid", "LineNumber": "Int64", "Цена": "Double"}},
)
ROW = {
    "Ref_Key": "5f0c2a1e-e2b7-11ee-8a3c-00155d0a1f01",
    "Date": datetime(2026, 11, 19, 14, 32, 7),
    "Сумма": canonical_decimal(Decimal("2350.00")),
    "Posted": True,
    "Комментарий": 'кавычка " и 100%',
    "НомерЧекаККМ": 15,
    "Товары": [
        {
            "Ref_Key": "5f0c2a1e-e2b7-11ee-8a3c-00155d0a1f01",
            "LineNumber": Int64(1),
            "Цена": canonical_decimal(Decimal("117.50")),
        },
        {"Ref_Key": "5f0c2a1e-e2b7-11ee-8a3c-00155d0a1f01", "LineNumber": Int64(2), "Цена": Decimal(0)},
    ],
}


def test_pack_unpack_round_trip() -> None:
    packed = LAYOUT.pack(ROW)
    assert isinstance(packed, tuple)
    assert LAYOUT.unpack(packed) == ROW
    assert LAYOUT.getter("Сумма")(packed) == Decimal(2350)


def test_template_json_is_1c_json() -> None:
    text = LAYOUT.to_json(LAYOUT.pack(ROW))
    assert text == dump_json(ROW)
    assert '"Сумма":2350,' in text
    assert '"Цена":117.5}' in text
    assert '"LineNumber":"2"' in text
    assert json.loads(text)["Комментарий"] == 'кавычка " и 100%'


def test_canonical_decimals_and_empty_date() -> None:
    assert [str(canonical_decimal(Decimal(v))) for v in ("2350.00", "1E+1", "0.000", "-0", "40.50")] == [
        "2350",
        "10",
        "0",
        "0",
        "40.5",
    ]
    assert dump_json({"d": EMPTY_DATE}) == '{"d":"0001-01-01T00:00:00"}'
