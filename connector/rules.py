"""Loyalty rules: the postings a program expects for sales and returns (DESIGN.md §3).

Pure functions over canonical documents, shaped for two callers:

- ``rules check`` and reconciliation hand over a whole ordered list: :func:`evaluate` / :func:`expected_postings`
  track each customer's cumulative spend and resolve every return to its original sale;
- the sync engine handles one document at a time: :func:`sale_postings` for a sale, :func:`return_postings` for a
  return, given the original sale and its earlier returns read from the journal. A return's postings are
  recomputed from the sale and its earlier returns, so the same inputs always give the same postings.

Arithmetic is exact: money is handled in whole kopecks and unrounded points as :class:`~fractions.Fraction`, so a
``point_value`` of 3 or a third of a line loses nothing; a value is rounded once, where §3 says, into a
:class:`~decimal.Decimal` with two places.

Where §3 is silent or ambiguous, this module decides (and the tests pin it down):

- Only ``posted`` documents count: drafts and deleted documents earn, redeem, reverse and spend nothing, and are
  never the original of a return.
- A promotion multiplies the category override too (``rate_i`` = override or tier percent, times the multiplier).
- ``min_purchase`` compares Σ ``base_i`` over all lines, excluded categories included (it is "money paid");
  ``fixed_per_purchase`` is added whenever the purchase qualifies, even if every line is excluded.
- ``cumulative_spend_before`` is the spend before the list of every customer account in it.
- A return lowers the spend of its original sale's account; a return without a known original lowers the spend of
  its own customer (the money went back to them all the same).
- A return's original is the earlier posted sale with the ``DocRef`` in ``original`` (system, kind and id). Only
  when ``original`` is null, ``original_number`` is matched against the ``number`` of earlier posted sales of the
  same system and store (and register, when both name one); receipt numbers restart per shift, so two candidates
  mean "unknown", never a guess.
- Line matching: a returned line goes to the original lines with its ``sku``, in order; what exceeds the first
  line's unreturned amount goes on to the next line with that ``sku`` rather than being lost. ``line_no`` is the
  fallback only where skus cannot contradict each other: the returned line has no ``sku``, or no original line has
  it and the original line with that ``line_no`` has none. A returned line that matches nothing takes nothing.
- Partial refunds are rounded like reversals (the program's rounding, as §3 says); the final return takes the exact
  remainder, which may carry the cents of an exact redemption.
- ``expires_at`` is ``expiry_days`` calendar days after ``available_at``, at 00:00 program time as well; in a zone
  without daylight saving this is exactly ``available_at + expiry_days × 24 h``.
- :func:`redemption_violations`: when lines state their own ``bonus_redeemed``, any point spent on an excluded
  line is reported; when only the receipt states it, it is reported only if it exceeds the amount of the lines
  outside excluded categories (the spread is our assumption, not the till's).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction

from connector.errors import InputError
from connector.model import DocRef, Line, Posting, PostingKind, Return, Sale
from connector.program import Program, Rounding

__all__ = [
    "Evaluation",
    "evaluate",
    "expected_postings",
    "half_up",
    "points_cents",
    "promotion_multiplier",
    "redemption_violations",
    "return_postings",
    "round_points",
    "sale_postings",
    "spread_redeemed",
    "tier_percent",
]

_HALF = Fraction(1, 2)


def _half_up(value: Fraction) -> int:
    """Nearest integer, halves away from zero."""
    magnitude = math.floor(abs(value) + _HALF)
    return magnitude if value >= 0 else -magnitude


# Rounding mode -> unrounded points to whole cents of a point.
_TO_CENTS: dict[str, Callable[[Fraction], int]] = {
    "floor": lambda points: math.floor(points) * 100,
    "half_up": lambda points: _half_up(points) * 100,
    "none": lambda points: _half_up(points * 100),
}


def points_cents(value: Fraction, rounding: Rounding) -> int:
    """Unrounded points → cents of a point under the program's rounding (``floor``/``half_up``: whole points).

    Example:
        >>> points_cents(Fraction(4375, 100), "floor"), points_cents(Fraction(4375, 100), "none")
        (4300, 4375)
    """
    return _TO_CENTS[rounding](value)


def half_up(value: Fraction) -> int:
    """Nearest integer, halves away from zero (exact: no binary floating point)."""
    return _half_up(value)


def _from_cents(cents: int) -> Decimal:
    return Decimal(f"{cents}E-2")  # built from text: exact whatever the context precision


def _kopecks(amount: Decimal) -> int:
    cents = Fraction(amount) * 100
    if cents.denominator != 1:
        raise ValueError(f"{amount} has more than 2 decimal places")
    return int(cents)


def round_points(value: Decimal | Fraction, rounding: Rounding) -> Decimal:
    """Round points as the program says: ``floor``/``half_up`` to whole points, ``none`` to 0.01 half-up.

    Example:
        >>> round_points(Decimal("12.5"), "half_up"), round_points(Decimal("12.345"), "none")
        (Decimal('13.00'), Decimal('12.35'))
    """
    return _from_cents(_TO_CENTS[rounding](Fraction(value)))


def spread_redeemed(amounts: Sequence[Decimal], redeemed: Decimal) -> list[Decimal]:
    """Spread a receipt-level ``bonus_redeemed`` over lines in proportion to their amounts.

    Largest remainder to the kopeck, ties to the earlier line; the shares sum exactly to ``redeemed`` and none
    exceeds its line.

    Raises:
        ValueError: a negative amount, ``redeemed`` below zero or above the sum of amounts, or more than two
            decimal places.

    Example:
        >>> spread_redeemed([Decimal("1.00"), Decimal("1.00"), Decimal("1.00")], Decimal("1.00"))
        [Decimal('0.34'), Decimal('0.33'), Decimal('0.33')]
    """
    weights = [_kopecks(amount) for amount in amounts]
    to_spread, total = _kopecks(redeemed), sum(weights)
    if any(weight < 0 for weight in weights) or not 0 <= to_spread <= total:
        raise ValueError(f"cannot spread {redeemed} over lines worth {_from_cents(total)}")
    if total == 0:
        return [_from_cents(0) for _ in weights]
    shares = [divmod(to_spread * weight, total) for weight in weights]
    left = to_spread - sum(quotient for quotient, _ in shares)
    bumped = set(sorted(range(len(shares)), key=lambda i: (-shares[i][1], i))[:left])
    return [_from_cents(quotient + (i in bumped)) for i, (quotient, _) in enumerate(shares)]


def tier_percent(program: Program, cumulative_spend: Decimal) -> Decimal:
    """The percent of the highest tier whose ``from_spend`` ≤ ``cumulative_spend``, else ``accrual.percent``."""
    reached = [tier for tier in program.accrual.tiers if tier.from_spend <= cumulative_spend]
    return max(reached, key=lambda tier: tier.from_spend).percent if reached else program.accrual.percent


def promotion_multiplier(program: Program, business_date: date) -> Decimal:
    """The largest multiplier of the promotions whose dates (inclusive) contain ``business_date``, else 1."""
    running = (p.multiplier for p in program.accrual.promotions if p.from_ <= business_date <= p.to)
    return max(running, default=Decimal(1))


@dataclass(frozen=True)
class _SaleFigures:
    """What a sale earns and spends, line by line, before any return."""

    lines: tuple[Line, ...]
    amounts: tuple[int, ...]  # kopecks
    redeemed: tuple[int, ...]  # r_i, kopecks
    points: tuple[Fraction, ...]  # p_i, unrounded
    accrual: int  # cents of a point, as posted (0 when nothing is)
    redemption: int  # cents of a point, magnitude as posted


def _line_redeemed(sale: Sale) -> list[int]:
    if any(line.bonus_redeemed for line in sale.lines):
        return [_kopecks(line.bonus_redeemed) for line in sale.lines]
    spread = spread_redeemed([line.amount for line in sale.lines], sale.bonus_redeemed)
    return [_kopecks(share) for share in spread]


def _figures(program: Program, sale: Sale, cumulative_spend: Decimal) -> _SaleFigures:
    accrual, value = program.accrual, Fraction(program.point_value)
    base_rate = Fraction(tier_percent(program, cumulative_spend))
    multiplier = Fraction(promotion_multiplier(program, sale.business_date))
    amounts = tuple(_kopecks(line.amount) for line in sale.lines)
    redeemed = tuple(_line_redeemed(sale))
    points = []
    for line, amount, spent in zip(sale.lines, amounts, redeemed, strict=True):
        override = accrual.categories.get(line.category) if line.category is not None else None
        rate = (base_rate if override is None else Fraction(override)) * multiplier
        points.append(Fraction(amount - spent, 100) * rate / 100 / value)
    qualifies = Fraction(sum(amounts) - sum(redeemed), 100) >= Fraction(accrual.min_purchase)
    earned = _TO_CENTS[accrual.rounding](sum(points, Fraction(0))) + _kopecks(accrual.fixed_per_purchase)
    return _SaleFigures(
        lines=sale.lines,
        amounts=amounts,
        redeemed=redeemed,
        points=tuple(points),
        accrual=earned if qualifies else 0,
        redemption=_half_up(Fraction(sale.bonus_redeemed) * 100 / value),
    )


def _posting(
    document: Sale | Return,
    account: str,
    kind: PostingKind,
    cents: int,
    *,
    status: str = "active",
    available_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> Posting:
    return Posting.model_validate(
        {
            "key": f"{document.ref.system}:{document.ref.id}:{kind}",
            "account": account,
            "kind": kind,
            "amount": _from_cents(cents),
            "document": document.ref,
            "occurred_at": document.occurred_at,
            "available_at": available_at,
            "expires_at": expires_at,
            "status": status,
        }
    )


def _midnight(program: Program, day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=program.zone)


def _accrual(program: Program, sale: Sale, account: str, cents: int) -> Posting:
    available = sale.business_date + timedelta(days=program.activation_delay_days)
    expires = available + timedelta(days=program.expiry_days) if program.expiry_days else None
    return _posting(
        sale,
        account,
        "accrual",
        cents,
        status="pending",
        available_at=_midnight(program, available),
        expires_at=_midnight(program, expires) if expires else None,
    )


def sale_postings(program: Program, sale: Sale, *, cumulative_spend: Decimal) -> list[Posting]:
    """The redemption and then the accrual a sale expects (none for anonymous or unposted sales).

    Args:
        program: the loyalty program.
        sale: the sale.
        cumulative_spend: the customer's spend before this sale (earlier sales' ``total`` minus earlier returns'),
            which picks the tier.
    """
    account = sale.account
    if account is None or sale.status != "posted":
        return []
    figures = _figures(program, sale, cumulative_spend)
    postings = []
    if figures.redemption:
        postings.append(_posting(sale, account, "redemption", -figures.redemption))
    if figures.accrual:
        postings.append(_accrual(program, sale, account, figures.accrual))
    return postings


@dataclass
class _Remainder:
    """What is left of a sale after its returns: unreturned money per line, points reversed and refunded."""

    figures: _SaleFigures
    unreturned: list[int] = field(init=False)
    reversed: int = 0
    refunded: int = 0

    def __post_init__(self) -> None:
        self.unreturned = list(self.figures.amounts)

    def take_back(self, program: Program, ret: Return) -> tuple[int, int]:
        """Match the return's lines and return (reversal, refund) in cents of a point, both ≥ 0."""
        taken = [0] * len(self.unreturned)
        for line in ret.lines:
            self._match(line, taken)
        figures, rounding = self.figures, program.accrual.rounding
        accrual_left, redemption_left = figures.accrual - self.reversed, figures.redemption - self.refunded
        if all(amount == 0 for amount in self.unreturned):
            # Fully returned: take exactly what is left, so the sale nets to zero whatever the rounding.
            reversal, refund = accrual_left, redemption_left
        else:
            shares = [
                Fraction(t, a) if t else Fraction(0) for t, a in zip(taken, figures.amounts, strict=True)
            ]
            earned = sum((f * p for f, p in zip(shares, figures.points, strict=True)), Fraction(0))
            spent = sum((f * r for f, r in zip(shares, figures.redeemed, strict=True)), Fraction(0))
            reversal = min(_TO_CENTS[rounding](earned), accrual_left)
            refund = min(_TO_CENTS[rounding](spent / 100 / Fraction(program.point_value)), redemption_left)
        self.reversed += reversal
        self.refunded += refund
        return reversal, refund

    def _match(self, line: Line, taken: list[int]) -> None:
        remaining = _kopecks(line.amount)
        for i in self._candidates(line):
            take = min(remaining, self.unreturned[i])
            self.unreturned[i] -= take
            taken[i] += take
            remaining -= take

    def _candidates(self, line: Line) -> list[int]:
        lines = self.figures.lines
        if line.sku is not None:
            by_sku = [i for i, original in enumerate(lines) if original.sku == line.sku]
            if by_sku:
                return by_sku
        return [
            i
            for i, original in enumerate(lines)
            if original.line_no == line.line_no and (original.sku is None or line.sku is None)
        ]


