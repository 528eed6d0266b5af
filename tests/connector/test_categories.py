"""Receipt lines get their category from accounting's item catalog (the rules exclude tobacco by category)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from connector.categories import sku_categories, with_categories
from connector.model import DocRef, Line, Sale


def _sale(*lines: Line) -> Sale:
    return Sale(
        ref=DocRef(system="evotor", kind="receipt", id="r-1"),
        number="1",
        store="s-1",
        occurred_at=datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
        business_date=date(2026, 11, 2),
        lines=lines,
        total=sum((line.amount for line in lines), Decimal(0)),
    )


def _line(no: int, sku: str | None, category: str | None = None) -> Line:
    return Line(
        line_no=no, sku=sku, category=category, quantity=Decimal(1), price=Decimal(100), amount=Decimal(100)
    )


def test_catalogs_give_sku_categories_first_one_wins() -> None:
    catalogs = [
        {
            "products": {
                "g-1": {"sku": "CIG", "category": "tobacco"},
                "g-2": {"sku": "MILK", "category": None},
            }
        },
        {"products": {"x": {"sku": "CIG", "category": "other"}, "y": {"sku": "BREAD", "category": "bakery"}}},
        {},
    ]
    assert sku_categories(catalogs) == {"CIG": "tobacco", "BREAD": "bakery"}


def test_lines_without_category_get_their_skus() -> None:
    sale = _sale(_line(1, "CIG"), _line(2, "MILK", "dairy"), _line(3, None), _line(4, "UNKNOWN"))
    filled = with_categories(sale, {"CIG": "tobacco", "MILK": "promo"})
    assert [line.category for line in filled.lines] == ["tobacco", "dairy", None, None]


def test_a_document_needing_nothing_is_returned_as_is() -> None:
    sale = _sale(_line(1, "MILK", "dairy"))
    assert with_categories(sale, {"MILK": "promo"}) is sale
