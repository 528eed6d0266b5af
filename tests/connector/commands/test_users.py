"""``users add|role|token|list``: console accounts from the command line, audited."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.store import open_store
from connector.store.tables import AuditEntry
from connector.web.auth import authenticate, token_user
from tests.conftest import CliResult

Run = Callable[..., CliResult]


@pytest.fixture
def state(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


def test_add_reads_the_password_from_the_environment_or_stdin(
    run_cli: Run, state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LC_PASSWORD", "from the environment")
    assert (
        run_cli("users", "add", "oleg", "--role", "operator", "--state", state).out
        == "added oleg (operator)\n"
    )
    monkeypatch.delenv("LC_PASSWORD")
    monkeypatch.setattr("sys.stdin", io.StringIO("from standard input\n"))
    assert run_cli("users", "add", "vera", "--state", state).out == "added vera (viewer)\n"
    with open_store(state) as store:
        oleg = authenticate(store, "oleg", "from the environment")
        vera = authenticate(store, "vera", "from standard input")
        assert oleg is not None
        assert oleg.role == "operator"
        assert vera is not None
        assert vera.role == "viewer"
        with store.session() as session:
            audit = [(e.who, e.action, e.target, e.outcome) for e in session.scalars(select(AuditEntry))]
    assert audit == [("cli", "user.add", "oleg", "ok"), ("cli", "user.add", "vera", "ok")]


def test_bad_role_is_an_error_naming_the_field(
    run_cli: Run, state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LC_PASSWORD", "long enough")
    result = run_cli("users", "add", "nina", "--role", "boss", "--state", state)
    assert result.code == 2
    assert "role must be one of viewer, operator, admin" in result.err


def test_token_is_printed_once_and_works(run_cli: Run, state: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_PASSWORD", "long enough")
    run_cli("users", "add", "robot", "--role", "operator", "--state", state)
    token = run_cli("users", "token", "robot", "--state", state).out.strip()
    assert token.startswith("lct_")
    with open_store(state) as store:
        user = token_user(store, token)
    assert user is not None
    assert (user.name, user.role) == ("api:robot", "operator")
    listed = json.loads(run_cli("users", "list", "--format", "json", "--state", state).out)
    assert listed == [
        {"name": "api:robot", "role": "operator", "locale": "ru", "token": True},
        {"name": "robot", "role": "operator", "locale": "ru", "token": False},
    ]
    run_cli("users", "role", "robot", "admin", "--state", state)
    assert "robot                            admin" in run_cli("users", "list", "--state", state).out
