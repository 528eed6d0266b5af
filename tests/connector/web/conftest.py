"""Fixtures of the console tests: a seeded SQLite state database, the console mounted on an app, users."""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from adapters.base import WriteResult
from connector.errors import RemoteError
from connector.model import Posting
from connector.reconcile import fixes as fixes_module
from connector.store import Store, open_store
from connector.web.auth import create_user
from connector.web.console import ConsoleState, install_console

from .seed import NOW, Seeded, cheap_hashes, console_config, seed

with warnings.catch_warnings():
    # Starlette asks for httpx2 instead of httpx; the client works the same for these tests.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Seeded]:
    # Migrating and hashing three passwords takes seconds: done once, then the file is copied per test.
    path = tmp_path_factory.mktemp("template") / "state.db"
    with open_store(f"sqlite:///{path}") as opened, cheap_hashes():
        for name, role in (("vera", "viewer"), ("oleg", "operator"), ("alla", "admin")):
            create_user(opened, name, role, PASSWORD)
        seeded = seed(opened)
    return path, seeded


@pytest.fixture
def store(tmp_path: Path, _template: tuple[Path, Seeded]) -> Iterator[Store]:
    """A migrated state database with a viewer (vera), an operator (oleg) and an admin (alla), seeded."""
    shutil.copy(_template[0], tmp_path / "state.db")
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


@pytest.fixture
def seeded(_template: tuple[Path, Seeded]) -> Seeded:
    """The ids of the seeded scene (see :mod:`.seed`)."""
    return _template[1]


@pytest.fixture
def console(store: Store, seeded: Seeded) -> tuple[FastAPI, ConsoleState]:
    app = FastAPI()
    state = install_console(
        app, console_config(str(store.engine.url)), store, clock=lambda: NOW, probe_systems=False
    )
    return app, state


@pytest.fixture
def client(console: tuple[FastAPI, ConsoleState]) -> Iterator[TestClient]:
    with TestClient(console[0], base_url="http://testserver") as test_client:
        yield test_client


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a rendered page carries."""
    found = _CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def login(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Sign in through the login form; returns the CSRF token of the session's pages."""
    token = csrf_of(client.get("/console/login").text)
    answer = client.post("/console/login", data={"name": name, "password": password, "csrf_token": token})
    assert answer.status_code == 200, answer.text[:500]
    return csrf_of(answer.text)


class RecordingTarget:
    """The CRM as the fix writer sees it: keeps each posting written under its key, once."""

    def __init__(self) -> None:
        self.kept: dict[str, Posting] = {}
        self.fail = False

    def write_posting(self, posting: Posting, key: str) -> WriteResult:
        if self.fail:
            raise RemoteError("the CRM answered 503", system="crm")
        created = key not in self.kept
        self.kept.setdefault(key, posting)
        return WriteResult(key, f"op-{len(self.kept)}", created)


@pytest.fixture
def crm(monkeypatch: pytest.MonkeyPatch) -> RecordingTarget:
    """Fixes applied from the console are written to this recording target instead of a real CRM."""
    target = RecordingTarget()
    monkeypatch.setattr(fixes_module, "build_adapter", lambda _name, _config, session=None: target)
    return target
