"""A small clean sandbox world served over loopback, and a connector.yaml pointing at it, per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from connector.config import ConnectorConfig, load_config
from connector.sandbox.generator import SandboxOptions, generate_world
from connector.sandbox.server import SandboxServer
from connector.sandbox.world import World
from tests.e2e.sync_support import expected_keys, seed_opening_balances, write_config
from tests.pg import isolated_schema_url, require_postgres


@dataclass
class SyncWorld:
    """A running sandbox with its world, the config for it, and what a full sync must write."""

    world: World
    base_url: str
    config: ConnectorConfig
    config_path: Path
    crm_keys: set[str]
    receipt_keys: set[str]


def start_world(tmp_path: Path, *, state: str | None = None, malformed: bool = False) -> Iterator[SyncWorld]:
    """Serve a 2-store, 2-day clean world and yield it with its config (the generator of the fixtures)."""
    world = generate_world(
        SandboxOptions(
            seed=5, stores=2, days=2, receipts=6, customers=12, clean=True, start=date(2026, 11, 2)
        )
    )
    crm_keys, receipt_keys = expected_keys(world)
    if malformed:
        from tests.e2e.sync_support import inject_malformed_receipt

        inject_malformed_receipt(world)
    with SandboxServer(world, rate_per_second=0) as sandbox:
        seed_opening_balances(sandbox.base_url, world)
        path = write_config(world, sandbox.base_url, tmp_path, state=state)
        yield SyncWorld(world, sandbox.base_url, load_config(path), path, crm_keys, receipt_keys)


@pytest.fixture
def synced_world(tmp_path: Path) -> Iterator[SyncWorld]:
    """A fresh sandbox per test (writes change it) and a SQLite state beside the config."""
    yield from start_world(tmp_path)


@pytest.fixture
def pg_state() -> Iterator[str]:
    """A PostgreSQL state URL in a fresh schema; skips without a server."""
    require_postgres()
    with isolated_schema_url() as url:
        yield url
