"""``schedule run`` and ``schedule list``: two processes on one database never run a job at once, SIGTERM lets
the current item finish and exits 0 with the lease released, and the list shows triggers, next runs in the
schedule's zone and lease holders, as a table and as JSON."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import signal
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connector.config import load_config
from connector.scheduler import JobContext, Leases, ScheduleRunner, lease_name
from connector.store import open_store
from tests.conftest import CliResult
from tests.pg import backend_state_url

Run = Callable[..., CliResult]


def _schedule_run(config: str, record: str, items: int, item_s: float, out: str, err: str) -> None:
    """The body of one ``schedule run`` process: the ``schedule`` command group itself, logging at INFO as
    ``--verbose`` does, with only the registry's ``sync`` pointed at :func:`recording_job`."""
    os.environ.update(LC_TEST_RECORD=record, LC_TEST_ITEMS=str(items), LC_TEST_ITEM_S=str(item_s))
    for descriptor, path in ((1, out), (2, err)):
        with open(path, "w") as file:
            os.dup2(file.fileno(), descriptor)
    from connector.commands.schedule import app
    from connector.logs import configure_logging
    from connector.scheduler import jobs

    jobs.JOBS["sync"] = "tests.connector.commands.test_schedule:recording_job"
    configure_logging("INFO")
    app(["run", "--config", config, "--heartbeat", "0.2", "--lease-ttl", "5"], prog_name="loyalty-connector")