def return_postings(
    program: Program,
    ret: Return,
    *,
    original: Sale,
    earlier_returns: Sequence[Return],
    cumulative_spend_at_sale: Decimal,
) -> list[Posting]:
    """The accrual reversal and then the redemption refund a return expects, on its original sale's account.

    Args:
        program: the loyalty program.
        ret: the return.
        original: the sale it returns (resolved by the caller).
        earlier_returns: the returns of ``original`` that precede ``ret``, in order.
        cumulative_spend_at_sale: the spend that ``original`` was accrued at (its tier).
    """
    account = original.account
    if account is None or ret.status != "posted" or original.status != "posted":
        return []
    remainder = _Remainder(_figures(program, original, cumulative_spend_at_sale))
    for earlier in earlier_returns:
        if earlier.status == "posted":
            remainder.take_back(program, earlier)
    reversal, refund = remainder.take_back(program, ret)
    postings = []
    if reversal:
        postings.append(_posting(ret, account, "accrual_reversal", -reversal))
    if refund:
        postings.append(_posting(ret, account, "redemption_refund", refund))
    return postings


@dataclass(frozen=True)
class Evaluation:
    """The outcome of a list of documents: expected postings in document order, and the returns whose original
    sale is unknown (reconciliation reports them as ``return_without_sale``)."""

    postings: tuple[Posting, ...]
    returns_without_sale: tuple[Return, ...]


