"""Actions are audited with their outcome; a fix plan applied twice writes once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from connector.store import Store
from connector.store.tables import AuditEntry
from connector.web.console.actions import ActionRefusedError, apply_fixes, retry_failure, skip_failure

from ..conftest import RecordingTarget
from ..seed import Seeded, console_config


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


def test_apply_fixes_writes_once_and_leaves_manual_ones(
    store: Store, seeded: Seeded, crm: RecordingTarget
) -> None:
    config = console_config(str(store.engine.url))
    key = f"crm:evotor:{seeded.anna_sale}:accrual"
    first = apply_fixes(store, config, seeded.reconcile_run, "oleg")
    assert (first.written, first.already, first.failed) == ([key], [], {})
    assert len(first.manual) == 1
    with pytest.raises(ActionRefusedError, match="no open discrepancies"):
        apply_fixes(store, config, seeded.reconcile_run, "oleg", ids=[1])
    assert list(crm.kept) == [key]
    assert _outcomes(store)[0] == (
        "reconcile.apply_fixes",
        f"run:{seeded.reconcile_run}",
        "ok: 1 written, 0 already there, 1 manual",
    )


def test_apply_fixes_of_an_unknown_run_is_refused(store: Store, seeded: Seeded) -> None:
    with pytest.raises(ActionRefusedError):
        apply_fixes(store, console_config(str(store.engine.url)), 999, "oleg")
    assert _outcomes(store) == [("reconcile.apply_fixes", "run:999", "refused: nothing to apply")]
