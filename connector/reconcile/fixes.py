"""Fixes: the plan a reconciliation proposes, and applying it through the outbox (DESIGN.md §4, §7).

Every automatic fix carries its idempotency key, derived from its cause:

==========================  ===========================================================================
missing accrual / reversal  the expected posting under its own key: ``crm:evotor:<id>:accrual``
accrual mismatch            an adjustment for the difference: ``crm:evotor:<id>:accrual:correction:adjustment``
duplicate posting           a compensating posting: ``crm:evotor:<id>:accrual:compensation:<op id>:adjustment``
missing 1C receipt          the receipt: ``onec:evotor:<id>:sale``
==========================  ===========================================================================

:func:`apply_fixes` records each write in the outbox **before** it is attempted; an entry already confirmed is
not written again, and the adapters look the key up in the target before creating, so applying twice writes
once. A posting fixed in a ledger is mirrored, under the mirror's key (``onec:<posting key>``), to every system
the ledger is mirrored to, as the sync's route would have done. ``manual`` fixes are never applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

from adapters.base import build_adapter
from connector.config import ConnectorConfig
from connector.discrepancies import Discrepancy, FixAction, ReconcileResult
from connector.errors import ConnectorError
from connector.logs import get_logger
from connector.model import Posting, parse_document
from connector.reconcile.snapshot import mirrors_of
from connector.store import Store

__all__ = ["ApplyReport", "apply_fixes", "plan_fixes"]

_log = get_logger("connector.reconcile.fixes")
_OPERATION = {"post_posting": "posting", "compensate_posting": "posting", "create_document": "receipt"}


def plan_fixes(result: ReconcileResult) -> list[tuple[Discrepancy, FixAction]]:
    """The automatic fixes of ``result``, one per key (a write that fixes two findings is made once)."""
    plan: dict[str, tuple[Discrepancy, FixAction]] = {}
    for item in result.discrepancies:
        if item.fix.automatic and item.fix.key and item.fix.key not in plan:
            plan[item.fix.key] = (item, item.fix)
    return list(plan.values())


@dataclass
class ApplyReport:
    """What applying a plan did: keys written now, keys already written earlier, and failures (key → reason)."""

    written: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


class _Applier:
    def __init__(self, config: ConnectorConfig, store: Store, session: requests.Session | None) -> None:
        self.config, self.store, self.session = config, store, session
        self.adapters: dict[str, Any] = {}
        self.report = ApplyReport()

    def adapter(self, name: str) -> Any:
        if name not in self.adapters:
            self.adapters[name] = build_adapter(name, self.config.systems[name], session=self.session)
        return self.adapters[name]

    def apply(self, fix: FixAction) -> None:
        assert fix.target is not None
        assert fix.key is not None
        assert fix.payload is not None
        written = self.write(fix.key, fix.target, _OPERATION[fix.action], fix.payload)
        if written and fix.action != "create_document":
            posting = Posting.model_validate(fix.payload)
            for mirror in mirrors_of(self.config, fix.target):
                self.write(f"{mirror}:{posting.key}", mirror, "bonus_document", fix.payload)

    def write(self, key: str, target: str, operation: str, payload: dict[str, Any]) -> bool:
        """Write once under ``key``; True when the target has it (now or from before)."""
        entry = self.store.outbox.record(key, target, operation, payload)
        if entry.state == "confirmed":
            self.report.already.append(key)
            return True
        self.store.outbox.mark_sent(key)
        try:
            adapter = self.adapter(target)
            if operation == "receipt":
                outcome = adapter.write_document(parse_document(payload), key)
            else:
                outcome = adapter.write_posting(Posting.model_validate(payload), key)
        except ConnectorError as exc:
            self.store.outbox.mark_failed(key, str(exc))
            self.report.failed[key] = str(exc)
            _log.warning("fix failed", key=key, target=target, error=str(exc))
            return False
        self.store.outbox.mark_confirmed(key, outcome.remote_id)
        (self.report.written if outcome.created else self.report.already).append(key)
        return True


def apply_fixes(
    config: ConnectorConfig,
    result: ReconcileResult,
    store: Store,
    *,
    session: requests.Session | None = None,
    who: str = "cli",
    wait: float = 120.0,
) -> ApplyReport:
    """Perform every automatic fix of ``result`` through the outbox; manual ones are left to a person.

    Args:
        config: the connector configuration (the targets' systems and the ledger's mirror routes).
        result: a reconciliation's result.
        store: the state database holding the outbox.
        session: one HTTP session for every adapter.
        who: recorded as the fixes' ``applied_by``.
        wait: seconds to wait for running syncs: a fix is written under the key a sync would use (a missing
            accrual), so the two never write at the same moment.

    Raises:
        SyncBusyError: a sync still runs after ``wait`` seconds; nothing was applied.
    """
    from connector.reconcile.persist import mark_applied
    from connector.sync.locks import process_lock

    applier = _Applier(config, store, session)
    with process_lock(store, wait=wait, exclusive=True):
        for _item, fix in plan_fixes(result):
            applier.apply(fix)
    done = applier.report.written + applier.report.already
    mark_applied(store, done, who=who)
    return applier.report
