"""The bonus ledger behind the emulated CRM: accounts, operations, and balances replayed from operations.

Balance rule (documented for adapters and reconciliation): every credit is a bucket that is *pending* before its
``activationDate`` (the creation date when none was given), *active* from that date, and burns on its
``expireDate`` (active while the day is before it). A charge consumes active buckets at the charge's date, the
soonest-expiring first (never-expiring last, then oldest), and is refused when the active balance is below its
amount. A charge that an earlier system wrote beyond the balance (world data may hold one) becomes a debt that
lowers the balance. An account's ``amount`` is the active balance: active buckets' remainders minus debt.
Days are calendar days in the CRM's time zone.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from connector.sandbox.world import CrmOperation, SandboxCustomer, World

__all__ = ["Balance", "InsufficientBonuses", "Ledger", "LedgerOperation", "phone_digits"]

_ZERO = Decimal("0.00")


def phone_digits(raw: str) -> str:
    """Digits of a Russian phone in the ``7XXXXXXXXXX`` form, whatever way it was typed."""
    digits = re.sub(r"\D", "", raw)
    if len(digits) == 11 and digits[0] == "8":
        return "7" + digits[1:]
    if len(digits) == 10:
        return "7" + digits
    return digits


@dataclass(frozen=True)
class LedgerOperation:
    """One operation as the CRM keeps it; ``amount`` is positive, the ``type`` says its direction."""

    id: int
    account_id: int
    type: str  # credit_manual | charge_manual
    amount: Decimal
    created_at: datetime  # aware
    comment: str
    activation_date: date | None = None
    expire_date: date | None = None


@dataclass(frozen=True)
class Balance:
    """An account's points on a day: ``active`` (the account's ``amount``), ``pending`` and ``burned``."""

    active: Decimal
    pending: Decimal
    burned: Decimal
    waiting: dict[date, Decimal] = field(default_factory=dict)  # activation date -> pending points
    burning: dict[date, Decimal] = field(default_factory=dict)  # expire date -> active points


class InsufficientBonuses(Exception):  # noqa: N818 - mirrors the CRM's refusal, not a connector error
    """A charge asked for more than the active balance."""

    def __init__(self, available: Decimal) -> None:
        super().__init__(f"not enough active bonuses: {available} available")
        self.available = available


@dataclass
class _Bucket:
    active_from: date
    expires: date | None
    remaining: Decimal
    order: int

    def active_on(self, day: date) -> bool:
        return self.active_from <= day and (self.expires is None or day < self.expires)


def _from_world(operation: CrmOperation) -> LedgerOperation:
    return LedgerOperation(
        id=operation.id,
        account_id=operation.account_id,
        type=f"{operation.type}_manual",
        amount=operation.amount.quantize(_ZERO),
        created_at=operation.created_at,
        comment=operation.comment,
        activation_date=operation.activation_date,
        expire_date=operation.expire_date,
    )


class Ledger:
    """Accounts and operations of the emulated CRM; thread-safe for the writes a server makes.

    Args:
        world: customers become accounts (``crm_account_id``), ``crm_operations`` the existing ledger.
        timezone: the CRM's zone: ``createdAt`` is written in it and days are counted in it.
    """

    def __init__(self, world: World, timezone: str = "Europe/Moscow") -> None:
        self.zone = ZoneInfo(timezone)
        self.accounts: dict[int, SandboxCustomer] = {c.crm_account_id: c for c in world.customers}
        self.by_phone = {phone_digits(c.phone): c.crm_account_id for c in world.customers}
        self.by_card = {c.card: c.crm_account_id for c in world.customers}
        operations = sorted((_from_world(op) for op in world.crm_operations), key=lambda op: op.id)
        self.operations: list[LedgerOperation] = operations
        self.ids: list[int] = [op.id for op in operations]
        self.per_account: dict[int, list[LedgerOperation]] = {}
        for op in operations:
            self.per_account.setdefault(op.account_id, []).append(op)
        self._lock = threading.Lock()

    def day(self, moment: datetime) -> date:
        """The CRM's calendar day of a moment."""
        return moment.astimezone(self.zone).date()

    def balance(self, account_id: int, at: datetime) -> Balance:
        """Replay the account's operations created up to ``at`` and read the buckets on that day."""
        buckets, debt = self._replay(account_id, at)
        today = self.day(at)
        active = sum((b.remaining for b in buckets if b.active_on(today)), _ZERO) - debt
        pending = sum((b.remaining for b in buckets if b.active_from > today), _ZERO)
        burned = sum((b.remaining for b in buckets if b.expires is not None and b.expires <= today), _ZERO)
        waiting: dict[date, Decimal] = {}
        burning: dict[date, Decimal] = {}
        for bucket in buckets:
            if bucket.active_from > today and bucket.remaining:
                waiting[bucket.active_from] = waiting.get(bucket.active_from, _ZERO) + bucket.remaining
            elif bucket.active_on(today) and bucket.expires is not None and bucket.remaining:
                burning[bucket.expires] = burning.get(bucket.expires, _ZERO) + bucket.remaining
        return Balance(active, pending, burned, waiting, burning)

    def _replay(self, account_id: int, at: datetime) -> tuple[list[_Bucket], Decimal]:
        buckets: list[_Bucket] = []
        debt = _ZERO
        history = sorted(self.per_account.get(account_id, []), key=lambda op: (op.created_at, op.id))
        for op in history:
            if op.created_at > at:
                continue
            created = self.day(op.created_at)
            if op.type.startswith("credit"):
                start = op.activation_date or created
                buckets.append(_Bucket(start, op.expire_date, op.amount, len(buckets)))
            else:
                debt += self._consume(buckets, created, op.amount)
        return buckets, debt

    @staticmethod
    def _consume(buckets: list[_Bucket], day: date, amount: Decimal) -> Decimal:
        """Take ``amount`` from the buckets active on ``day``; return what could not be covered."""
        usable = sorted(
            (b for b in buckets if b.active_on(day)), key=lambda b: (b.expires or date.max, b.order)
        )
        for bucket in usable:
            taken = min(bucket.remaining, amount)
            bucket.remaining -= taken
            amount -= taken
            if not amount:
                break
        return amount

    def add(self, operation: LedgerOperation) -> LedgerOperation:
        """Append an operation, giving it the next id."""
        stored = LedgerOperation(**{**operation.__dict__, "id": (self.ids[-1] if self.ids else 0) + 1})
        self.operations.append(stored)
        self.ids.append(stored.id)
        self.per_account.setdefault(stored.account_id, []).append(stored)
        return stored

    def credit(
        self,
        account_id: int,
        amount: Decimal,
        comment: str,
        at: datetime,
        activation: date | None,
        expire: date | None,
    ) -> LedgerOperation:
        """Record a manual credit."""
        with self._lock:
            return self.add(
                LedgerOperation(0, account_id, "credit_manual", amount, at, comment, activation, expire)
            )

    def charge(self, account_id: int, amount: Decimal, comment: str, at: datetime) -> LedgerOperation:
        """Record a manual charge, or raise :class:`InsufficientBonuses` when the active balance is short."""
        with self._lock:
            available = self.balance(account_id, at).active
            if amount > available:
                raise InsufficientBonuses(available)
            return self.add(LedgerOperation(0, account_id, "charge_manual", amount, at, comment))

    def page_after(
        self, last_id: int | None, limit: int, *, repeat_last: bool = False
    ) -> list[LedgerOperation]:
        """Up to ``limit`` operations with ids after ``last_id`` (from it, when ``repeat_last``), by id."""
        if last_id is None:
            start = 0
        elif repeat_last:
            start = bisect_left(self.ids, last_id)
        else:
            start = bisect_right(self.ids, last_id)
        return self.operations[start : start + limit]
