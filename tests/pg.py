"""PostgreSQL for tests: one fresh schema per test run, so helpers sharing the server never see each other.

Usage from any test directory::

    from tests.pg import isolated_schema_url, require_postgres

    @pytest.fixture
    def pg_url():
        require_postgres()                      # skips, with the reason, when no server answers
        with isolated_schema_url() as url:      # creates lc_<random>, drops it afterwards
            yield url

The URL carries ``options=-csearch_path=<schema>``, so every connection made from it — the store's, Alembic's
version table, a subprocess's — lives in that schema alone. Dispose engines made from it before the block ends,
or the ``DROP SCHEMA`` waits for their open transactions.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

__all__ = [
    "PG_DSN",
    "PG_HOST",
    "PG_PORT",
    "backend_state_url",
    "isolated_schema_url",
    "postgres_unreachable",
    "require_postgres",
]

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_DSN = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test"
_PG_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test"

_probe: list[str | None] = []


def postgres_unreachable() -> str | None:
    """None when the test server answers within a second, else why not (checked once per process)."""
    if not _probe:
        _probe.append(_probe_server())
    return _probe[0]


def _probe_server() -> str | None:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            pass
        with psycopg.connect(PG_DSN, connect_timeout=1, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except (OSError, psycopg.Error) as exc:
        return f"{exc.__class__.__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return None


def require_postgres() -> None:
    """Skip the calling test, with the reason shown, when no PostgreSQL answers at 127.0.0.1:5432."""
    reason = postgres_unreachable()
    if reason is not None:
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: {reason}")


@contextmanager
def isolated_schema_url(prefix: str = "lc") -> Iterator[str]:
    """Create a schema ``<prefix>_<random>``, yield a SQLAlchemy URL confined to it, then drop it.

    Args:
        prefix: the start of the schema name (letters, digits and underscores).
    """
    schema = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(PG_DSN, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{_PG_URL}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def backend_state_url(backend: str, directory: Path, prefix: str = "lc") -> Iterator[str]:
    """An empty state database URL on ``backend``: ``sqlite`` (a file in ``directory``) or ``postgresql`` (a fresh
    schema named ``prefix_<random>``, dropped afterwards; skips when no server answers)."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'state.db'}"
        return
    require_postgres()
    with isolated_schema_url(prefix) as url:
        yield url
