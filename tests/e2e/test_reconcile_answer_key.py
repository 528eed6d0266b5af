"""Reconcile a generated sandbox world and hold the result to its answer key: precision and recall both 100 %."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from connector.config import ConnectorConfig, load_config
from connector.discrepancies import ReconcileResult
from connector.reconcile import apply_fixes, reconcile
from connector.sandbox.generator import SandboxOptions
from connector.sandbox.server import SandboxServer
from connector.sandbox.world import World
from connector.store import open_store
from tests.connector.reconcile.sandbox import sandbox_config

FIXED_SEEDS = (1, 2, 3, 4, 5)
"""Worlds known to inject every fixable kind; a random seed's small world may lack one (no return of a sale that
earned points, hence no reversal to leave out), and is then held to exactness only."""
RANDOM_SEED = random.SystemRandom().randrange(1000, 10**6)
FIXED = {"missing_in_right", "missing_accrual", "accrual_mismatch", "missing_reversal", "duplicate_posting"}


@pytest.fixture
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[World, ConnectorConfig]]:
    seed: int = request.param
    print(f"sandbox seed {seed}")  # reproduce a failure with this seed
    options = SandboxOptions(seed=seed, stores=2, days=3, receipts=14)
    with SandboxServer(options, rate_per_second=0) as server:
        yield server.world, load_config(sandbox_config(server, tmp_path))


def _found(result: ReconcileResult) -> set[tuple[str, str, str, tuple[tuple[str, str], ...]]]:
    return {
        (
            d.kind,
            d.store or "",
            d.business_date.isoformat() if d.business_date else "",
            tuple(sorted(d.refs.items())),
        )
        for d in result.discrepancies
    }


def _key(world: World) -> set[tuple[str, str, str, tuple[tuple[str, str], ...]]]:
    return {
        (e.kind, e.store, e.business_date.isoformat(), tuple(sorted(e.refs.items())))
        for e in world.answer_key
    }


def _window(world: World) -> dict[str, object]:
    return {"date_from": world.start, "date_to": world.start + timedelta(days=world.days - 1)}


@pytest.mark.parametrize("sandbox", [*FIXED_SEEDS, RANDOM_SEED], indirect=True)
def test_reconcile_reports_exactly_the_answer_key(sandbox: tuple[World, ConnectorConfig]) -> None:
    world, config = sandbox
    steps: dict[str, tuple[int, int]] = {}
    result = reconcile(config, progress=lambda step, done, total: steps.update({step: (done, total)}),
                       **_window(world))  # type: ignore[arg-type]  # fmt: skip
    assert steps == {"evotor: receipts": (2, 2), "onec: receipts": (2, 2), "crm: ledger": (1, 1),
                     "onec: ledger": (1, 1)}  # fmt: skip
    assert result.documents_compared["evotor"] == len(world.receipts)
    found, expected = _found(result), _key(world)
    if world.seed in FIXED_SEEDS:
        assert {kind for kind, *_ in expected} >= FIXED  # every fixable kind is injected
    assert found - expected == set(), "false positives"
    assert expected - found == set(), "missed"


@pytest.mark.slow
@pytest.mark.parametrize("sandbox", [2], indirect=True)
def test_applied_fixes_clear_their_kinds_and_a_second_apply_writes_nothing(
    sandbox: tuple[World, ConnectorConfig],
) -> None:
    world, config = sandbox
    with open_store(config.state) as store, requests.Session() as session:
        before = reconcile(config, store=store, session=session, **_window(world))  # type: ignore[arg-type]
        first = apply_fixes(config, before, store, session=session)
        assert first.failed == {}
        assert len(first.written) >= sum(1 for d in before.discrepancies if d.kind in FIXED)
        after = reconcile(config, store=store, session=session, **_window(world))  # type: ignore[arg-type]
        assert {d.kind for d in after.discrepancies} & FIXED == set()
        untouched = {(k, s, d, r) for k, s, d, r in _found(before) if k not in FIXED}
        assert _found(after) == untouched
        second = apply_fixes(config, before, store, session=session)
        assert (second.written, second.failed) == ([], {})
        assert len(second.already) == len(first.written) + len(first.already)
