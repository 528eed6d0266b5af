"""$filter / $orderby / $select parsing and evaluation, as 1C's standard interface reads them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from connector.sandbox.onec.odata_query import (
    AllOf,
    AnyOf,
    Contains,
    Fields,
    Query,
    compile_filter,
    parse_query,
)
from connector.sandbox.onec.results import run_query
from connector.sandbox.onec.wire import Int64, OneCServiceError

TYPES = {
    "Ref_Key": "Guid",
    "Description": "String",
    "Date": "DateTime",
    "Сумма": "Double",
    "DeletionMark": "Boolean",
    "LineNumber": "Int64",
    "ВидОперации": "String",
}
SECTIONS = {"Товары": {"Ref_Key": "Guid", "LineNumber": "Int64", "Цена": "Double"}}
FIELDS = Fields.of_dicts(TYPES, SECTIONS)
ROWS: list[dict[str, Any]] = [
    {
        "Ref_Key": "00000000-0000-0000-0000-00000000000a",
        "Description": "O'Brien",
        "Date": datetime(2026, 11, 1, 10),
        "Сумма": Decimal("100.50"),
        "DeletionMark": False,
        "LineNumber": Int64(1),
        "ВидОперации": "Продажа",
        "Товары": [{"Цена": Decimal("1500")}],
    },
    {
        "Ref_Key": "00000000-0000-0000-0000-00000000000b",
        "Description": "Иванов",
        "Date": datetime(2026, 11, 2, 0),
        "Сумма": Decimal("20"),
        "DeletionMark": True,
        "LineNumber": Int64(2),
        "ВидОперации": "Возврат",
        "Товары": [{"Цена": Decimal("10")}, {"Цена": Decimal("20")}],
    },
    {
        "Ref_Key": "00000000-0000-0000-0000-00000000000c",
        "Description": "Петров",
        "Date": datetime(2026, 11, 3, 23),
        "Сумма": Decimal("20"),
        "DeletionMark": False,
        "LineNumber": Int64(3),
        "ВидОперации": "Продажа",
        "Товары": [],
    },
]


def matching(expression: str) -> list[str]:
    predicate = compile_filter(expression, TYPES, SECTIONS)
    return [row["Description"] for row in ROWS if predicate(row)]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("Сумма eq 20", ["Иванов", "Петров"]),
        ("Сумма ne 20", ["O'Brien"]),
        ("Сумма gt 20", ["O'Brien"]),
        ("Сумма ge 20.0", ["O'Brien", "Иванов", "Петров"]),
        ("Сумма lt 100.5M", ["Иванов", "Петров"]),
        ("Сумма le 100.5", ["O'Brien", "Иванов", "Петров"]),
        ("LineNumber gt 1L", ["Иванов", "Петров"]),
        ("Description eq 'O''Brien'", ["O'Brien"]),
        ("Ref_Key eq guid'00000000-0000-0000-0000-00000000000B'", ["Иванов"]),
        ("Date ge datetime'2026-11-02T00:00:00' and Date lt datetime'2026-11-03T00:00'", ["Иванов"]),
        ("DeletionMark eq true", ["Иванов"]),
        ("not DeletionMark", ["O'Brien", "Петров"]),
        ("not (ВидОперации eq 'Продажа') or Сумма gt 100", ["O'Brien", "Иванов"]),
        ("(Сумма eq 20 or Сумма eq 100.5) and DeletionMark eq false", ["O'Brien", "Петров"]),
        ("substringof('ван', Description)", ["Иванов"]),
        ("startswith(Description, 'Пет') eq true", ["Петров"]),
        ("Сумма add 5 eq 25", ["Иванов", "Петров"]),
        ("year(Date) eq 2026 and day(Date) eq 3", ["Петров"]),
        ("Товары/any(d: d/Цена gt 1000)", ["O'Brien"]),
        ("Товары/all(d: d/Цена lt 100)", ["Иванов", "Петров"]),
    ],
)
def test_filter_selects_the_rows_1c_would(expression: str, expected: list[str]) -> None:
    assert matching(expression) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "Сумма eq",
        "Unknown eq 1",
        "Date ge '2026-11-01'",
        "Ref_Key eq 5",
        "Description eq 'unterminated",
        "Ref_Key eq guid'not-a-guid'",
        "Сумма eq 1 extra",
        "frobnicate(Description)",
        "(Сумма eq 1",
    ],
)
def test_a_bad_filter_is_code_14_with_http_400(expression: str) -> None:
    with pytest.raises(OneCServiceError) as caught:
        compile_filter(expression, TYPES, SECTIONS)
    assert (caught.value.code, caught.value.status) == ("14", 400)


def test_orderby_several_keys_each_in_its_direction_then_paging() -> None:
    query = parse_query({"$orderby": "Сумма desc, Description", "$top": "2", "$skip": "1"}, FIELDS)
    page, total = run_query(query, "X", 1, ROWS)
    assert [row["Description"] for row in page] == ["Иванов", "Петров"]
    assert total == 3


def test_select_keeps_known_fields_and_navigation_paths_but_refuses_unknown() -> None:
    assert parse_query({"$select": "Description, Товары"}, FIELDS).select == ("Description", "Товары")
    with pytest.raises(OneCServiceError) as caught:
        parse_query({"$select": "Nope"}, FIELDS)
    assert caught.value.code == "14"


@pytest.mark.parametrize(
    "params", [{"$top": "-1"}, {"$skip": "x"}, {"$inlinecount": "sometimes"}, {"$orderby": "Nope"}]
)
def test_bad_paging_options_are_code_14(params: dict[str, str]) -> None:
    with pytest.raises(OneCServiceError) as caught:
        parse_query(params, FIELDS)
    assert caught.value.code == "14"


def test_inlinecount_counts_before_paging() -> None:
    query = parse_query({"$filter": "Сумма eq 20", "$top": "1", "$inlinecount": "allpages"}, FIELDS)
    page, total = run_query(query, "X", 1, ROWS)
    assert (len(page), total, query.inlinecount) == (1, 2, True)
    assert Query().predicate is None


@pytest.mark.parametrize(
    ("expression", "narrowing"),
    [
        ("substringof('a:b:c', Description)", Contains("Description", "a:b:c")),
        (
            "(substringof('a:b', Description) or substringof('c:d', ВидОперации)) and DeletionMark eq false",
            AllOf((AnyOf((Contains("Description", "a:b"), Contains("ВидОперации", "c:d"))),)),
        ),
        ("substringof('a:b', Description) or DeletionMark eq false", None),  # a row of any text may match
        ("not substringof('a:b', Description)", None),
        ("substringof(Description, 'a:b')", None),  # the field is the needle: nothing to look up
    ],
)
def test_filter_says_which_rows_an_index_may_pick_out(expression: str, narrowing: Any) -> None:
    assert parse_query({"$filter": expression}, FIELDS).narrowing == narrowing
