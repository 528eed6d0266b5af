"""The journal reader: the same records as the parsed documents, a store-day at a time, on both backends.

A sandbox world is reconciled with a state database (its pulls fill the journal, the compare stage streams it);
the reader's records are then held to what :func:`document_record` makes of the journal's parsed documents, and
the result to the world's answer key (precision and recall 100 %), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest

from connector.config import ConnectorConfig, load_config
from connector.reconcile import reconcile
from connector.reconcile.match import final_pass, store_day_pass
from connector.reconcile.model import DocRecord
from connector.reconcile.reader import window_pairs
from connector.reconcile.snapshot import SharedValues, document_record
from connector.sandbox.generator import SandboxOptions
from connector.sandbox.server import SandboxServer
from connector.sandbox.world import World
from connector.store import Store, open_store
from connector.store.journal import Journal
from tests.connector.reconcile.sandbox import sandbox_config
from tests.pg import backend_state_url

KEY = "Комментарий"
TOLERANCE = Decimal("0.01")
DOCUMENT_KINDS = {
    "missing_in_right",
    "missing_in_left",
    "amount_mismatch",
    "line_mismatch",
    "customer_mismatch",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with backend_state_url(request.param, tmp_path, "lc_reader") as url:
        yield url


@pytest.fixture(params=[1, 2, 3, 4, 5])
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[World, ConnectorConfig]]:
    options = SandboxOptions(
        seed=request.param, stores=2, days=3, receipts=14
    )  # the answer-key test's worlds
    with SandboxServer(options, rate_per_second=0) as server:
        yield server.world, load_config(sandbox_config(server, tmp_path))


def _window(world: World) -> tuple[date, date]:
    return world.start, world.start + timedelta(days=world.days - 1)


def _answer(world: World) -> set[tuple[str, str, str, tuple[tuple[str, str], ...]]]:
    return {
        (e.kind, e.store, e.business_date.isoformat(), tuple(sorted(e.refs.items())))
        for e in world.answer_key
    }


def _parsed(store: Store, system: str, first: date, last: date) -> list[DocRecord]:
    """The journal path before the reader: every entry parsed and reduced by ``document_record``."""
    shared, out = SharedValues(), []
    for entry in Journal(store.sessions).documents_in_window(system, None, first, last):
        document = entry.document
        if document is not None:
            key = entry.raw.get(KEY) if isinstance(entry.raw, dict) else None
            out.append(document_record(document, str(key) if key else None, shared))
    return out


def _documents_compared(
    store: Store, window: tuple[date, date], workers: int
) -> tuple[list[str], dict[str, int], int]:
    """The ``{evotor, onec}`` comparison alone, its store-days in ``workers`` processes: its discrepancies,
    the documents it counted and how many other processes reported their memory."""
    pairs = window_pairs(store, ("evotor", "onec"), window, key_fields={"onec": KEY}, workers=workers)
    run = partial(store_day_pass, systems=("evotor", "onec"), window=window, tolerance=TOLERANCE)
    found = final_pass(pairs.passes(run), systems=("evotor", "onec"), window=window, tolerance=TOLERANCE,
                       known_left=pairs.left_ids, payloads=pairs.payloads)  # fmt: skip
    return sorted(map(repr, found.discrepancies)), pairs.counts, len(pairs.worker_peak_rss_mb)


def _id(record: DocRecord) -> str:
    return record.id


def test_reconcile_through_the_journal_reports_the_answer_key_and_reads_what_the_documents_say(
    sandbox: tuple[World, ConnectorConfig], state_url: str
) -> None:
    world, config = sandbox
    first, last = _window(world)
    with open_store(state_url) as store:
        result = reconcile(config, date_from=first, date_to=last, store=store)
        found = {
            (d.kind, d.store or "", d.business_date.isoformat() if d.business_date else "",
             tuple(sorted(d.refs.items())))
            for d in result.discrepancies
        }  # fmt: skip
        assert found == _answer(world)  # nothing else (precision), nothing missed (recall)
        assert result.documents_compared["evotor"] == len(world.receipts)

        pairs = window_pairs(store, ("evotor", "onec"), (first, last), key_fields={"onec": KEY})
        streamed: dict[str, list[DocRecord]] = {"evotor": [], "onec": []}
        days = []
        for left, right in pairs.groups():
            streamed["evotor"] += left
            streamed["onec"] += right
            days.append({(doc.store, doc.business_date) for doc in (*left, *right)})
        edge = (first - timedelta(days=1), last + timedelta(days=1))
        for system, records in streamed.items():
            expected = _parsed(store, system, *edge)
            assert len(records) == len(expected) > 0
            assert sorted(records, key=_id) == sorted(expected, key=_id)
        alone, shared = (_documents_compared(store, (first, last), workers) for workers in (1, 2))
    assert alone[0] == sorted(map(repr, (d for d in result.discrepancies if d.kind in DOCUMENT_KINDS)))
    assert shared[0] == alone[0]  # two processes sharing the store-days find the same
    assert shared[1] == alone[1] == {"evotor": len(world.receipts), "onec": pairs.counts["onec"]}
    assert shared[2] == 1  # one more process did its share and said how much memory it took
    assert all(len(day) == 1 for day in days)  # one store-day per group
    assert len(days) == len({next(iter(day)) for day in days})  # each store-day once
    assert pairs.counts["evotor"] == len(world.receipts)
