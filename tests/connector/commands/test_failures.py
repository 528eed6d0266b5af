"""``failures list|show|retry|skip`` and ``runs list|show`` after a sync that parked a malformed receipt."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.connector.sync.conftest import SyncWorld, start_world

Cli = Callable[..., CliResult]


@pytest.fixture
def parked(tmp_path: Path, run_cli: Cli) -> Iterator[tuple[SyncWorld, dict[str, object]]]:
    for sw in start_world(tmp_path, malformed=True):
        assert run_cli("sync", "--config", str(sw.config_path)).code == 1
        listed = run_cli("failures", "list", "--config", str(sw.config_path), "--format", "json")
        (item,) = json.loads(listed.out)
        yield sw, item


def test_list_shows_the_parked_document_with_its_reason(parked: tuple[SyncWorld, dict[str, object]]) -> None:
    _, item = parked
    assert item["route"] == "pull:evotor"
    assert item["state"] == "open"
    assert item["error_kind"] == "permanent"
    assert item["attempts"] == 1
    assert "customer.phone" in str(item["error"])
    assert isinstance(item["document"], dict)
    assert item["document"]["system"] == "evotor"


def test_list_filters_and_table(run_cli: Cli, parked: tuple[SyncWorld, dict[str, object]]) -> None:
    sw, item = parked
    config = str(sw.config_path)
    none = run_cli("failures", "list", "--config", config, "--system", "crm", "--format", "json")
    assert json.loads(none.out) == []
    by_route = run_cli("failures", "list", "--config", config, "--route", "pull:evotor", "--format", "json")
    assert [i["id"] for i in json.loads(by_route.out)] == [item["id"]]
    table = run_cli("failures", "list", "--config", config)
    assert table.code == 0
    assert "pull:evotor" in table.out
    assert "permanent" in table.out


def test_show_prints_one_item(run_cli: Cli, parked: tuple[SyncWorld, dict[str, object]]) -> None:
    sw, item = parked
    shown = run_cli("failures", "show", str(item["id"]), "--config", str(sw.config_path), "--format", "json")
    assert json.loads(shown.out) == item
    missing = run_cli("failures", "show", "999", "--config", str(sw.config_path))
    assert missing.code == 2
    assert "no failed item 999" in missing.err


def test_skip_needs_a_reason_and_records_who(
    run_cli: Cli, parked: tuple[SyncWorld, dict[str, object]]
) -> None:
    sw, item = parked
    config = str(sw.config_path)
    assert run_cli("failures", "skip", str(item["id"]), "--config", config).code == 2  # --reason is required
    done = run_cli("failures", "skip", str(item["id"]), "--config", config, "--reason", "test receipt",
                   "--by", "anna")  # fmt: skip
    assert done.code == 0
    shown = json.loads(
        run_cli("failures", "show", str(item["id"]), "--config", config, "--format", "json").out
    )
    assert (shown["state"], shown["skipped_by"], shown["skip_reason"]) == ("skipped", "anna", "test receipt")
    # nothing open is left: the next sync exits 0
    assert run_cli("sync", "--config", config).code == 0


def test_retry_queues_it_and_rerun_failed_tries_it_again(
    run_cli: Cli, parked: tuple[SyncWorld, dict[str, object]]
) -> None:
    sw, item = parked
    config = str(sw.config_path)
    assert run_cli("failures", "retry", str(item["id"]), "--config", config).code == 0
    assert run_cli("sync", "--config", config, "--rerun-failed").code == 1  # the payload is still malformed
    shown = json.loads(
        run_cli("failures", "show", str(item["id"]), "--config", config, "--format", "json").out
    )
    assert (shown["state"], shown["attempts"]) == ("open", 2)


def test_runs_list_and_show(run_cli: Cli, parked: tuple[SyncWorld, dict[str, object]]) -> None:
    sw, _ = parked
    config = str(sw.config_path)
    runs = json.loads(run_cli("runs", "list", "--config", config, "--format", "json").out)
    assert [run["status"] for run in runs] == ["failed_items"]
    assert runs[0]["totals"]["failed"] == 1
    assert runs[0]["args"]["scope"] == "incremental"
    shown = json.loads(
        run_cli("runs", "show", str(runs[0]["id"]), "--config", config, "--format", "json").out
    )
    assert sum(figures["fetched"] for figures in shown["counts"]["evotor"].values()) == len(sw.world.receipts)
    table = run_cli("runs", "show", str(runs[0]["id"]), "--config", config)
    assert "failed_items" in table.out
    assert run_cli("runs", "show", "42", "--config", config).code == 2