@dataclass
class _SaleRecord:
    sale: Sale
    spend_at_sale: Decimal
    returns: list[Return] = field(default_factory=list)


@dataclass
class _Walk:
    """State carried along an ordered list of documents."""

    program: Program
    spend_before: int  # kopecks
    spend: dict[str, int] = field(default_factory=dict)
    by_ref: dict[DocRef, _SaleRecord] = field(default_factory=dict)
    by_number: dict[tuple[str, str, str], list[_SaleRecord]] = field(default_factory=dict)
    postings: list[Posting] = field(default_factory=list)
    orphans: list[Return] = field(default_factory=list)

    def _spend_of(self, account: str) -> int:
        return self.spend.get(account, self.spend_before)

    def add_sale(self, sale: Sale) -> None:
        account = sale.account
        spend = _from_cents(self._spend_of(account) if account else self.spend_before)
        self.postings += sale_postings(self.program, sale, cumulative_spend=spend)
        record = _SaleRecord(sale, spend)
        self.by_ref[sale.ref] = record
        self.by_number.setdefault((sale.ref.system, sale.store, sale.number), []).append(record)
        if account:
            self.spend[account] = self._spend_of(account) + _kopecks(sale.total)

    def add_return(self, ret: Return) -> None:
        record = self._original(ret)
        if record is None:
            self.orphans.append(ret)
        else:
            self.postings += return_postings(
                self.program,
                ret,
                original=record.sale,
                earlier_returns=record.returns,
                cumulative_spend_at_sale=record.spend_at_sale,
            )
            record.returns.append(ret)
        account = record.sale.account if record else ret.account
        if account:
            self.spend[account] = self._spend_of(account) - _kopecks(ret.total)

    def _original(self, ret: Return) -> _SaleRecord | None:
        if ret.original is not None:
            return self.by_ref.get(ret.original)
        if ret.original_number is None:
            return None
        candidates = [
            record
            for record in self.by_number.get((ret.ref.system, ret.store, ret.original_number), [])
            if None in (ret.register_, record.sale.register_) or ret.register_ == record.sale.register_
        ]
        return candidates[0] if len(candidates) == 1 else None