def _record(**fields: Any) -> None:
    line = json.dumps({"pid": os.getpid(), "at": time.time(), **fields}) + "\n"
    # O_APPEND: lines from several processes never interleave.
    descriptor = os.open(os.environ["LC_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


def recording_job(context: JobContext) -> None:
    """A scheduled ``sync`` stand-in: ``LC_TEST_ITEMS`` items of ``LC_TEST_ITEM_S`` seconds, each recorded."""
    run = uuid.uuid4().hex[:8]
    _record(run=run, event="begin")
    for item in range(int(os.environ["LC_TEST_ITEMS"])):
        if context.should_stop():
            _record(run=run, event="stopped")
            return
        _record(run=run, event="item-start", item=item)
        time.sleep(float(os.environ["LC_TEST_ITEM_S"]))
        _record(run=run, event="item-end", item=item)
    _record(run=run, event="end")


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with backend_state_url(request.param, tmp_path, "lc_schedule") as url:
        yield url


def _write_config(tmp_path: Path, state: str, schedule: str) -> Path:
    path = tmp_path / "connector.yaml"
    path.write_text(f"state: {state}\ntimezone: Europe/Moscow\nschedule:\n{textwrap.indent(schedule, '  ')}")
    return path


@dataclass
class _Child:
    process: Any  # multiprocessing.Process
    out: Path
    err: Path


def _start(config: Path, record: Path, items: int, item_s: float) -> _Child:
    # A forkserver that has imported this module once: each ``schedule run`` is a fresh OS process (its own
    # main thread, signal handlers and connections) without paying the imports again.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    name = uuid.uuid4().hex[:6]
    out, err = config.parent / f"{name}.out", config.parent / f"{name}.err"
    args = (str(config), str(record), items, item_s, str(out), str(err))
    process = context.Process(target=_schedule_run, args=args)
    process.start()
    return _Child(process, out, err)


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _wait_for(path: Path, event: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while sum(r["event"] == event for r in _records(path)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} {event!r} records after {timeout}s"
        time.sleep(0.1)


def _stop(children: list[_Child], signum: int = signal.SIGTERM) -> list[tuple[str, str]]:
    for child in children:
        os.kill(child.process.pid, signum)
    for child in children:
        child.process.join(timeout=30)
        if child.process.is_alive():  # a hang fails the test on its exit code, without leaving the process
            child.process.kill()
            child.process.join()
    return [(child.out.read_text(), child.err.read_text()) for child in children]


def _runs(records: list[dict[str, Any]]) -> list[tuple[float, float, int]]:
    """(start, finish, pid) of every run, in start order."""
    spans: dict[str, list[float]] = {}
    pids: dict[str, int] = {}
    for record in records:
        spans.setdefault(record["run"], []).append(record["at"])
        pids[record["run"]] = record["pid"]
    return sorted((min(times), max(times), pids[run]) for run, times in spans.items())


@pytest.mark.slow
def test_two_schedule_run_processes_never_run_the_job_at_once(tmp_path: Path, state_url: str) -> None:
    # Each run (3 x 0.4 s) outlasts the 1 s interval, so both processes keep finding the job due while it runs.
    config = _write_config(tmp_path, state_url, "fast: {every: 1s}\n")
    record = tmp_path / "runs.jsonl"
    children = [_start(config, record, items=3, item_s=0.4) for _ in range(2)]
    _wait_for(record, "end", 3, timeout=60)
    outputs = _stop(children)
    assert [child.process.exitcode for child in children] == [0, 0], [err[-2000:] for _, err in outputs]
    runs = _runs(_records(record))
    assert len(runs) >= 3
    for (_, finished, _), (started, _, _) in itertools.pairwise(runs):
        assert started >= finished, f"runs overlap: {runs}"
    assert any("job is running elsewhere" in err for _, err in outputs), "the two processes never contended"
    with open_store(state_url) as store:
        assert Leases(store).get(lease_name("fast")) is None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_lets_the_current_item_finish_releases_the_lease_and_exits_0(
    tmp_path: Path, signum: int
) -> None:
    state = f"sqlite:///{tmp_path / 'state.db'}"
    config = _write_config(tmp_path, state, "fast: {every: 1s}\n")
    record = tmp_path / "runs.jsonl"
    child = _start(config, record, items=50, item_s=0.3)
    _wait_for(record, "item-start", 2, timeout=60)
    [(out, err)] = _stop([child], signum)
    assert child.process.exitcode == 0, err[-2000:]
    assert out.splitlines()[-1] == "scheduler stopped"
    events = [(r["event"], r.get("item")) for r in _records(record)]
    started = [item for event, item in events if event == "item-start"]
    assert 2 <= len(started) < 50
    assert events[-2:] == [("item-end", started[-1]), ("stopped", None)], "the item in progress finished"
    with open_store(state) as store:
        assert Leases(store).get(lease_name("fast")) is None


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    schedule = 'fast: {every: 1s}\nnightly: {cron: "30 2 * * *", run: [reconcile]}\n'
    return _write_config(tmp_path, f"sqlite:///{tmp_path / 'state.db'}", schedule)


def test_list_as_json_before_any_scheduler_ran(run_cli: Run, config_path: Path) -> None:
    result = run_cli("schedule", "list", "--config", str(config_path), "--format", "json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["timezone"] == "Europe/Moscow"
    fast, nightly = document["jobs"]
    assert {
        key: fast[key] for key in ("name", "schedule", "run", "misfire_grace_s", "coalesce", "lease")
    } == {
        "name": "fast",
        "schedule": "every 1s",
        "run": ["sync"],
        "misfire_grace_s": 1,
        "coalesce": True,
        "lease": None,
    }
    assert fast["next_run_stored"] is False
    assert fast["next_run"].endswith("+03:00")
    assert nightly["schedule"] == "cron 30 2 * * *"
    assert nightly["run"] == ["reconcile"]
    assert nightly["misfire_grace_s"] == 6 * 3600
    assert nightly["next_run"].endswith("T02:30:00+03:00")


def test_list_shows_stored_next_runs_and_the_lease_holder(run_cli: Run, config_path: Path) -> None:
    config = load_config(config_path)
    with open_store(config.state) as store:
        runner = ScheduleRunner(config, store)
        runner.start()
        runner.scheduler.pause_job("fast")  # type: ignore[union-attr]
        runner.shutdown()
        assert Leases(store, holder="till-host:4242:cafe").try_acquire(lease_name("nightly"))
    result = run_cli("schedule", "list", "--config", str(config_path), "--format", "json")
    fast, nightly = json.loads(result.out)["jobs"]
    assert (fast["next_run_stored"], fast["next_run"]) == (True, None), "a paused job has no next run"
    assert nightly["next_run_stored"] is True
    assert nightly["next_run"].endswith("T02:30:00+03:00")
    lease = nightly["lease"]
    assert lease["holder"] == "till-host:4242:cafe"
    assert lease["expired"] is False
    assert 0 <= lease["heartbeat_age_s"] < 30
    assert set(lease) == {"holder", "acquired_at", "heartbeat_at", "heartbeat_age_s", "expires_at", "expired"}

    table = run_cli("schedule", "list", "--config", str(config_path))
    assert table.code == 0, table.err
    assert "Scheduled jobs (Europe/Moscow)" in table.out
    nightly_row = next(line for line in table.out.splitlines() if "nightly" in line)
    assert "cron 30 2 * * *" in nightly_row
    assert "02:30:00 MSK" in nightly_row
    assert "till-host:4242:cafe" in nightly_row
    assert "s ago" in nightly_row
    fast_row = next(line for line in table.out.splitlines() if "fast" in line)
    assert "paused" in fast_row


def test_run_without_jobs_says_so_and_exits_1(run_cli: Run, tmp_path: Path) -> None:
    config = tmp_path / "connector.yaml"
    config.write_text(f"state: sqlite:///{tmp_path / 'state.db'}\n")
    result = run_cli("schedule", "run", "--config", str(config))
    assert result.code == 1
    assert "no jobs under schedule:" in result.err
