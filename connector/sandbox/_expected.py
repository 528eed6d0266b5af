"""The postings the program expects for the sandbox's till receipts, fast enough for 100,000 receipts.

The rules are :mod:`connector.rules` (DESIGN.md §3), applied straight to world receipts: money in whole
kopecks, points in whole cents of a point, one exact :class:`~fractions.Fraction` per distinct rate of a sale
instead of one per line, and no canonical documents built. The tests hold the result equal to
:func:`connector.rules.evaluate` over the canonical documents, posting by posting, on worlds that cross tiers,
run through a promotion and return sales in parts — the rules engine stays the one definition.

Each customer's documents are walked in order of their instant, ties by id, with no spend before the window.
:func:`canonical_documents` gives the same receipts as canonical documents, for the rules engine itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import yaml

from connector.model import Customer, DocRef, Fiscal, Line, Payment, Return, Sale
from connector.program import Program
from connector.rules import half_up, points_cents, promotion_multiplier, tier_percent
from connector.sandbox.world import Product, Receipt, SandboxCustomer, World

__all__ = ["ExpectedPosting", "canonical_documents", "expected_by_receipt", "load_world_program"]


def _kopecks(amount: Decimal) -> int:
    return int(amount.scaleb(2))


def load_world_program(world: World) -> Program:
    """The :class:`~connector.program.Program` the world was generated under (its ``program_yaml``)."""
    data = yaml.safe_load(world.program_yaml)
    return Program.model_validate(data["program"])


def canonical_documents(world: World, receipts: Iterable[Receipt] | None = None) -> Iterator[Sale | Return]:
    """The canonical sales and returns of Evotor receipts, as the Evotor mapping produces them: redemption at
    receipt level only (the till states no per-line share), the customer by phone and card.

    Args:
        world: the world the receipts belong to (for products, customers, stores).
        receipts: which receipts; all of ``world.receipts`` by default.
    """
    products = {product.sku: product for product in world.products}
    customers = {customer.phone: customer for customer in world.customers}
    devices = {store.id: store.evotor_device_id for store in world.stores}
    for receipt in world.receipts if receipts is None else receipts:
        fields = _document_fields(receipt, products, customers.get(receipt.customer_phone or ""))
        fields["register"] = devices[receipt.store_id]
        if receipt.kind == "sale":
            yield Sale(**fields)
        else:
            original = _evotor_ref(receipt.original_id) if receipt.original_id else None
            yield Return(**fields, original=original)


def _evotor_ref(receipt_id: str) -> DocRef:
    return DocRef(system="evotor", kind="receipt", id=receipt_id)


def _document_fields(
    receipt: Receipt, products: dict[str, Product], customer: SandboxCustomer | None
) -> dict[str, Any]:
    lines = tuple(
        Line(
            line_no=line.line_no,
            sku=line.sku,
            name=products[line.sku].name,
            category=products[line.sku].category,
            quantity=line.quantity,
            price=line.price,
            amount=line.amount,
            discount=line.discount,
        )
        for line in receipt.lines
    )
    return {
        "ref": _evotor_ref(receipt.id),
        "number": str(receipt.number),
        "store": receipt.store_id,
        "occurred_at": receipt.occurred_at,
        "business_date": receipt.business_date,
        "customer": _customer(customer),
        "lines": lines,
        "payments": tuple(Payment(method=method, amount=amount) for method, amount in receipt.payments),
        "total": receipt.total,
        "discount": sum((line.discount for line in receipt.lines), Decimal("0.00")),
        "bonus_redeemed": receipt.bonus_redeemed,
        "fiscal": Fiscal(fn=receipt.fiscal[0], fd=receipt.fiscal[1], fp=receipt.fiscal[2]),
    }


def _customer(customer: SandboxCustomer | None) -> Customer | None:
    if customer is None:
        return None
    refs = {"onec": customer.onec_partner_ref, "crm": str(customer.crm_account_id)}
    return Customer(phone=customer.phone, card=customer.card, name=customer.name, refs=refs)


@dataclass(frozen=True)
class ExpectedPosting:
    """A posting the program expects for a till receipt; ``cents`` are signed hundredths of a point."""

    kind: str
    account: str  # E.164 phone
    receipt: Receipt
    cents: int
    available: date | None = None
    expires: date | None = None

    @property
    def key(self) -> str:
        """The posting key: ``evotor:<receipt id>:<kind>``."""
        return f"evotor:{self.receipt.id}:{self.kind}"

    @property
    def amount(self) -> Decimal:
        """Signed points, two decimals."""
        return Decimal(f"{self.cents}E-2")


@dataclass
class _Sale:
    """A sale's figures (as ``connector.rules`` computes them) and what its returns took back so far."""

    receipt: Receipt
    amounts: list[int]
    redeemed: list[int]
    rates: list[int]  # rate_i / 100 / point_value over ``denominator``: points per rouble of base
    denominator: int
    accrual: int
    redemption: int
    unreturned: list[int] = field(init=False)
    reversed: int = 0
    refunded: int = 0

    def __post_init__(self) -> None:
        self.unreturned = list(self.amounts)


