"""Balances replayed from operations by each system's rule, and a reported balance the operations do not explain."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from connector.reconcile.balances import available_by_buckets, available_by_register
from connector.reconcile.ledger import compare_system_balances
from connector.reconcile.model import LedgerEntry, LedgerSide

MSK = timezone(timedelta(hours=3))
NOW = datetime(2026, 11, 20, 12, tzinfo=MSK)


def entry(
    op_id: str, amount: str, day: int, *, active: int | None = None, expires: int | None = None
) -> LedgerEntry:
    at = datetime(2026, 11, day, 10, tzinfo=MSK)
    return LedgerEntry(
        "crm", op_id, f"k:{op_id}:adjustment", "adjustment", Decimal(amount), "+79161234567", "101", at,
        datetime(2026, 11, active, tzinfo=MSK) if active else None,
        datetime(2026, 11, expires, tzinfo=MSK) if expires else None,
    )  # fmt: skip


def test_pending_accruals_are_not_available_yet() -> None:
    entries = [entry("1", "100.00", 1), entry("2", "40.00", 10, active=24)]
    assert available_by_buckets(entries, NOW) == Decimal("100.00")
    assert available_by_register(entries, NOW) == Decimal("100.00")
    assert available_by_buckets(entries, NOW + timedelta(days=5)) == Decimal("140.00")


def test_expired_points_are_gone_and_charges_take_the_soonest_expiring_first() -> None:
    entries = [entry("1", "100.00", 1, expires=15), entry("2", "50.00", 2), entry("3", "-30.00", 5)]
    # the charge took 30 of the bucket expiring on the 15th; its other 70 expired
    assert available_by_buckets(entries, NOW) == Decimal("50.00")
    # 1C: accrued 150 − 30 = 120, scheduled to expire 100 − 30 = 70
    assert available_by_register(entries, NOW) == Decimal("50.00")


def test_a_charge_beyond_the_active_points_is_a_debt_in_the_crm_and_zero_in_1c() -> None:
    entries = [entry("1", "20.00", 1), entry("2", "-50.00", 3)]
    assert available_by_buckets(entries, NOW) == Decimal("-30.00")
    assert available_by_register(entries, NOW) == Decimal("0.00")


def test_a_reported_balance_the_operations_do_not_explain_is_a_balance_mismatch() -> None:
    side = LedgerSide("crm", "account", [entry("1", "100.00", 1), entry("2", "40.00", 10, active=24)],
                      balances={"101": Decimal("140.00"), "102": Decimal("0.00")}, balances_at=NOW)  # fmt: skip
    (found,) = compare_system_balances(side, tolerance=Decimal("0.01"))
    assert (found.kind, found.refs, found.store) == ("balance_mismatch", {"crm_account": "101"}, None)
    assert (found.expected, found.actual, found.delta) == (
        Decimal("100.00"),
        Decimal("140.00"),
        Decimal("40.00"),
    )
    side.balances["101"] = Decimal("100.01")
    assert compare_system_balances(side, tolerance=Decimal("0.01")) == []
