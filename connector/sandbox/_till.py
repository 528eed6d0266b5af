"""The tills: every store's receipts, day by day, as Evotor holds them (see the generator)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeVar
from zoneinfo import ZoneInfo

from connector.rules import spread_redeemed
from connector.sandbox.world import Product, Receipt, ReceiptLine, SandboxCustomer, Store, World

__all__ = ["Till", "TillPlan", "new_uuid", "seeded_rng"]

_T = TypeVar("_T")

_CENT = Decimal("0.01")
_ZERO = Decimal("0.00")
_MAX_SHARE = Decimal("0.30")  # the default program's limits, which natural redemptions respect
_MIN_POINTS = 100
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # the version and variant bits of uuid.UUID(version=4)
_UUID_SET = (4 << 76) | (0x8000 << 48)
_UNITS = tuple(Decimal(n) for n in (1, 1, 1, 1, 2, 2, 3))
_LINE_COUNTS = (1, 1, 2, 2, 3, 3, 4, 5, 6)
_PROMO_PERCENTS = (10, 15, 20)
_METHODS = ("card", "card", "cash")


def seeded_rng(seed: int, stream: str) -> random.Random:
    """An RNG for one stream of the world (master data, receipts, …), so streams do not shift each other."""
    return random.Random(f"{seed}:{stream}")  # noqa: S311 - reproducible test data, not secrets


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng``.

    The same string as ``str(uuid.UUID(int=rng.getrandbits(128), version=4))``, spelled out because the
    sandbox draws a few hundred thousand of them.
    """
    value = rng.getrandbits(128) & _UUID_CLEAR | _UUID_SET
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(eq=False)  # identity: pool.remove must not compare receipts field by field
class _Sold:
    """A sale still open to returns: what is left of each line (quantity, amount, discount, redeemed)."""

    receipt: Receipt
    left: list[list[Decimal]]

    @classmethod
    def of(cls, receipt: Receipt) -> _Sold:
        """A fresh sale: all of every line still returnable."""
        lines = [[line.quantity, line.amount, line.discount, line.bonus_redeemed] for line in receipt.lines]
        return cls(receipt, lines)

    def open_lines(self) -> list[int]:
        """Indexes of the lines with money still to return."""
        return [index for index, left in enumerate(self.left) if left[1] > 0]


@dataclass
class TillPlan:
    """Where the till-side injections go: (store id, day index) -> kinds, consumed as they are made."""

    slots: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    made: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, receipt id, variant)

    @classmethod
    def spread(cls, world: World, kinds: tuple[str, ...], count: int) -> TillPlan:
        """``count`` slots per kind, drawn over every (store, day) of the world."""
        rng = seeded_rng(world.seed, "plan")
        slots = [(store.id, day) for day in range(world.days) for store in world.stores]
        plan = cls()
        for kind in kinds:
            rng.shuffle(slots)
            for index in range(count):
                plan.slots.setdefault(slots[index % len(slots)], []).append(kind)
        return plan

    def take(self, store: str, day: int, kind: str) -> bool:
        """Whether ``kind`` is planned on this store and day (consumed)."""
        kinds = self.slots.get((store, day), [])
        if kind in kinds:
            kinds.remove(kind)
            return True
        return False


