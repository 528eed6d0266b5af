"""What a reconciliation finds: discrepancies of the kinds DESIGN.md §7 names, their fixes, and the run's result.

The reconciliation engine (:mod:`connector.reconcile`) produces a :class:`ReconcileResult`; the report
(:mod:`connector.report`), the CLI, the console and the database all read this one shape. The JSON form is the
contract of ``loyalty-connector reconcile --format json``::

    {"window": {"from": "2026-11-01", "to": "2026-11-07"}, "stores": ["…"],
     "summary": {"missing_accrual": 2, …},
     "discrepancies": [{"kind", "store", "business_date", "refs": {system: id}, "expected", "actual", "delta", "fix"}]}
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "AUTO_FIXABLE",
    "DISCREPANCY_KINDS",
    "MONEY_KINDS",
    "Discrepancy",
    "FixAction",
    "ReconcileResult",
]

DISCREPANCY_KINDS: tuple[str, ...] = (
    "missing_in_right",
    "missing_in_left",
    "amount_mismatch",
    "line_mismatch",
    "customer_mismatch",
    "missing_accrual",
    "accrual_mismatch",
    "missing_reversal",
    "duplicate_posting",
    "orphan_posting",
    "redemption_over_limit",
    "return_without_sale",
    "balance_mismatch",
)
"""Every kind, in the order reports list them."""

MONEY_KINDS: frozenset[str] = frozenset(
    {"missing_in_right", "missing_in_left", "amount_mismatch", "line_mismatch", "customer_mismatch"}
)
"""Kinds whose ``delta`` is money (roubles); the others are points."""

AUTO_FIXABLE: frozenset[str] = frozenset(
    {"missing_in_right", "missing_accrual", "accrual_mismatch", "missing_reversal", "duplicate_posting"}
)
"""Kinds a fix can apply without a person; the others (``return_without_sale``, ``customer_mismatch`` …) are
reported with a proposal that only a person may carry out."""


@dataclass(frozen=True)
class FixAction:
    """A proposed fix: what to write where, under which idempotency key; ``manual`` ones are never applied.

    Attributes:
        action: ``post_posting``, ``compensate_posting``, ``create_document``, ``manual``.
        target: the configured system to write to, or None for manual fixes.
        key: the outbox idempotency key the write will carry (so applying twice writes once).
        payload: canonical JSON of what is written (a posting or a document), or None.
        description: one sentence an operator reads (in English; the console translates by ``action``).
    """

    action: Literal["post_posting", "compensate_posting", "create_document", "manual"]
    target: str | None
    key: str | None
    payload: dict[str, Any] | None
    description: str

    @property
    def automatic(self) -> bool:
        return self.action != "manual"

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "target": self.target,
            "key": self.key,
            "payload": self.payload,
            "description": self.description,
        }


@dataclass(frozen=True)
class Discrepancy:
    """One difference between systems, with the evidence an operator needs to act on it.

    Attributes:
        kind: one of :data:`DISCREPANCY_KINDS`.
        store: canonical store id (None for account-level kinds such as ``balance_mismatch``).
        business_date: the store-local date of the document, or of the reconciliation for balances.
        refs: the id in each system (``{"evotor": receipt id, "onec": Ref_Key, "crm": operation id}``); for
            account-level kinds also ``{"account": "+7…"}``.
        expected: what should be there (a 2-decimal string amount, a phone, a line list …), or None.
        actual: what is there, or None when it is missing.
        delta: money (for :data:`MONEY_KINDS`) or points at stake, signed = actual − expected; None if n/a.
        fix: the proposed fix.
    """

    kind: str
    store: str | None
    business_date: date | None
    refs: dict[str, str]
    expected: Any
    actual: Any
    delta: Decimal | None
    fix: FixAction

    def __post_init__(self) -> None:
        if self.kind not in DISCREPANCY_KINDS:
            raise ValueError(f"unknown discrepancy kind {self.kind!r}")

    @property
    def unit(self) -> Literal["money", "points"]:
        return "money" if self.kind in MONEY_KINDS else "points"

    def as_json(self) -> dict[str, Any]:
        """The JSON object of ``reconcile --format json`` (amounts as 2-decimal strings)."""
        return {
            "kind": self.kind,
            "store": self.store,
            "business_date": self.business_date.isoformat() if self.business_date else None,
            "refs": dict(sorted(self.refs.items())),
            "expected": _jsonable(self.expected),
            "actual": _jsonable(self.actual),
            "delta": f"{self.delta:.2f}" if self.delta is not None else None,
            "fix": self.fix.as_json(),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclass
class ReconcileResult:
    """The outcome of one reconciliation run over a window of business dates and a set of stores."""

    date_from: date
    date_to: date
    stores: list[str]
    discrepancies: list[Discrepancy] = field(default_factory=list)
    run_id: int | None = None
    documents_compared: dict[str, int] = field(default_factory=dict)  # system -> documents read in the window

    @property
    def agrees(self) -> bool:
        return not self.discrepancies

    def summary(self) -> dict[str, int]:
        """Count by kind, every kind that occurred, in :data:`DISCREPANCY_KINDS` order."""
        counts = Counter(d.kind for d in self.discrepancies)
        return {kind: counts[kind] for kind in DISCREPANCY_KINDS if counts[kind]}

    def at_stake(self) -> dict[str, Decimal]:
        """Absolute money or points at stake by kind (sum of |delta|)."""
        totals: dict[str, Decimal] = {}
        for item in self.discrepancies:
            if item.delta is not None:
                totals[item.kind] = totals.get(item.kind, Decimal("0")) + abs(item.delta)
        return {kind: totals[kind] for kind in DISCREPANCY_KINDS if kind in totals}

    def as_json(self) -> dict[str, Any]:
        """The stable JSON document of ``reconcile --format json``."""
        return {
            "window": {"from": self.date_from.isoformat(), "to": self.date_to.isoformat()},
            "stores": list(self.stores),
            "summary": self.summary(),
            "discrepancies": [item.as_json() for item in self.discrepancies],
        }
