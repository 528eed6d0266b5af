"""Worked examples of the loyalty rules (DESIGN.md §3), each computed by hand in a comment."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connector.errors import InputError
from connector.model import DocRef, Posting, Return, Sale
from connector.program import Program
from connector.rules import (
    evaluate,
    expected_postings,
    promotion_multiplier,
    redemption_violations,
    return_postings,
    round_points,
    sale_postings,
    spread_redeemed,
    tier_percent,
)

PHONE = "+79161234567"
D = Decimal


def make_program(**accrual: Any) -> Program:
    """The DESIGN §3 program without promotions or min_purchase unless a test asks for them."""
    settings: dict[str, Any] = {
        "percent": "5",
        "tiers": [
            {"name": "Silver", "from_spend": "30000", "percent": "7"},
            {"name": "Gold", "from_spend": "100000", "percent": "10"},
        ],
        "categories": {"tobacco": "0", "alcohol": "0", "promo": "2"},
        "rounding": "floor",
    }
    settings.update(accrual)
    return Program.model_validate(
        {
            "name": "Бонусы",
            "timezone": "Europe/Moscow",
            "accrual": settings,
            "activation_delay_days": 14,
            "expiry_days": 365,
            "redemption": {
                "max_share_percent": "30",
                "min_points": "100",
                "excluded_categories": ["tobacco"],
            },
        }
    )


def line(
    no: int, amount: str, *, sku: str | None = None, category: str | None = None, redeemed: str = "0"
) -> dict:
    return {
        "line_no": no,
        "sku": sku if sku is not None else f"sku-{no}",
        "category": category,
        "quantity": "1.000",
        "price": amount,
        "amount": amount,
        "bonus_redeemed": redeemed,
    }


def _receipt(doc_id: str, lines: list[dict], *, day: str, phone: str | None, **extra: Any) -> dict:
    total = sum((D(item["amount"]) for item in lines), D(0))
    return {
        "ref": {"system": "evotor", "kind": "receipt", "id": doc_id},
        "number": extra.pop("number", doc_id),
        "store": "store-1",
        "occurred_at": extra.pop("occurred_at", f"{day}T12:00:00+03:00"),
        "business_date": day,
        "customer": {"phone": phone} if phone else None,
        "lines": lines,
        "total": str(total),
        **extra,
    }


def sale(doc_id: str, *lines: dict, day: str = "2026-11-20", phone: str | None = PHONE, **extra: Any) -> Sale:
    return Sale.model_validate(
        {"type": "sale", **_receipt(doc_id, list(lines), day=day, phone=phone, **extra)}
    )


def ret(
    doc_id: str,
    *lines: dict,
    of: str | None,
    day: str = "2026-11-21",
    phone: str | None = PHONE,
    **extra: Any,
) -> Return:
    original = {"system": "evotor", "kind": "receipt", "id": of} if of else None
    data = _receipt(doc_id, list(lines), day=day, phone=phone, original=original, **extra)
    return Return.model_validate({"type": "return", **data})


def amounts(postings: list[Posting]) -> list[tuple[str, Decimal]]:
    return [(posting.kind, posting.amount) for posting in postings]


# --- rounding and spreading -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "mode", "expected"),
    [
        ("43.75", "floor", "43.00"),
        ("43.75", "half_up", "44.00"),
        ("43.50", "half_up", "44.00"),  # a half goes up
        ("43.49", "half_up", "43.00"),
        ("43.75", "none", "43.75"),
        ("12.345", "none", "12.35"),  # 0.01 half-up
        ("12.344", "none", "12.34"),
    ],
)
def test_round_points_each_mode(value: str, mode: str, expected: str) -> None:
    assert round_points(D(value), mode) == D(expected)  # type: ignore[arg-type]


def test_spread_largest_remainder_ties_to_the_earlier_line() -> None:
    # 1.00 over three equal lines: 33 kopecks each, 1 kopeck left, equal remainders -> the first line.
    assert spread_redeemed([D("1.00")] * 3, D("1.00")) == [D("0.34"), D("0.33"), D("0.33")]
    # 100 over 1000 and 333.33: exact shares 75.0001875 and 24.9998125 -> floors 75.00 + 24.99, the one kopeck
    # left goes to the larger remainder (line 2: .98125 > .01875).
    assert spread_redeemed([D("1000.00"), D("333.33")], D("100.00")) == [D("75.00"), D("25.00")]


def test_spread_refuses_more_than_the_lines_are_worth() -> None:
    with pytest.raises(ValueError, match="cannot spread"):
        spread_redeemed([D("10.00")], D("10.01"))


# --- accrual --------------------------------------------------------------------------------------------------


def test_tiers_follow_cumulative_spend() -> None:
    program = make_program()
    assert tier_percent(program, D("29999.99")) == D("5")  # below Silver: accrual.percent
    assert tier_percent(program, D("30000")) == D("7")  # from_spend <= spend: Silver
    assert tier_percent(program, D("100000")) == D("10")  # the highest reached: Gold
    one_thousand = sale("s", line(1, "1000.00"))
    # 1000 · 7 / 100 = 70
    assert amounts(sale_postings(program, one_thousand, cumulative_spend=D("30000"))) == [
        ("accrual", D("70.00"))
    ]


def test_tier_spend_counts_earlier_sales_minus_earlier_returns() -> None:
    program = make_program()
    documents = [
        sale("s1", line(1, "1000.00")),  # spend 29500 -> 5%: 50; spend becomes 30500
        ret("r1", line(1, "600.00"), of="s1"),  # 0.6 · 50 = 30 reversed; spend 30500 - 600 = 29900
        sale("s2", line(1, "1000.00"), day="2026-11-22"),  # 29900 < 30000 -> still 5%: 50; spend 30900
        sale("s3", line(1, "1000.00"), day="2026-11-23"),  # 30900 >= 30000 -> Silver 7%: 70
    ]
    postings = expected_postings(program, documents, cumulative_spend_before=D("29500"))
    assert amounts(postings) == [
        ("accrual", D("50.00")),
        ("accrual_reversal", D("-30.00")),
        ("accrual", D("50.00")),
        ("accrual", D("70.00")),
    ]


def test_tier_spend_is_per_customer() -> None:
    program = make_program()
    documents = [
        sale("s1", line(1, "40000.00")),  # customer A at 0 -> 5%: 2000
        sale("s2", line(1, "1000.00"), phone="+79161111111"),  # customer B at 0 -> 5%: 50
        sale("s3", line(1, "1000.00")),  # customer A at 40000 -> Silver 7%: 70
    ]
    assert [p.amount for p in expected_postings(program, documents)] == [D("2000.00"), D("50.00"), D("70.00")]
    assert [p.account for p in expected_postings(program, documents)] == [PHONE, "+79161111111", PHONE]


def test_category_overrides_and_zero_excludes() -> None:
    program = make_program()
    receipt = sale(
        "s",
        line(1, "1000.00", category="dairy"),  # no override: 5% -> 50
        line(2, "500.00", category="promo"),  # override 2% -> 10
        line(3, "300.00", category="tobacco"),  # "0" excludes -> 0
        line(4, "200.00", category="alcohol"),  # "0" excludes -> 0
    )
    # Σ p = 60; at Gold spend the override still wins for promo: 1000·10% + 500·2% = 110
    assert amounts(sale_postings(program, receipt, cumulative_spend=D(0))) == [("accrual", D("60.00"))]
    assert amounts(sale_postings(program, receipt, cumulative_spend=D("100000"))) == [
        ("accrual", D("110.00"))
    ]


def test_fully_excluded_sale_earns_nothing_unless_there_is_a_fixed_part() -> None:
    tobacco = sale("s", line(1, "1000.00", category="tobacco"))
    assert (
        sale_postings(make_program(), tobacco, cumulative_spend=D(0)) == []
    )  # 0 points: never a zero posting
    # Σ p = 0; the purchase qualifies (1000 >= min_purchase 0), so the fixed part alone: 0 + 10 = 10
    fixed = make_program(fixed_per_purchase="10")
    assert amounts(sale_postings(fixed, tobacco, cumulative_spend=D(0))) == [("accrual", D("10.00"))]


def test_overlapping_promotions_take_the_largest_multiplier_with_inclusive_dates() -> None:
    program = make_program(
        promotions=[
            {"name": "Чёрная пятница", "from": "2026-11-27", "to": "2026-11-30", "multiplier": "2"},
            {"name": "Киберпонедельник", "from": "2026-11-30", "to": "2026-12-02", "multiplier": "3"},
        ]
    )
    expected = {
        "2026-11-26": "50.00",  # no promotion: 1000 · 5% = 50
        "2026-11-27": "100.00",  # first day of the first (inclusive): · 2
        "2026-11-30": "150.00",  # both run: the largest, · 3
        "2026-12-02": "150.00",  # last day of the second (inclusive): · 3
        "2026-12-03": "50.00",  # over
    }
    for day, points in expected.items():
        postings = sale_postings(program, sale("s", line(1, "1000.00"), day=day), cumulative_spend=D(0))
        assert amounts(postings) == [("accrual", D(points))], day
    assert promotion_multiplier(program, date(2026, 11, 30)) == D("3")


def test_promotion_multiplies_a_category_override() -> None:
    program = make_program(
        promotions=[{"name": "x2", "from": "2026-11-20", "to": "2026-11-20", "multiplier": "2"}]
    )
    # promo override 2% · 2 = 4%: 1000 -> 40; tobacco 0 · 2 = 0
    receipt = sale("s", line(1, "1000.00", category="promo"), line(2, "500.00", category="tobacco"))
    assert amounts(sale_postings(program, receipt, cumulative_spend=D(0))) == [("accrual", D("40.00"))]


def test_min_purchase_counts_money_paid_after_points() -> None:
    program = make_program(min_purchase="100")
    # 100 paid >= 100: 100 · 5% = 5
    assert amounts(sale_postings(program, sale("a", line(1, "100.00")), cumulative_spend=D(0))) == [
        ("accrual", D("5.00"))
    ]
    assert sale_postings(program, sale("b", line(1, "99.99")), cumulative_spend=D(0)) == []
    # 120 with 30 paid in points: base 90 < 100 -> no accrual, but the redemption of 30 is still posted
    paid_with_points = sale("c", line(1, "120.00"), bonus_redeemed="30.00")
    assert amounts(sale_postings(program, paid_with_points, cumulative_spend=D(0))) == [
        ("redemption", D("-30.00"))
    ]


def test_fixed_per_purchase_is_added_once_and_only_to_a_qualifying_purchase() -> None:
    program = make_program(fixed_per_purchase="10", min_purchase="100")
    # 999 + 1 over two lines: 49.95 + 0.05 = 50 -> floor 50, + 10 = 60
    receipt = sale("s", line(1, "999.00"), line(2, "1.00"))
    assert amounts(sale_postings(program, receipt, cumulative_spend=D(0))) == [("accrual", D("60.00"))]
    assert sale_postings(program, sale("small", line(1, "50.00")), cumulative_spend=D(0)) == []


def test_rounding_applies_to_the_sum_of_unrounded_line_points() -> None:
    # Lines of 19.90 at 5% give 0.995 each; three of them 2.985 points
    receipt = sale("s", line(1, "19.90"), line(2, "19.90"), line(3, "19.90"))
    expected = {"floor": "2.00", "half_up": "3.00", "none": "2.99"}  # 2.985 -> 2 | 3 | 2.99 (half-up at 0.01)
    for mode, points in expected.items():
        program = make_program(rounding=mode)
        assert amounts(sale_postings(program, receipt, cumulative_spend=D(0))) == [("accrual", D(points))], (
            mode
        )


def test_point_value_divides_accrual_and_redemption() -> None:
    program = make_program().model_copy(update={"point_value": D("3")})
    receipt = sale("s", line(1, "1000.00"), bonus_redeemed="100.00")
    # redemption 100 / 3 = 33.333… -> exact to 0.01: -33.33;
    # accrual (1000 - 100) · 5% / 3 = 15 -> 15
    assert amounts(sale_postings(program, receipt, cumulative_spend=D(0))) == [
        ("redemption", D("-33.33")),
        ("accrual", D("15.00")),
    ]


def test_sale_postings_shape_redemption_first() -> None:
    program = make_program()
    receipt = sale(
        "s-1", line(1, "1000.00"), bonus_redeemed="150.00", occurred_at="2026-11-20T23:30:00+03:00"
    )
    redemption, accrual = sale_postings(program, receipt, cumulative_spend=D(0))
    # redemption -150 active at the sale; accrual (1000 - 150) · 5% = 42.5 -> floor 42, pending
    assert redemption.key == "evotor:s-1:redemption"
    assert (redemption.amount, redemption.status, redemption.available_at) == (D("-150.00"), "active", None)
    assert redemption.occurred_at == receipt.occurred_at
    assert accrual.key == "evotor:s-1:accrual"
    assert (accrual.amount, accrual.status, accrual.account) == (D("42.00"), "pending", PHONE)
    assert accrual.document == DocRef(system="evotor", kind="receipt", id="s-1")
    assert accrual.ref is None


def test_available_and_expires_at_midnight_program_time_in_a_zone_without_dst() -> None:
    program = make_program()  # Europe/Moscow: UTC+3 all year since 2014
    receipt = sale("s", line(1, "1000.00"), occurred_at="2026-11-20T23:30:00+03:00")
    (accrual,) = sale_postings(program, receipt, cumulative_spend=D(0))
    # business date 2026-11-20 + 14 days = 2026-12-04 00:00 MSK; + 365 days = 2027-12-04 00:00 MSK
    assert accrual.available_at is not None
    assert accrual.expires_at is not None
    assert accrual.available_at.isoformat() == "2026-12-04T00:00:00+03:00"
    assert accrual.expires_at.isoformat() == "2027-12-04T00:00:00+03:00"
    assert accrual.expires_at - accrual.available_at == timedelta(days=365)


def test_available_at_follows_business_date_not_the_utc_day() -> None:
    program = make_program().model_copy(update={"timezone": "Asia/Vladivostok", "expiry_days": 0})
    # 2026-11-20 15:30 UTC is already 2026-11-21 01:30 in Vladivostok (UTC+10): the store's business date is 21st
    receipt = sale("s", line(1, "1000.00"), day="2026-11-21", occurred_at="2026-11-20T15:30:00+00:00")
    (accrual,) = sale_postings(program, receipt, cumulative_spend=D(0))
    assert accrual.available_at == datetime.fromisoformat("2026-12-05T00:00:00+10:00")
    assert accrual.available_at.utcoffset() == timedelta(hours=10)
    assert accrual.expires_at is None  # expiry_days 0: never
    assert accrual.occurred_at.isoformat() == "2026-11-20T15:30:00+00:00"  # the source offset is kept


# --- who earns ------------------------------------------------------------------------------------------------


def test_anonymous_sales_and_returns_post_nothing() -> None:
    program = make_program()
    anonymous = sale("s", line(1, "1000.00"), phone=None, bonus_redeemed="100.00")
    documents = [anonymous, ret("r", line(1, "1000.00"), of="s", phone=PHONE)]
    outcome = evaluate(program, documents)
    assert outcome.postings == ()  # the return goes to the sale's account, and the sale has none
    assert outcome.returns_without_sale == ()  # its original is known, just anonymous


def test_card_identifies_a_customer_without_phone() -> None:
    receipt = Sale.model_validate(
        {**sale("s", line(1, "1000.00")).model_dump(), "customer": {"card": "2000000012345"}}
    )
    (accrual,) = sale_postings(make_program(), receipt, cumulative_spend=D(0))
    assert accrual.account == "card:2000000012345"
    both = Sale.model_validate(
        {**receipt.model_dump(), "customer": {"phone": PHONE, "card": "2000000012345"}}
    )
    assert [p.account for p in sale_postings(make_program(), both, cumulative_spend=D(0))] == [PHONE]
    # An e-mail alone identifies no ledger account: the sale counts as anonymous
    email_only = Sale.model_validate({**receipt.model_dump(), "customer": {"email": "a@example.com"}})
    assert sale_postings(make_program(), email_only, cumulative_spend=D(0)) == []


def test_drafts_and_deleted_documents_count_for_nothing() -> None:
    program = make_program()
    documents = [
        sale("draft", line(1, "1000.00"), status="draft"),
        sale("deleted", line(1, "1000.00"), status="deleted"),
        ret("r", line(1, "1000.00"), of="draft"),
    ]
    outcome = evaluate(program, documents)
    assert outcome.postings == ()
    assert [r.ref.id for r in outcome.returns_without_sale] == ["r"]


# --- returns --------------------------------------------------------------------------------------------------


def test_return_without_a_known_original_posts_nothing_and_is_reported() -> None:
    program = make_program()
    documents = [
        sale("s", line(1, "1000.00")),
        ret("no-link", line(1, "100.00"), of=None),
        ret("unknown", line(1, "100.00"), of="never-seen"),
        ret("before", line(1, "100.00"), of="later"),
        sale("later", line(1, "1000.00"), day="2026-11-22"),
    ]
    outcome = evaluate(program, documents)
    assert amounts(list(outcome.postings)) == [("accrual", D("50.00")), ("accrual", D("50.00"))]
    assert [r.ref.id for r in outcome.returns_without_sale] == ["no-link", "unknown", "before"]


def test_original_number_is_a_fallback_only_when_unambiguous() -> None:
    program = make_program()
    documents = [
        sale("s1", line(1, "1000.00"), number="101", register="till-1"),
        ret("r1", line(1, "1000.00"), of=None, original_number="101"),  # one sale 101 in store-1: found
    ]
    # 1000 · 5% = 50 accrued, fully returned -> -50
    assert amounts(expected_postings(program, documents)) == [
        ("accrual", D("50.00")),
        ("accrual_reversal", D("-50.00")),
    ]
    ambiguous = [
        sale("s1", line(1, "1000.00"), number="101", register="till-1"),
        sale("s2", line(1, "1000.00"), number="101", register="till-2"),  # numbers restart per till and shift
        ret("r1", line(1, "1000.00"), of=None, original_number="101"),
        ret("r2", line(1, "1000.00"), of=None, original_number="101", register="till-2"),  # the till decides
    ]
    outcome = evaluate(program, ambiguous)
    assert [r.ref.id for r in outcome.returns_without_sale] == ["r1"]
    assert [(p.key, p.amount) for p in outcome.postings][-1] == ("evotor:r2:accrual_reversal", D("-50.00"))


def test_partial_then_full_return_nets_to_zero() -> None:
    program = make_program()
    original = sale("s", line(1, "1000.00", sku="A"), line(2, "333.33", sku="B"), bonus_redeemed="100.00")
    # spread 100 -> 75.00 / 25.00 (see the spread test); bases 925.00 / 308.33;
    # p = 46.25 + 15.4165 = 61.6665 -> floor 61; redemption -100
    first = ret("r1", line(1, "500.00", sku="A"), of="s")
    # half of A: reversal floor(0.5 · 46.25 = 23.125) = 23; refund floor(0.5 · 75 = 37.5) = 37
    second = ret("r2", line(1, "500.00", sku="A"), line(2, "333.33", sku="B"), of="s", day="2026-11-22")
    # everything is back: exactly what is left, 61 - 23 = 38 and 100 - 37 = 63
    postings = expected_postings(program, [original, first, second])
    assert amounts(postings) == [
        ("redemption", D("-100.00")),
        ("accrual", D("61.00")),
        ("accrual_reversal", D("-23.00")),
        ("redemption_refund", D("37.00")),
        ("accrual_reversal", D("-38.00")),
        ("redemption_refund", D("63.00")),
    ]
    assert sum(p.amount for p in postings) == 0
    assert [p.key for p in postings[2:4]] == ["evotor:r1:accrual_reversal", "evotor:r1:redemption_refund"]
    assert {(p.status, p.available_at, p.expires_at) for p in postings[2:]} == {("active", None, None)}
    assert postings[4].occurred_at == second.occurred_at


def test_fixed_part_comes_back_only_with_the_last_return() -> None:
    program = make_program(fixed_per_purchase="10")
    original = sale("s", line(1, "500.00", sku="A"), line(2, "500.00", sku="B"))  # 50 + 10 = 60
    first = ret("r1", line(1, "500.00", sku="A"), of="s")  # 0.5 of... line A: 25 (no fixed part)
    second = ret("r2", line(2, "500.00", sku="B"), of="s")  # last: 60 - 25 = 35 (fixed part included)
    assert [p.amount for p in expected_postings(program, [original, first, second])] == [
        D("60.00"),
        D("-25.00"),
        D("-35.00"),
    ]


def test_return_goes_to_the_original_sales_account_and_tier() -> None:
    program = make_program()
    original = sale("s", line(1, "1000.00"))
    stranger = ret("r", line(1, "1000.00"), of="s", phone="+79162222222")
    # The sale was accrued at Silver (spend 30000): 70; its full return reverses 70 on the sale's customer.
    (reversal,) = return_postings(
        program, stranger, original=original, earlier_returns=[], cumulative_spend_at_sale=D("30000")
    )
    assert (reversal.account, reversal.amount) == (PHONE, D("-70.00"))


def test_returned_lines_match_by_sku_spilling_to_the_next_line_with_it() -> None:
    program = make_program(rounding="none")
    original = sale("s", line(1, "100.00", sku="X"), line(2, "100.00", sku="X"), line(3, "800.00", sku="Y"))
    # p = 5 + 5 + 40 = 50. Returning 150 of X takes line 1 (100) and 50 of line 2: 5 + 0.5 · 5 = 7.5
    partial = ret("r", line(7, "150.00", sku="X"), of="s")
    assert amounts(expected_postings(program, [original, partial])) == [
        ("accrual", D("50.00")),
        ("accrual_reversal", D("-7.50")),
    ]


def test_line_no_is_the_fallback_when_skus_are_missing() -> None:
    program = make_program()
    original = Sale.model_validate(
        {
            **sale("s", line(1, "600.00"), line(2, "400.00")).model_dump(),
            "lines": [
                {**line(1, "600.00"), "sku": None},
                {**line(2, "400.00"), "sku": None},
            ],
        }
    )
    # Line 2 by line_no: 400 · 5% = 20 of the 50 accrued
    partial = ret("r", {**line(2, "400.00"), "sku": "ignored-by-the-sale"}, of="s")
    assert amounts(expected_postings(program, [original, partial]))[-1] == ("accrual_reversal", D("-20.00"))
    # A sku the sale has under another line_no never falls back to line_no
    wrong = ret("w", line(1, "400.00", sku="elsewhere"), of="z")
    assert (
        return_postings(
            program,
            wrong,
            original=sale("z", line(1, "400.00", sku="Q")),
            earlier_returns=[],
            cumulative_spend_at_sale=D(0),
        )
        == []
    )


def test_over_returning_is_capped_by_what_the_sale_posted() -> None:
    program = make_program(rounding="half_up")
    original = sale("s", line(1, "30.00", sku="A"), line(2, "30.00", sku="B"))
    # p = 1.5 + 1.5 = 3 -> 3. A return of A: round(1.5) = 2; a second return of A again takes nothing
    # (A is spent); B last: 3 - 2 = 1. Total reversed 3, never more.
    documents = [
        original,
        ret("r1", line(1, "30.00", sku="A"), of="s"),
        ret("r2", line(1, "30.00", sku="A"), of="s"),
        ret("r3", line(2, "30.00", sku="B"), of="s"),
        ret("r4", line(2, "30.00", sku="B"), of="s"),
    ]
    assert amounts(expected_postings(program, documents)) == [
        ("accrual", D("3.00")),
        ("accrual_reversal", D("-2.00")),
        ("accrual_reversal", D("-1.00")),
    ]


def test_incremental_calls_agree_with_the_whole_list() -> None:
    program = make_program(rounding="none")
    original = sale("s", line(1, "999.99", sku="A"), line(2, "0.01", sku="B"), bonus_redeemed="333.33")
    returns = [ret(f"r{i}", line(1, "333.33", sku="A"), of="s") for i in range(3)]
    whole = expected_postings(program, [original, *returns], cumulative_spend_before=D("30000"))
    one_by_one = sale_postings(program, original, cumulative_spend=D("30000"))
    for i, each in enumerate(returns):
        one_by_one += return_postings(
            program, each, original=original, earlier_returns=returns[:i], cumulative_spend_at_sale=D("30000")
        )
    assert one_by_one == whole


def test_the_same_document_twice_is_an_input_error() -> None:
    with pytest.raises(
        InputError, match=r"documents\[1\]\.ref: evotor:receipt:s already appears as documents\[0\]"
    ):
        evaluate(make_program(), [sale("s", line(1, "1.00")), sale("s", line(1, "2.00"))])


# --- redemption checks ----------------------------------------------------------------------------------------


def test_redemption_within_limits_is_fine() -> None:
    # 300 of 1000 = exactly 30%, 300 points >= 100, nothing on tobacco
    receipt = sale("s", line(1, "1000.00"), bonus_redeemed="300.00")
    assert redemption_violations(make_program(), receipt) == []
    assert redemption_violations(make_program(), sale("n", line(1, "10.00"))) == []  # nothing redeemed


def test_redemption_over_share_and_under_minimum() -> None:
    over = sale("s", line(1, "1000.00"), bonus_redeemed="300.01")
    assert redemption_violations(make_program(), over) == [
        "300.01 paid with points is over 30% of total 1000.00 (at most 300.00)"
    ]
    few = sale("f", line(1, "1000.00"), bonus_redeemed="99.99")
    assert redemption_violations(make_program(), few) == [
        "99.99 points redeemed, fewer than the minimum of 100"
    ]


def test_redemption_on_excluded_categories() -> None:
    program = make_program()
    by_line = sale(
        "s",
        line(1, "1000.00", category="dairy", redeemed="150.00"),
        line(2, "500.00", category="tobacco", redeemed="10.00"),
        bonus_redeemed="160.00",
    )
    assert redemption_violations(program, by_line) == [
        "line 2 (tobacco) paid 10.00 with points; its category is excluded from redemption"
    ]
    # Receipt level only: 250 fits in the 1000 of dairy, so it is not a violation; 1100 would not fit
    fits = sale(
        "a",
        line(1, "1000.00", category="dairy"),
        line(2, "3000.00", category="tobacco"),
        bonus_redeemed="250.00",
    )
    assert redemption_violations(program, fits) == []
    spills = sale(
        "b",
        line(1, "1000.00", category="dairy"),
        line(2, "3000.00", category="tobacco"),
        bonus_redeemed="1100.00",
    )
    assert redemption_violations(program, spills) == [
        "1100.00 paid with points exceeds 1000.00 of lines outside the excluded categories (tobacco)"
    ]
