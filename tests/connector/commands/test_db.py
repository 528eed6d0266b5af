"""``db upgrade`` and ``db current``: the state database is created and upgraded by its migrations."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.pg import isolated_schema_url, require_postgres

Run = Callable[..., CliResult]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'connector.db'}"


def test_current_on_a_missing_file_says_none_and_creates_nothing(run_cli: Run, tmp_path: Path) -> None:
    result = run_cli("db", "current", "--state", f"sqlite:///{tmp_path / 'connector.db'}")
    assert result.code == 0
    assert result.out == "none (no database yet: run `loyalty-connector db upgrade`)\n"
    assert not (tmp_path / "connector.db").exists()


def test_upgrade_creates_the_database_then_reports_it_current(
    run_cli: Run, sqlite_url: str, tmp_path: Path
) -> None:
    first = run_cli("db", "upgrade", "--state", sqlite_url)
    assert first.code == 0
    assert first.out.endswith("upgraded from an empty database to revision 0004 (newest)\n")
    assert (tmp_path / "state" / "connector.db").is_file()
    # The WAL checkpointer closed first, so the last connection folded the WAL into the file and removed it.
    assert not (tmp_path / "state" / "connector.db-wal").exists()
    again = run_cli("db", "upgrade", "--state", sqlite_url)
    assert again.out.endswith("already at revision 0004 (newest)\n")
    assert run_cli("db", "current", "--state", sqlite_url).out == "0004 (newest)\n"


def test_the_state_url_comes_from_lc_state(
    run_cli: Run, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LC_STATE", sqlite_url)
    assert run_cli("db", "upgrade").code == 0
    assert run_cli("db", "current").out == "0004 (newest)\n"


def test_the_default_is_connector_db_in_the_current_directory(
    run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LC_STATE", raising=False)
    result = run_cli("db", "upgrade")
    assert result.out == "sqlite:///connector.db: upgraded from an empty database to revision 0004 (newest)\n"
    assert (tmp_path / "connector.db").is_file()


def test_an_unreachable_database_is_one_line_exit_2_without_the_password(run_cli: Run) -> None:
    result = run_cli("db", "upgrade", "--state", "postgresql://lc:s3cret@127.0.0.1:1/state?connect_timeout=1")
    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith("error: cannot open the state database")
    assert "lc:***@127.0.0.1:1/state" in result.err
    assert "s3cret" not in result.err
    assert result.err.count("\n") == 1


def test_a_url_of_another_database_is_refused(run_cli: Run) -> None:
    result = run_cli("db", "current", "--state", "mysql://localhost/db")
    assert result.code == 2
    assert "must be SQLite or PostgreSQL" in result.err


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_postgres()
    with isolated_schema_url() as url:
        yield url


@pytest.mark.postgres
def test_upgrade_and_current_on_postgresql(run_cli: Run, pg_url: str) -> None:
    assert run_cli("db", "current", "--state", pg_url).out.startswith("none (empty database")
    result = run_cli("db", "upgrade", "--state", pg_url)
    assert result.code == 0
    assert "upgraded from an empty database to revision 0004" in result.out
    assert run_cli("db", "current", "--state", pg_url).out == "0004 (newest)\n"


def test_upgrade_uses_the_state_of_the_config(
    run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LC_STATE", raising=False)
    config = tmp_path / "connector.yaml"
    config.write_text("state: sqlite:///from-config.db\n", encoding="utf-8")
    result = run_cli("db", "upgrade", "--config", str(config))
    assert result.code == 0
    assert (tmp_path / "from-config.db").exists()
    assert "from-config.db" in result.out
