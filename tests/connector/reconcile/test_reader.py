"""The journal reader: the same records as the parsed documents, a store-day at a time, on both backends.

A sandbox world is reconciled with a state database (its pulls fill the journal, the compare stage streams it);
the reader's records are then held to what :func:`document_record` makes of the journal's parsed documents, and
the result to the world's answer key (precision and recall 100 %), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from connector.config import ConnectorConfig, load_config
from connector.reconcile import reconcile
from connector.reconcile.model import DocRecord
from connector.reconcile.reader import window_pairs
from connector.reconcile.snapshot import SharedValues, document_record
from connector.sandbox.generator import SandboxOptions
from connector.sandbox.server import SandboxServer
from connector.sandbox.world import World
from connector.store import Store, open_store
from connector.store.journal import Journal
from tests.connector.reconcile.sandbox import sandbox_config
from tests.pg import isolated_schema_url, require_postgres

KEY = "Комментарий"


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    require_postgres()
    with isolated_schema_url("lc_reader") as url:
        yield url


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[World, ConnectorConfig]]:
    with SandboxServer(SandboxOptions(seed=3, stores=2, days=3, receipts=14), rate_per_second=0) as server:
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
    assert all(len(day) == 1 for day in days)  # one store-day per group
    assert len(days) == len({next(iter(day)) for day in days})  # each store-day once
    assert pairs.counts["evotor"] == len(world.receipts)
