"""Fix plans and applying them through the outbox, against recording fake targets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adapters.base import WriteResult
from connector.config import ConnectorConfig
from connector.discrepancies import Discrepancy, FixAction, ReconcileResult
from connector.errors import RemoteError
from connector.logs import configure_logging
from connector.model import Posting, dump_posting
from connector.reconcile import apply_fixes, plan_fixes
from connector.reconcile import fixes as fixes_module
from connector.reconcile.persist import save_result, start_run
from connector.store import Store, open_store
from connector.store.tables import Fix

MSK = timezone(timedelta(hours=3))
DAY = date(2026, 11, 2)


class _Target:
    """A system that keeps what is written under each key, once."""

    def __init__(self, fail: bool = False) -> None:
        self.kept: dict[str, Any] = {}
        self.calls = 0
        self.fail = fail

    def write_posting(self, posting: Posting, key: str) -> WriteResult:
        self.calls += 1
        if self.fail:
            raise RemoteError("the CRM answered 500", system="crm")
        created = key not in self.kept
        self.kept.setdefault(key, posting)
        return WriteResult(key, f"id-{len(self.kept)}", created)


@pytest.fixture(autouse=True)
def _logs_to_this_tests_stderr() -> None:
    """A CLI test earlier in the session may have bound the logger to its captured (now closed) stderr."""
    configure_logging("WARNING")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def _config() -> ConnectorConfig:
    return ConnectorConfig.model_validate(
        {
            "systems": {
                "evotor": {"adapter": "evotor", "base_url": "http://evotor"},
                "crm": {"adapter": "crm", "base_url": "http://crm"},
                "onec": {"adapter": "onec", "base_url": "http://onec"},
            },
            "routes": [{"from": "crm", "documents": ["posting"], "to": "onec", "write": "bonus_documents"}],
        }
    )


def _accrual(doc_id: str) -> Posting:
    return Posting(key=f"evotor:{doc_id}:accrual", account="+79161234567", kind="accrual", amount=Decimal("50.00"),
                   occurred_at=datetime(2026, 11, 2, 12, tzinfo=MSK), status="pending")  # fmt: skip


def _missing(doc_id: str) -> Discrepancy:
    posting = _accrual(doc_id)
    fix = FixAction("post_posting", "crm", f"crm:{posting.key}", dump_posting(posting), "post it")
    return Discrepancy("missing_accrual", "s1", DAY, {"evotor": doc_id}, Decimal(50), None, Decimal(-50), fix)


def _manual() -> Discrepancy:
    fix = FixAction("manual", None, None, None, "find the sale")
    return Discrepancy("return_without_sale", "s1", DAY, {"evotor": "r1"}, None, Decimal(10), None, fix)


@pytest.fixture
def targets(monkeypatch: pytest.MonkeyPatch) -> dict[str, _Target]:
    made = {"crm": _Target(), "onec": _Target()}
    monkeypatch.setattr(fixes_module, "build_adapter", lambda name, _config, session=None: made[name])
    return made


def test_the_plan_has_each_automatic_fix_once_and_no_manual_one() -> None:
    result = ReconcileResult(DAY, DAY, ["s1"], [_missing("s1"), _missing("s1"), _manual(), _missing("s2")])
    assert [fix.key for _, fix in plan_fixes(result)] == ["crm:evotor:s1:accrual", "crm:evotor:s2:accrual"]


def test_apply_writes_the_ledger_and_its_mirror_once_and_stamps_the_fixes(
    store: Store, targets: dict[str, _Target]
) -> None:
    result = ReconcileResult(DAY, DAY, ["s1"], [_missing("s1"), _manual()])
    save_result(store, start_run(store, {}), result)

    first = apply_fixes(_config(), result, store)
    second = apply_fixes(_config(), result, store)

    assert first.written == ["crm:evotor:s1:accrual", "onec:evotor:s1:accrual"]
    assert (second.written, second.failed) == ([], {})
    assert sorted(second.already) == ["crm:evotor:s1:accrual", "onec:evotor:s1:accrual"]
    assert (targets["crm"].calls, targets["onec"].calls) == (1, 1)  # the outbox answered the second time
    assert targets["onec"].kept["onec:evotor:s1:accrual"].amount == Decimal("50.00")
    with store.session() as session:
        (fix,) = session.scalars(select(Fix)).all()
        assert (fix.outbox_key, fix.applied_by) == ("crm:evotor:s1:accrual", "cli")
        assert fix.applied_at is not None
    assert store.outbox.get("crm:evotor:s1:accrual").state == "confirmed"  # type: ignore[union-attr]


def test_a_failed_write_stays_in_the_outbox_and_its_mirror_waits(
    store: Store, targets: dict[str, _Target]
) -> None:
    targets["crm"].fail = True
    report = apply_fixes(_config(), ReconcileResult(DAY, DAY, ["s1"], [_missing("s1")]), store)
    assert list(report.failed) == ["crm:evotor:s1:accrual"]
    assert "500" in report.failed["crm:evotor:s1:accrual"]
    assert targets["onec"].calls == 0
    entry = store.outbox.get("crm:evotor:s1:accrual")
    assert entry is not None
    assert (entry.state, entry.attempts) == ("failed", 1)
