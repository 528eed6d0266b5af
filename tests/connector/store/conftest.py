"""Backend fixtures: every store test runs on SQLite (a file in tmp_path) and on PostgreSQL (a fresh schema)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/ is a package; make the repository root importable however pytest was started (tests.pg is shared).
_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from connector.store import Store, open_store  # noqa: E402
from tests.pg import isolated_schema_url, require_postgres  # noqa: E402

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL confined to a fresh schema, dropped afterwards; skips when no server answers."""
    require_postgres()
    with isolated_schema_url() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty state database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    require_postgres()
    with isolated_schema_url() as url:
        yield url


@pytest.fixture
def store(state_url: str) -> Iterator[Store]:
    """A migrated store on each backend, closed before its database is dropped."""
    opened = open_store(state_url)
    try:
        yield opened
    finally:
        opened.close()