class _Walk:
    def __init__(self, world: World, program: Program) -> None:
        self.program = program
        self.categories = {product.sku: product.category for product in world.products}
        self.overrides = {name: Fraction(value) for name, value in program.accrual.categories.items()}
        self.value = Fraction(program.point_value)
        self.rounding = program.accrual.rounding
        self.fixed = _kopecks(program.accrual.fixed_per_purchase)
        self.min_purchase = _kopecks(program.accrual.min_purchase)
        self.all_categories = sorted(set(self.categories.values()))
        self.rates: dict[tuple[Decimal, date], tuple[dict[str, int], int]] = {}
        self.sales: dict[str, _Sale] = {}
        self.postings: dict[str, list[ExpectedPosting]] = {}

    def customer(self, receipts: list[Receipt]) -> None:
        """Walk one customer's documents in order, tracking their spend for the tiers."""
        spend = 0
        for receipt in sorted(receipts, key=lambda r: (r.occurred_at.astimezone(UTC), r.id)):
            if receipt.kind == "sale":
                self._sale(receipt, spend)
                spend += _kopecks(receipt.total)
            else:
                self._return(receipt)
                spend -= _kopecks(receipt.total)

    def _rates(self, spend: int, day: date) -> tuple[dict[str, int], int]:
        """Per category, ``rate_i / 100 / point_value`` as an integer over a common denominator."""
        base = tier_percent(self.program, Decimal(spend).scaleb(-2))
        key = (base, day)
        if key not in self.rates:
            multiplier = Fraction(promotion_multiplier(self.program, day)) / 100 / self.value
            rates = {c: self.overrides.get(c, Fraction(base)) * multiplier for c in self.all_categories}
            denominator = math.lcm(*(rate.denominator for rate in rates.values()))
            self.rates[key] = ({c: int(rate * denominator) for c, rate in rates.items()}, denominator)
        return self.rates[key]

    def _figures(self, receipt: Receipt, spend: int) -> _Sale:
        numerators, denominator = self._rates(spend, receipt.business_date)
        amounts = [_kopecks(line.amount) for line in receipt.lines]
        redeemed = [_kopecks(line.bonus_redeemed) for line in receipt.lines]
        rates = [numerators[self.categories[line.sku]] for line in receipt.lines]
        weighted = sum(
            rate * (amount - spent) for rate, amount, spent in zip(rates, amounts, redeemed, strict=True)
        )
        qualifies = sum(amounts) - sum(redeemed) >= self.min_purchase
        accrual = (
            points_cents(Fraction(weighted, denominator * 100), self.rounding) + self.fixed
            if qualifies
            else 0
        )
        bonus = _kopecks(receipt.bonus_redeemed)
        redemption = half_up(Fraction(bonus) / self.value) if bonus else 0
        return _Sale(receipt, amounts, redeemed, rates, denominator, accrual, redemption)

    def _sale(self, receipt: Receipt, spend: int) -> None:
        figures = self.sales[receipt.id] = self._figures(receipt, spend)
        account = receipt.customer_phone
        assert account is not None
        postings = self.postings.setdefault(receipt.id, [])
        if figures.redemption:
            postings.append(ExpectedPosting("redemption", account, receipt, -figures.redemption))
        if figures.accrual:
            available = receipt.business_date + timedelta(days=self.program.activation_delay_days)
            days = self.program.expiry_days
            expires = available + timedelta(days=days) if days else None
            postings.append(ExpectedPosting("accrual", account, receipt, figures.accrual, available, expires))

    def _return(self, receipt: Receipt) -> None:
        sale = self.sales.get(receipt.original_id or "")
        if sale is None:
            return  # a return without a known sale posts nothing
        taken = [0] * len(sale.amounts)
        for line in receipt.lines:
            remaining = _kopecks(line.amount)
            for index, original in enumerate(sale.receipt.lines):
                if original.sku == line.sku:
                    take = min(remaining, sale.unreturned[index])
                    sale.unreturned[index] -= take
                    taken[index] += take
                    remaining -= take
        reversal, refund = self._take_back(sale, taken)
        account = sale.receipt.customer_phone
        assert account is not None
        postings = self.postings.setdefault(receipt.id, [])
        if reversal:
            postings.append(ExpectedPosting("accrual_reversal", account, receipt, -reversal))
        if refund:
            postings.append(ExpectedPosting("redemption_refund", account, receipt, refund))

    def _take_back(self, sale: _Sale, taken: list[int]) -> tuple[int, int]:
        accrual_left, redemption_left = sale.accrual - sale.reversed, sale.redemption - sale.refunded
        if not any(sale.unreturned):
            reversal, refund = accrual_left, redemption_left  # fully returned: exactly what is left
        else:
            earned = spent = Fraction(0)
            for took, amount, spent_i, rate in zip(
                taken, sale.amounts, sale.redeemed, sale.rates, strict=True
            ):
                if took:
                    share = Fraction(took, amount)
                    earned += share * (amount - spent_i) * rate
                    spent += share * spent_i
            reversal = min(points_cents(earned / (sale.denominator * 100), self.rounding), accrual_left)
            refund = min(points_cents(spent / 100 / self.value, self.rounding), redemption_left)
        sale.reversed += reversal
        sale.refunded += refund
        return reversal, refund


def expected_by_receipt(world: World, program: Program) -> dict[str, list[ExpectedPosting]]:
    """The expected postings of every receipt with a customer, by receipt id, redemption before accrual and
    reversal before refund (the order of :func:`connector.rules.expected_postings`)."""
    by_account: dict[str, list[Receipt]] = {}
    for receipt in world.receipts:
        if receipt.customer_phone:
            by_account.setdefault(receipt.customer_phone, []).append(receipt)
    walk = _Walk(world, program)
    for account in sorted(by_account):
        walk.customer(by_account[account])
    return {receipt_id: postings for receipt_id, postings in walk.postings.items() if postings}
