"""Smoke runs of the benchmarks at tiny sizes: the JSON a reader relies on is there, numeric and consistent.

The numbers themselves (speed, memory) are what the benchmarks report, not what these tests hold: timed
assertions on a shared machine would fail by accident. What is held is that each figure is computed from the
others as documented, that the writes and discrepancies are counted right, and that the targets are printed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from connector.bench import sync_bench
from connector.bench.common import Target, verdict_lines
from connector.bench.reconcile_data import KINDS
from connector.bench.sandbox_proc import system_of
from connector.bench.sync_bench import API_MINIMUM, run_sync_bench
from connector.sync.pull import PullReport


def _json(run_cli: Callable[..., Any], *args: str) -> dict[str, Any]:
    result = run_cli(*args)
    assert result.code == 0, result.err
    data: dict[str, Any] = json.loads(result.out)
    return data


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_bench_sync_json_counts_requests_per_write(run_cli: Callable[..., Any]) -> None:
    data = _json(run_cli, "bench", "sync", "--receipts", "35", "--stores", "1", "--latency-ms", "5",
                 "--workers", "2", "--rounds", "2", "--json")  # fmt: skip
    for name in ("receipts", "ours_s", "baseline_s", "ratio", "peak_rss_mb", "sync_s", "map_s", "write_s",
                 "pull_map_s"):  # fmt: skip
        assert _number(data[name]), name
    assert data["receipts"] >= 35
    # The sync's pull stage (its round's) and the write stage (the map inside it) are parts of the sync's time.
    assert data["rounds"][-1]["ours_s"] + data["write_s"] <= data["sync_s"] + 1e-3
    assert 0 < data["map_s"] <= data["write_s"] * data["workers"] + 1e-3
    assert data["pull_map_ratio"] == pytest.approx(data["pull_map_s"] / data["baseline_s"], rel=1e-3)
    assert data["documents_downloaded"] == data["documents_pulled"] == data["receipts"]
    assert data["ratio"] == pytest.approx(data["ours_s"] / data["baseline_s"], rel=1e-3)
    # Two rounds of a baseline then a pull, the last one's pull the sync's own; the median (the upper of two)
    # is the round reported.
    assert [measured["stage"] for measured in data["rounds"]] == ["pull", "sync"]
    for measured in data["rounds"]:
        assert measured["ratio"] == pytest.approx(measured["ours_s"] / measured["baseline_s"], rel=1e-3)
    assert data["ratio"] == max(measured["ratio"] for measured in data["rounds"])
    assert set(data["requests_per_write"]) == set(API_MINIMUM) == {"crm", "onec"}
    assert data["failed"] == 0
    assert data["written"]["onec"] == data["receipts"]  # every receipt into 1C, each create + Post
    for target, ratio in data["requests_per_write"].items():
        made = sum(n for key, n in data["requests"].items() if key.startswith(f"{target} "))
        assert ratio == pytest.approx(made / (API_MINIMUM[target] * data["written"][target]), rel=1e-3)
    assert data["requests"]["onec POST"] == 2 * data["written"]["onec"]
    assert data["peak_rss_mb"] > 50


def test_a_pull_round_that_lands_less_than_the_baseline_downloaded_is_no_measure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def landed_half(*args: Any, **kwargs: Any) -> PullReport:
        return PullReport(fetched=4, new=4)  # the baseline downloads the world's 7 receipts (1 a day)

    monkeypatch.setattr(sync_bench, "pull_window", landed_half)
    with pytest.raises(RuntimeError, match="the pull landed 4 of 7 documents"):
        run_sync_bench(receipts=7, stores=1, latency_ms=0, workers=1, rounds=2)


def test_bench_sync_prints_targets_with_verdicts(run_cli: Callable[..., Any]) -> None:
    result = run_cli(
        "bench", "sync", "--receipts", "7", "--stores", "1", "--latency-ms", "0", "--workers", "1"
    )
    assert result.code == 0, result.err
    assert "load average" in result.out
    assert "pull stage / baseline (ratio)" in result.out
    assert "round 3: baseline" in result.out  # three rounds by default, the last the sync's
    assert "the sync's pull stage" in result.out
    assert result.out.count("(the median)") == 1
    assert "target ≤ 1.5" in result.out
    assert "requests per write, onec" in result.out
    assert "peak RSS, MB" in result.out
    assert ("PASS" in result.out) or ("MISS" in result.out)


def test_bench_reconcile_json_finds_exactly_the_injected(run_cli: Callable[..., Any]) -> None:
    data = _json(run_cli, "bench", "reconcile", "--rows", "1500", "--json")
    for name in ("rows", "ours_s", "duckdb_s", "datacompy_s", "ours_peak_rss_mb", "speed_vs_duckdb"):
        assert _number(data[name]), name
    assert data["rows"] == 1500
    assert data["rows_read"] == {"evotor": 1500, "onec": 1500}
    assert data["speed_vs_duckdb"] == pytest.approx(data["duckdb_s"] / data["ours_s"], rel=1e-3)
    assert data["ours_s"] == pytest.approx(data["ours_load_s"] + data["ours_compare_s"], abs=2e-3)
    injected = {kind: data["injected"][kind] for kind in KINDS}
    assert all(count > 0 for count in injected.values()), injected
    assert data["found"] == injected  # ours: every injected difference, nothing else
    assert data["duckdb_found"] == injected  # the baseline decides the same
    assert data["datacompy_found"]["missing_in_right"] == injected["missing_in_right"]
    assert (
        data["datacompy_found"]["mismatched_rows"] == injected["amount_mismatch"] + injected["line_mismatch"]
    )


@pytest.mark.slow
def test_bench_reconcile_end_to_end_replays_the_same_requests(run_cli: Callable[..., Any]) -> None:
    data = _json(run_cli, "bench", "reconcile", "--end-to-end", "--receipts", "40", "--stores", "1",
                 "--workers", "2", "--json")  # fmt: skip
    assert data["ratio"] == pytest.approx(data["ours_s"] / data["baseline_s"], rel=1e-3)
    assert data["baseline_statuses"] == {"200": sum(data["requests"].values())}
    assert data["documents_compared"]["evotor"] == data["receipts"]
    assert data["summary"], "the default world holds injected discrepancies"


def test_targets_pass_and_miss() -> None:
    under = Target("ratio", 1.2, 1.5)
    over = Target("speed", 0.3, 0.5, at_least=True)
    assert under.ok
    assert "PASS" in under.line()
    assert not over.ok
    assert "MISS" in over.line()
    assert "≥ 0.5" in over.line()
    assert verdict_lines([under, over])[-1] == "MISSED: speed"


@pytest.mark.parametrize(
    ("path", "system"),
    [("/1c/ut/odata/standard.odata/Document_ЧекККМ", "onec"), ("/evotor/stores", "evotor"),
     ("/crm/api/v5/loyalty/bonus/operations", "crm"), ("/__sandbox/info", "sandbox")],
)  # fmt: skip
def test_requests_are_counted_per_system(path: str, system: str) -> None:
    assert system_of(path) == system