class Till:
    """Makes the till receipts of every store and day, in order, tracking what is still returnable.

    Args:
        world: the world, with stores, products and customers generated.
        opening: each customer's opening balance (phone -> points); redemptions never exceed it.
        plan: where the till-side injections go.
        receipts: receipts per store and day.
        weighted: skus sold by weight.
    """

    def __init__(
        self, world: World, opening: dict[str, Decimal], plan: TillPlan, *, receipts: int, weighted: set[str]
    ) -> None:
        self.world, self.plan, self.receipts = world, plan, receipts
        self.rng = seeded_rng(world.seed, "receipts")
        self.balance = dict(opening)  # what the opening balance still covers, never below zero
        self.by_phone = {customer.phone: customer for customer in world.customers}
        self.by_category: dict[str, list[Product]] = {}
        for product in world.products:
            self.by_category.setdefault(product.category, []).append(product)
        self.tobacco = {product.sku for product in self.by_category["tobacco"]}
        self.weighted = weighted
        self.not_tobacco = tuple(category for category in self.by_category if category != "tobacco")
        self.fiscal = {
            store.id: (f"72814405{self.rng.randrange(10**8):08d}", self.rng.randrange(1000, 5000))
            for store in world.stores
        }
        self.seen_instants: set[tuple[str, datetime]] = set()
        self.over_limit_made = 0
        self.assortments: dict[tuple[str, ...], list[Product]] = {}
        self.gross: dict[tuple[str, Decimal], Decimal] = {}

    def run(self) -> list[Receipt]:
        """Every receipt of every store, day by day."""
        receipts: list[Receipt] = []
        pools: dict[str, list[_Sold]] = {store.id: [] for store in self.world.stores}
        for day in range(self.world.days):
            for store in self.world.stores:
                receipts.extend(self._day(store, day, pools[store.id]))
        return receipts

    def _moments(self, store: Store, day: int) -> list[datetime]:
        local = self.world.start + timedelta(days=day)
        offset = ZoneInfo(store.timezone).utcoffset(datetime.combine(local, time(12)))
        assert offset is not None
        round_the_clock = (int(store.code[1:]) - 1) % 4 < 2  # S01 (Moscow) and S02 (Samara), S05, S06, …
        opening, closing = (0, 86_400_000) if round_the_clock else (8 * 3_600_000, 23 * 3_600_000)
        millis = sorted(self.rng.sample(range(opening, closing), self.receipts))
        midnight = datetime.combine(local, time(0), tzinfo=timezone(offset))
        return [midnight + timedelta(milliseconds=ms) for ms in millis]

    def _day(self, store: Store, day: int, pool: list[_Sold]) -> Iterator[Receipt]:
        moments = self._moments(store, day)
        orphan_at = (
            self.rng.randrange(len(moments)) if self.plan.take(store.id, day, "return_without_sale") else -1
        )
        over_limit = self.plan.take(store.id, day, "redemption_over_limit")
        for index, moment in enumerate(moments):
            header = _Header(store, moment, index + 1, 100 + day)
            if index == orphan_at:
                yield self._return_without_sale(header)
            elif pool and self.rng.random() < 0.08:
                yield self._return(header, pool)
            else:
                sale, injected = self._sale(header, over_limit=over_limit)
                over_limit = over_limit and not injected
                if not injected:  # an injected sale stays unreturned: its discrepancy is the only one
                    pool.append(_Sold.of(sale))
                    del pool[:-200]
                yield sale

    def _customer(self, moment: datetime) -> SandboxCustomer | None:
        if self.rng.random() < 0.45:
            return None
        customer = self._draw(self.world.customers)
        instant = (customer.phone, moment.astimezone(UTC))
        if instant in self.seen_instants:  # two documents of one customer at one instant would have no order
            return None
        self.seen_instants.add(instant)
        return customer

    def _line(
        self, line_no: int, product: Product, has_customer: bool, *, quantity: Decimal | None = None
    ) -> ReceiptLine:
        if quantity is None and product.sku in self.weighted:
            quantity = Decimal(self.rng.randrange(250, 2500)) / 1000
        elif quantity is None:
            quantity = self._draw(_UNITS)
        gross = self.gross.get((product.sku, quantity))
        if gross is None:
            gross = (product.price * quantity).quantize(_CENT, ROUND_HALF_UP)
            if quantity in _UNITS:  # whole units repeat: a few hundred values, computed once
                self.gross[product.sku, quantity] = gross
        percent = 0
        if product.category == "promo":
            percent = self._draw(_PROMO_PERCENTS)
        elif has_customer and self.rng.random() < 0.15:
            percent = 5
        if not percent:  # the cached gross is the amount: one Decimal shared by many lines
            return ReceiptLine(line_no, product.sku, quantity, product.price, gross, _ZERO)
        discount = (gross * percent / 100).quantize(_CENT, ROUND_HALF_UP)
        return ReceiptLine(line_no, product.sku, quantity, product.price, gross - discount, discount)

    def _draw(self, items: Sequence[_T]) -> _T:
        """One item, uniformly (cheaper than ``Random.choice`` when drawn a million times)."""
        return items[int(self.rng.random() * len(items))]

    def _products(self, count: int, categories: tuple[str, ...] | None = None) -> list[Product]:
        """``count`` distinct products of ``categories`` (all by default)."""
        key = categories or ()
        if key not in self.assortments:
            self.assortments[key] = [
                p for p in self.world.products if not categories or p.category in categories
            ]
        return self.rng.sample(self.assortments[key], count)

    def _sale_lines(self, variant: str, has_customer: bool) -> list[ReceiptLine]:
        if variant == "excluded":  # one cheap loaf and cigarettes, paid mostly with points
            cheap = self._line(1, self._products(1, ("bakery",))[0], False, quantity=Decimal(1))
            packs = self._products(2, ("tobacco",))
            return [cheap] + [self._line(i, p, has_customer) for i, p in enumerate(packs, start=2)]
        count = self._draw(_LINE_COUNTS)
        products = self._products(count, self.not_tobacco if variant else None)
        return [self._line(i, p, has_customer) for i, p in enumerate(products, start=1)]

    def _sale(self, header: _Header, *, over_limit: bool) -> tuple[Receipt, bool]:
        customer = self._customer(header.moment)
        variant = _VARIANTS[self.over_limit_made % 3] if over_limit and customer else ""
        lines = self._sale_lines(variant, customer is not None)
        points = self._redemption(customer, lines, variant) if customer else _ZERO
        receipt = self._receipt("sale", header, customer, lines, points)
        injected = bool(variant) and points > 0
        if injected:
            self.over_limit_made += 1
            self.plan.made.append(("redemption_over_limit", receipt.id, variant))
        return receipt, injected

    def _redemption(
        self, customer: SandboxCustomer | None, lines: list[ReceiptLine], variant: str
    ) -> Decimal:
        """Points paid: within the limits (often none), or over one for an injected variant (else 0)."""
        assert customer is not None
        total = sum((line.amount for line in lines), _ZERO)
        balance = self.balance[customer.phone]
        cap = int(min(balance, total * _MAX_SHARE))
        low, high = _MIN_POINTS, cap
        if variant == "share":
            low = int(total * Decimal("0.45")) + 1
            low, high = max(low, _MIN_POINTS), min(int(balance), int(total * Decimal("0.6")))
        elif variant == "min_points":
            low, high = 20, min(90, cap)
        elif variant == "excluded":
            low = max(_MIN_POINTS, int(lines[0].amount) + 1)
        elif any(line.sku in self.tobacco for line in lines) or self.rng.random() >= 0.35:
            return _ZERO
        if low > high:
            return _ZERO
        points = self.rng.randint(low, high)
        self.balance[customer.phone] = balance - points
        return Decimal(points).quantize(_CENT)

    def _receipt(
        self,
        kind: str,
        header: _Header,
        customer: SandboxCustomer | None,
        lines: list[ReceiptLine],
        bonus: Decimal,
        original_id: str | None = None,
    ) -> Receipt:
        if bonus and kind == "sale":
            shares = spread_redeemed([line.amount for line in lines], bonus)
            lines = [_with_bonus(line, share) for line, share in zip(lines, shares, strict=True)]
        paid = sum((line.amount for line in lines), _ZERO) - bonus
        payments = [("bonus", bonus)] if bonus else []
        if paid:
            payments.append((self._draw(_METHODS), paid))
        fn, first_fd = self.fiscal[header.store.id]
        return Receipt(
            id=new_uuid(self.rng),
            kind="sale" if kind == "sale" else "return",
            store_id=header.store.id,
            number=header.number,
            session_number=header.session,
            occurred_at=header.moment,
            customer_phone=customer.phone if customer else None,
            lines=tuple(lines),
            payments=tuple(payments),
            fiscal=(
                fn,
                str(first_fd + header.session * 1000 + header.number),
                f"{self.rng.randrange(10**10):010d}",
            ),
            original_id=original_id,
        )

    def _return(self, header: _Header, pool: list[_Sold]) -> Receipt:
        recent = min(len(pool), 60)
        sold = pool[len(pool) - recent + self.rng.randrange(recent)]
        open_lines = sold.open_lines()
        partial = self.rng.random() < 0.4
        chosen = [self.rng.choice(open_lines)] if partial else open_lines
        lines = [
            self._returned(sold, index, line_no, partial) for line_no, index in enumerate(chosen, start=1)
        ]
        if not sold.open_lines():
            pool.remove(sold)
        original = sold.receipt
        customer = self.by_phone.get(original.customer_phone or "")
        bonus = sum((line.bonus_redeemed for line in lines), _ZERO)
        return self._receipt("return", header, customer, lines, bonus, original.id)

    def _returned(self, sold: _Sold, index: int, line_no: int, partial: bool) -> ReceiptLine:
        line, left = sold.receipt.lines[index], sold.left[index]
        quantity, amount, discount, bonus = left
        if partial and line.sku not in self.weighted and quantity >= 2 and self.rng.random() < 0.5:
            quantity = Decimal(1)  # one unit of several: its share of the line, to the kopeck
            amount = (line.amount / line.quantity).quantize(_CENT, ROUND_HALF_UP)
            discount = (line.discount / line.quantity).quantize(_CENT, ROUND_HALF_UP)
            bonus = (line.bonus_redeemed / line.quantity).quantize(_CENT, ROUND_HALF_UP)
        bonus = min(bonus, left[3], amount)
        sold.left[index] = [left[0] - quantity, left[1] - amount, left[2] - discount, left[3] - bonus]
        return ReceiptLine(line_no, line.sku, quantity, line.price, amount, discount, bonus)

    def _return_without_sale(self, header: _Header) -> Receipt:
        line = self._line(1, self._products(1, self.not_tobacco)[0], False)
        customer = self._customer(header.moment) if self.rng.random() < 0.5 else None
        receipt = self._receipt("return", header, customer, [line], _ZERO)
        self.plan.made.append(("return_without_sale", receipt.id, "customer" if customer else "anonymous"))
        return receipt


@dataclass(frozen=True)
class _Header:
    store: Store
    moment: datetime
    number: int
    session: int


_VARIANTS = ("share", "min_points", "excluded")


def _with_bonus(line: ReceiptLine, share: Decimal) -> ReceiptLine:
    return ReceiptLine(line.line_no, line.sku, line.quantity, line.price, line.amount, line.discount, share)
