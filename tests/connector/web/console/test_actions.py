"""Actions are audited with their outcome; a fix plan applied twice writes once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from connector.store import Store
from connector.store.tables import AuditEntry
from connector.web.console.actions import ActionRefusedError, apply_fixes, retry_failure, skip_failure

from ..seed import Seeded


def _outcomes(store: Store) -> list[tuple[str, str, str]]:
    with store.session() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.who == "oleg").order_by(AuditEntry.id))
        return [(e.action, e.target or "", e.outcome) for e in rows]


def test_a_refused_action_is_audited_as_refused(store: Store, seeded: Seeded) -> None:
    skip_failure(store, seeded.anna_failure, "oleg", "покупка отменена")
    with pytest.raises(ActionRefusedError, match="skipped"):
        retry_failure(store, seeded.anna_failure, "oleg")
    with pytest.raises(ActionRefusedError):
        retry_failure(store, 999, "oleg")
    outcomes = _outcomes(store)
    assert outcomes[0] == ("failure.skip", f"failed_item:{seeded.anna_failure}", "ok")
    assert outcomes[1][2].startswith("refused: failed item")
    assert outcomes[2][2].startswith("refused: no failed item 999")


def test_apply_fixes_writes_the_outbox_once_and_leaves_manual_ones(store: Store, seeded: Seeded) -> None:
    first = apply_fixes(store, seeded.reconcile_run, "oleg")
    second = apply_fixes(store, seeded.reconcile_run, "oleg")
    assert len(first.applied) == 1
    assert first.manual == second.manual
    assert (second.applied, second.already) == ([], first.applied)
    entry = store.outbox.get(f"crm:evotor:{seeded.anna_sale}:accrual")
    assert entry is not None
    assert (entry.operation, entry.state) == ("post_posting", "pending")
    assert _outcomes(store)[0] == ("reconcile.apply_fixes", f"run:{seeded.reconcile_run}", "ok")


def test_apply_fixes_of_an_unknown_run_is_refused(store: Store, seeded: Seeded) -> None:
    with pytest.raises(ActionRefusedError):
        apply_fixes(store, 999, "oleg")
    assert _outcomes(store) == [("reconcile.apply_fixes", "run:999", "refused: nothing to apply")]
