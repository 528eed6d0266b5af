"""``sync`` against the sandbox: exit codes, the table and JSON reports, the failed-items hint, bad scopes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.connector.sync.conftest import SyncWorld, start_world

Cli = Callable[..., CliResult]


@pytest.fixture
def broken_world(tmp_path: Path) -> Iterator[SyncWorld]:
    yield from start_world(tmp_path, malformed=True)


def test_sync_exits_0_when_everything_was_written_and_prints_json(run_cli: Cli, tmp_path: Path) -> None:
    for sw in start_world(tmp_path):
        result = run_cli("sync", "--config", str(sw.config_path), "--format", "json")
        assert result.code == 0, result.err
        report = json.loads(result.out)
        assert report["exit_code"] == 0
        assert report["failed_open"] == 0
        assert report["totals"]["fetched"] >= len(sw.world.receipts)
        assert report["totals"]["written"] >= len(sw.crm_keys) + len(sw.receipt_keys)
        assert set(report["counts"]) == {"evotor", "crm", "onec"}
        assert set(report) == {"run_id", "exit_code", "failed_open", "failed_now", "partitions", "duration_s",
                               "stages", "totals", "counts"}  # fmt: skip
        stages = report["stages"]
        assert set(stages) == {"pull", "map", "write"}
        assert stages["pull"] > 0
        assert stages["map"] > 0
        assert stages["pull"] + stages["write"] <= report["duration_s"]
        assert report["totals"]["mapped"] >= len(sw.world.receipts)


def test_sync_exits_1_and_says_how_many_failed_and_where_to_look(
    run_cli: Cli, broken_world: SyncWorld
) -> None:
    result = run_cli("sync", "--config", str(broken_world.config_path), "--workers", "2")
    assert result.code == 1
    assert "1 failed item(s) left (1 from this run): see `loyalty-connector failures list`" in result.err
    assert "written" in result.out  # the table's header


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-11-02"], "needs both --from and --to"),
        (["--from", "2026-11-03", "--to", "2026-11-02"], "is after --to"),
        (["--from", "yesterday", "--to", "2026-11-02"], "is not a date"),
        (["--rerun-failed", "--document", "x"], "choose one scope"),
        (["--format", "xml"], "choose table or json"),
    ],
)
def test_a_bad_scope_is_an_error_exit_2(run_cli: Cli, tmp_path: Path, args: list[str], message: str) -> None:
    config = tmp_path / "connector.yaml"
    config.write_text(f"state: sqlite:///{tmp_path / 'state.db'}\n", encoding="utf-8")
    result = run_cli("sync", "--config", str(config), *args)
    assert result.code == 2
    assert message in result.err


def test_sync_without_a_config_is_an_error_exit_2(run_cli: Cli, tmp_path: Path) -> None:
    result = run_cli("sync", "--config", str(tmp_path / "missing.yaml"))
    assert result.code == 2
    assert "no config at" in result.err
