"""Backend fixtures: every store test runs on SQLite (a file in tmp_path) and on PostgreSQL (a fresh schema)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from connector.store import Store, open_store
from connector.store.tables import Base
from tests.pg import backend_state_url, isolated_schema_url, require_postgres

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
    with backend_state_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def shared_pg_url() -> Iterator[str]:
    """One migrated PostgreSQL schema for the whole run; :func:`store` empties it before each test."""
    require_postgres()
    with isolated_schema_url() as url:
        open_store(url).close()
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file to copy: cheaper than migrating a new file for every test."""
    path = tmp_path_factory.mktemp("template") / "state.db"
    open_store(f"sqlite:///{path}").close()
    return path


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store on each backend, closed before its database is dropped.

    The schema is migrated once per run (a copied SQLite file, an emptied PostgreSQL schema): running the
    migrations for every test would cost more than the tests themselves. Tests of migrating use ``state_url``.
    """
    if request.param == "sqlite":
        path = tmp_path / "state.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        opened = open_store(f"sqlite:///{path}")
    else:
        opened = open_store(request.getfixturevalue("shared_pg_url"))
        _empty(opened)
    try:
        yield opened
    finally:
        opened.close()


def _empty(store: Store) -> None:
    # DELETE, not TRUNCATE, where allowed: on a handful of rows it avoids new files and their fsyncs. Postings
    # refuse DELETE by trigger (the ledger is append-only); TRUNCATE fires no row trigger.
    with store.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name == "postings":
                connection.execute(text("TRUNCATE postings"))
            else:
                connection.execute(table.delete())
