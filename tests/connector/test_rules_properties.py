"""Property tests (hypothesis) for the points arithmetic of connector.rules (DESIGN.md §3, issue 2 item 4).

For any program and any sale followed by any sequence of partial returns that together return everything:
points net to exactly zero, reversals and refunds never exceed what the sale posted (at every step), no posting
is zero; a spread of ``bonus_redeemed`` sums exactly to it within a kopeck of the proportional share of each
line; each rounding mode rounds as specified.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.model import Posting, Return, Sale
from connector.program import Program
from connector.rules import expected_postings, return_postings, round_points, sale_postings, spread_redeemed

FAST = settings(max_examples=200, deadline=None)
DAY = date(2026, 11, 20)
CATEGORIES = ("food", "promo", "tobacco")


def money(min_kopecks: int, max_kopecks: int) -> st.SearchStrategy[Decimal]:
    return st.integers(min_kopecks, max_kopecks).map(lambda k: Decimal(k).scaleb(-2))


def _cents(value: Decimal | int) -> str:
    return f"{Decimal(value).scaleb(-2):.2f}"


@st.composite
def programs(draw: st.DrawFn) -> Program:
    percent = money(0, 3000)  # 0 .. 30 %, to the hundredth
    spends = sorted(draw(st.sets(st.integers(0, 2_000_000), max_size=3)))
    promotions = [
        {
            "name": f"p{i}",
            "from": str(DAY + timedelta(days=start)),
            "to": str(DAY + timedelta(days=start + length)),
            "multiplier": str(draw(money(50, 300))),
        }
        for i, (start, length) in enumerate(
            draw(st.lists(st.tuples(st.integers(-3, 3), st.integers(0, 3)), max_size=3))
        )
    ]
    accrual = {
        "percent": str(draw(percent)),
        "tiers": [
            {"name": f"t{i}", "from_spend": _cents(spend), "percent": str(draw(percent))}
            for i, spend in enumerate(spends)
        ],
        "categories": {
            name: str(draw(percent | st.just(Decimal(0))))
            for name in draw(st.sets(st.sampled_from(CATEGORIES)))
        },
        "fixed_per_purchase": str(draw(money(0, 5000))),
        "min_purchase": str(draw(money(0, 50_000))),
        "promotions": promotions,
        "rounding": draw(st.sampled_from(["floor", "half_up", "none"])),
    }
    point_value = draw(st.sampled_from(["1.00", "0.50", "3", "0.01", "7.77"]) | money(1, 1000).map(str))
    return Program.model_validate({"name": "prop", "point_value": point_value, "accrual": accrual})


@st.composite
def sales(draw: st.DrawFn) -> Sale:
    count = draw(st.integers(1, 5))
    lines: list[dict[str, Any]] = []
    for no in range(1, count + 1):
        amount = draw(st.integers(0, 500_000))
        lines.append(
            {
                "line_no": no,
                "sku": draw(st.sampled_from(["X", "Y", "Z", None])),
                "category": draw(st.sampled_from([*CATEGORIES, None])),
                "quantity": "1.000",
                "price": _cents(amount),
                "amount": _cents(amount),
                "bonus_redeemed": "0.00",
                "_kopecks": amount,
            }
        )
    total = sum(item.pop("_kopecks") for item in lines)
    redeemed = draw(st.integers(0, total))
    if draw(st.booleans()):  # the source states the redemption per line
        per_line = [draw(st.integers(0, int(Decimal(item["amount"]) * 100))) for item in lines]
        for item, kopecks in zip(lines, per_line, strict=True):
            item["bonus_redeemed"] = _cents(kopecks)
        redeemed = sum(per_line)
    return Sale.model_validate(
        {
            "type": "sale",
            "ref": {"system": "evotor", "kind": "receipt", "id": "s"},
            "number": "1",
            "store": "store-1",
            "occurred_at": "2026-11-20T12:00:00+03:00",
            "business_date": str(DAY),
            "customer": {"phone": "+79161234567"},
            "lines": lines,
            "total": _cents(total),
            "bonus_redeemed": _cents(redeemed),
        }
    )


@st.composite
def full_returns(draw: st.DrawFn, sale: Sale) -> list[Return]:
    """1-4 returns that split every line at random cut points and together return all of it."""
    count = draw(st.integers(1, 4))
    parts: list[list[int]] = []
    for line in sale.lines:
        kopecks = int(line.amount * 100)
        cuts = sorted(draw(st.lists(st.integers(0, kopecks), min_size=count - 1, max_size=count - 1)))
        bounds = [0, *cuts, kopecks]
        parts.append([bounds[j + 1] - bounds[j] for j in range(count)])
    returns = []
    for j in range(count):
        lines = [
            {
                **line.model_dump(mode="json"),
                "amount": _cents(part[j]),
                "price": _cents(part[j]),
                "bonus_redeemed": "0",
            }
            for line, part in zip(sale.lines, parts, strict=True)
            if part[j]
        ]
        returns.append(_return(f"r{j}", lines))
    return returns


def _return(doc_id: str, lines: list[dict[str, Any]]) -> Return:
    return Return.model_validate(
        {
            "type": "return",
            "ref": {"system": "evotor", "kind": "receipt", "id": doc_id},
            "number": doc_id,
            "store": "store-1",
            "occurred_at": "2026-11-21T12:00:00+03:00",
            "business_date": "2026-11-21",
            "customer": None,
            "original": {"system": "evotor", "kind": "receipt", "id": "s"},
            "lines": lines,
            "total": _cents(sum(int(Decimal(item["amount"]) * 100) for item in lines)),
        }
    )


def _sum(postings: list[Posting], *kinds: str) -> Decimal:
    return sum((p.amount for p in postings if p.kind in kinds), Decimal(0))


@FAST
@given(data=st.data(), program=programs(), sale=sales(), spend=money(0, 3_000_000))
def test_a_fully_returned_sale_nets_to_zero_and_never_over_reverses(
    data: st.DataObject, program: Program, sale: Sale, spend: Decimal
) -> None:
    returns = data.draw(full_returns(sale))
    posted = sale_postings(program, sale, cumulative_spend=spend)
    accrued, redeemed = _sum(posted, "accrual"), -_sum(posted, "redemption")
    reversed_, refunded = Decimal(0), Decimal(0)
    for i, each in enumerate(returns):
        step = return_postings(
            program, each, original=sale, earlier_returns=returns[:i], cumulative_spend_at_sale=spend
        )
        assert [p.kind for p in step] == sorted(
            (p.kind for p in step), key=["accrual_reversal", "redemption_refund"].index
        )
        reversed_ -= _sum(step, "accrual_reversal")
        refunded += _sum(step, "redemption_refund")
        assert Decimal(0) <= reversed_ <= accrued  # cumulatively, at every step
        assert Decimal(0) <= refunded <= redeemed
        posted += step
    assert (reversed_, refunded) == (accrued, redeemed)
    assert sum(p.amount for p in posted) == 0
    assert all(p.amount != 0 for p in posted)
    # The orchestrator over the whole list gives the same postings as one document at a time.
    assert expected_postings(program, [sale, *returns], cumulative_spend_before=spend) == posted


def _reference_points(program: Program, sale: Sale, spend: Decimal) -> tuple[Fraction, Fraction]:
    """Σ base_i and Σ p_i straight from the words of DESIGN §3, as a second opinion on the engine."""
    accrual = program.accrual
    reached = [tier.percent for tier in accrual.tiers if tier.from_spend <= spend]
    percent = reached[-1] if reached else accrual.percent
    running = [p.multiplier for p in accrual.promotions if p.from_ <= sale.business_date <= p.to]
    multiplier = Fraction(max(running, default=Decimal(1)))
    shares = (
        [line.bonus_redeemed for line in sale.lines]
        if any(line.bonus_redeemed for line in sale.lines)
        else spread_redeemed([line.amount for line in sale.lines], sale.bonus_redeemed)
    )
    bases, points = Fraction(0), Fraction(0)
    for line, share in zip(sale.lines, shares, strict=True):
        rate = Fraction(accrual.categories.get(line.category or "", percent)) * multiplier
        bases += Fraction(line.amount - share)
        points += Fraction(line.amount - share) * rate / 100 / Fraction(program.point_value)
    return bases, points


@FAST
@given(program=programs(), sale=sales(), spend=money(0, 3_000_000))
def test_sale_postings_follow_the_formula(program: Program, sale: Sale, spend: Decimal) -> None:
    bases, points = _reference_points(program, sale, spend)
    expected: list[tuple[str, Decimal]] = []
    redemption = round_points(Fraction(sale.bonus_redeemed) / Fraction(program.point_value), "none")
    if redemption:
        expected.append(("redemption", -redemption))
    accrual = round_points(points, program.accrual.rounding) + program.accrual.fixed_per_purchase
    if bases >= Fraction(program.accrual.min_purchase) and accrual:
        expected.append(("accrual", accrual))
    postings = sale_postings(program, sale, cumulative_spend=spend)
    assert [(p.kind, p.amount) for p in postings] == expected


@FAST
@given(amounts=st.lists(money(0, 1_000_000), min_size=1, max_size=8), data=st.data())
def test_spread_sums_exactly_within_a_kopeck_of_proportional(
    amounts: list[Decimal], data: st.DataObject
) -> None:
    total = sum(amounts, Decimal(0))
    redeemed = data.draw(money(0, int(total * 100)))
    shares = spread_redeemed(amounts, redeemed)
    assert sum(shares, Decimal(0)) == redeemed
    for share, amount in zip(shares, amounts, strict=True):
        exact = Fraction(redeemed) * Fraction(amount) / Fraction(total) if total else Fraction(0)
        assert abs(Fraction(share) - exact) < Fraction(1, 100)
        assert Decimal(0) <= share <= amount
        assert share == share.quantize(Decimal("0.01"))


exact_points = st.fractions(min_value=0, max_value=100_000, max_denominator=10_000)


@FAST
@given(value=exact_points)
def test_floor_rounds_down_to_whole_points(value: Fraction) -> None:
    rounded = Fraction(round_points(value, "floor"))
    assert rounded.denominator == 1
    assert rounded <= value < rounded + 1


@FAST
@given(value=exact_points)
def test_half_up_rounds_to_the_nearest_whole_point_halves_up(value: Fraction) -> None:
    rounded = Fraction(round_points(value, "half_up"))
    assert rounded.denominator == 1
    assert value - Fraction(1, 2) < rounded <= value + Fraction(1, 2)


@FAST
@given(value=exact_points)
def test_none_keeps_two_decimals_half_up(value: Fraction) -> None:
    rounded = round_points(value, "none")
    assert rounded == rounded.quantize(Decimal("0.01"))
    assert value - Fraction(1, 200) < Fraction(rounded) <= value + Fraction(1, 200)
