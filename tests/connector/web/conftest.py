"""Fixtures of the console tests: a seeded SQLite state database, the console mounted on an app, users."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from connector.store import Store, open_store
from connector.web.auth import create_user
from connector.web.console import ConsoleState, install_console

from .seed import NOW, Seeded, seed, test_config

with warnings.catch_warnings():
    # Starlette asks for httpx2 instead of httpx; the client works the same for these tests.
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated, seeded state database with a viewer, an operator and an admin."""
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        for name, role in (("vera", "viewer"), ("oleg", "operator"), ("alla", "admin")):
            create_user(opened, name, role, PASSWORD)
        yield opened


@pytest.fixture
def seeded(store: Store) -> Seeded:
    return seed(store)


@pytest.fixture
def console(store: Store, seeded: Seeded) -> tuple[FastAPI, ConsoleState]:
    app = FastAPI()
    state = install_console(
        app, test_config(str(store.engine.url)), store, clock=lambda: NOW, probe_systems=False
    )
    return app, state


@pytest.fixture
def client(console: tuple[FastAPI, ConsoleState]) -> Iterator[TestClient]:
    with TestClient(console[0], base_url="http://testserver") as test_client:
        yield test_client