def _check_unique(documents: Sequence[Sale | Return]) -> None:
    seen: dict[DocRef, int] = {}
    for index, document in enumerate(documents):
        if document.ref in seen:
            raise InputError(
                f"documents[{index}].ref: {document.ref} already appears as documents[{seen[document.ref]}]"
            )
        seen[document.ref] = index


def evaluate(
    program: Program, documents: Sequence[Sale | Return], *, cumulative_spend_before: Decimal = Decimal(0)
) -> Evaluation:
    """Expected postings for an ordered list of sales and returns, and the returns without a known sale.

    Args:
        program: the loyalty program.
        documents: sales and returns in the order they happened; each ``ref`` at most once.
        cumulative_spend_before: each customer's spend before the first document (for tiers).

    Raises:
        InputError: the same document (``ref``) appears twice.
    """
    _check_unique(documents)
    walk = _Walk(program, _kopecks(cumulative_spend_before))
    for document in documents:
        if document.status != "posted":
            continue
        if isinstance(document, Sale):
            walk.add_sale(document)
        else:
            walk.add_return(document)
    return Evaluation(tuple(walk.postings), tuple(walk.orphans))


def expected_postings(
    program: Program, documents: Sequence[Sale | Return], *, cumulative_spend_before: Decimal = Decimal(0)
) -> list[Posting]:
    """The postings the program expects for an ordered list of documents, in document order.

    Example:
        >>> expected_postings(program, [sale, full_return])  # doctest: +SKIP
        [redemption -30.00, accrual 12.00, accrual_reversal -12.00, redemption_refund 30.00]
    """
    return list(evaluate(program, documents, cumulative_spend_before=cumulative_spend_before).postings)


