"""Available points replayed from a ledger's operations, by the rule each kind of system applies (pure).

A system's own balance (the CRM account's ``amount``, 1C's ``Balance`` of ``БонусныеБаллы``) is compared with
the balance its operations imply at the same moment, so pending accruals (not yet available) and expired points
are accounted exactly as that system accounts them:

* ``buckets`` (the CRM; the sandbox's documented rule): every credit is a bucket, pending before its activation
  date (its creation date when none), active until its expiry date; a charge consumes the buckets active on its
  day, soonest-expiring first; what no bucket covers is a debt. Available = active buckets' remainders − debt.
* ``register`` (1C, reference/onec.md §2.4): a credit adds ``Начислено`` at its activation (else the start of
  its day) and schedules ``КСписанию`` at its expiry; a charge takes both away at the start of its day.
  Available at T = ``max(0, Начислено − max(0, КСписанию))`` over movements dated before T.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

from connector.reconcile.model import LedgerEntry

__all__ = ["available_by_buckets", "available_by_register"]

_ZERO = Decimal("0.00")


@dataclass
class _Bucket:
    start: date
    expires: date | None
    remaining: Decimal
    order: int

    def active_on(self, day: date) -> bool:
        return self.start <= day and (self.expires is None or day < self.expires)


def _day(moment: datetime, zone_of: datetime) -> date:
    return moment.astimezone(zone_of.tzinfo).date()


def available_by_buckets(entries: Sequence[LedgerEntry], at: datetime) -> Decimal:
    """Points available at ``at`` under the bucket rule; days are taken in the operations' own zone."""
    history = sorted(
        (e for e in entries if e.occurred_at <= at), key=lambda e: (e.occurred_at, len(e.id), e.id)
    )
    if not history:
        return _ZERO
    clock = history[0].occurred_at
    buckets: list[_Bucket] = []
    debt = _ZERO
    for entry in history:
        created = _day(entry.occurred_at, clock)
        if entry.amount > 0:
            start = _day(entry.available_at, clock) if entry.available_at else created
            expires = _day(entry.expires_at, clock) if entry.expires_at else None
            buckets.append(_Bucket(start, expires, entry.amount, len(buckets)))
        else:
            debt += _consume(buckets, created, -entry.amount)
    today = _day(at, clock)
    return sum((b.remaining for b in buckets if b.active_on(today)), _ZERO) - debt


def _consume(buckets: list[_Bucket], day: date, amount: Decimal) -> Decimal:
    usable = sorted((b for b in buckets if b.active_on(day)), key=lambda b: (b.expires or date.max, b.order))
    for bucket in usable:
        taken = min(bucket.remaining, amount)
        bucket.remaining -= taken
        amount -= taken
        if not amount:
            break
    return amount


def available_by_register(entries: Sequence[LedgerEntry], at: datetime) -> Decimal:
    """Points available at ``at`` under 1C's register rule (movements dated before ``at``)."""
    credited = scheduled = _ZERO
    for entry in entries:
        start = datetime.combine(entry.occurred_at.date(), time(), entry.occurred_at.tzinfo)
        if entry.amount > 0:
            if (entry.available_at or start) < at:
                credited += entry.amount
            if entry.expires_at is not None and entry.expires_at < at:
                scheduled += entry.amount
        elif start < at:
            credited += entry.amount
            scheduled += entry.amount
    return max(_ZERO, credited - max(_ZERO, scheduled))