def redemption_violations(program: Program, sale: Sale) -> list[str]:
    """What breaks the program's redemption limits in a sale (``redemption_over_limit``); empty when fine."""
    if not sale.bonus_redeemed:
        return []
    limits, problems = program.redemption, []
    paid, total = Fraction(sale.bonus_redeemed), Fraction(sale.total)
    limit = total * Fraction(limits.max_share_percent) / 100
    if paid > limit:
        problems.append(
            f"{sale.bonus_redeemed} paid with points is over {limits.max_share_percent}% of total {sale.total} "
            f"(at most {_from_cents(math.floor(limit * 100))})"
        )
    points = _from_cents(_half_up(paid * 100 / Fraction(program.point_value)))
    if points < limits.min_points:
        problems.append(f"{points} points redeemed, fewer than the minimum of {limits.min_points}")
    return problems + _excluded_redemptions(program, sale)


def _excluded_redemptions(program: Program, sale: Sale) -> list[str]:
    excluded = set(program.redemption.excluded_categories)
    if any(line.bonus_redeemed for line in sale.lines):
        return [
            f"line {line.line_no} ({line.category}) paid {line.bonus_redeemed} with points; "
            f"its category is excluded from redemption"
            for line in sale.lines
            if line.category in excluded and line.bonus_redeemed
        ]
    allowed = sum((line.amount for line in sale.lines if line.category not in excluded), Decimal(0))
    if sale.bonus_redeemed > allowed:
        return [
            f"{sale.bonus_redeemed} paid with points exceeds {allowed:.2f} of lines outside the excluded "
            f"categories ({', '.join(sorted(excluded))})"
        ]
    return []
