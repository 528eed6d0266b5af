"""The scheduler: leases exclusive across processes (SQLite and PostgreSQL), lost by a crashed holder after the
TTL and kept by the heartbeat; jobs stored in the state database with misfire grace and coalescing; a run stops
between items when asked and always releases its lease."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text, update

from connector.config import ConnectorConfig, ScheduleJob
from connector.errors import ConfigError
from connector.scheduler import JOB_TABLE, JobContext, Leases, ScheduleRunner, lease_name
from connector.scheduler.jobs import reconcile_job, sync_job, yesterday_in
from connector.scheduler.triggers import CRON_MISFIRE_GRACE_S, crontab_weekdays
from connector.store import Store, open_store
from connector.store.tables import Lease
from tests.pg import backend_state_url

CALLS: list[tuple[str, str]] = []
_ROUNDS = 10


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with backend_state_url(request.param, tmp_path, "lc_sched") as url:
        yield url


@pytest.fixture
def store(state_url: str) -> Iterator[Store]:
    opened = open_store(state_url)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


# ---------------------------------------------------------------- leases


def test_a_lease_is_exclusive_until_its_holder_releases_it(sqlite_store: Store) -> None:
    first = Leases(sqlite_store, holder="host-a:1:aaa")
    second = Leases(sqlite_store, holder="host-b:2:bbb")
    assert first.try_acquire("schedule:sync")
    assert not second.try_acquire("schedule:sync")
    assert first.try_acquire("schedule:sync"), "the holder may re-take its own lease"
    info = first.get("schedule:sync")
    assert info is not None
    assert info.holder == "host-a:1:aaa"
    assert info.expires_at - info.heartbeat_at == timedelta(seconds=30)
    assert not second.release("schedule:sync"), "only the holder releases"
    assert first.release("schedule:sync")
    assert second.try_acquire("schedule:sync")
    assert second.get("schedule:sync").holder == "host-b:2:bbb"  # type: ignore[union-attr]


def _race(url: str, start: Any, results: Any) -> None:
    """One racing process: for each round, wait for the others, then try that round's lease once."""
    with open_store(url) as opened:
        leases = Leases(opened, ttl=60)
        for round_ in range(_ROUNDS):
            start.wait()  # every process tries at the same moment
            results.put((round_, leases.try_acquire(f"schedule:race-{round_}"), leases.holder))


def _crashing_holder(url: str, results: Any) -> None:
    """Take the lease with a 1.5 s TTL, report, then hang until killed: never renewed, never released."""
    leases = Leases(open_store(url), ttl=1.5)
    results.put((leases.try_acquire("schedule:sync"), leases.holder))
    time.sleep(60)


def _processes() -> Any:
    # A forkserver that has imported this module once: each process is a fresh OS process with its own
    # connections, without paying the imports again (seconds each on a loaded 2-core machine).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def test_of_processes_racing_for_a_lease_exactly_one_gets_it(store: Store, state_url: str) -> None:
    # Odd rounds race for a lease a crashed holder left lapsed (the conditional UPDATE), even ones for a new row.
    lapsed = Leases(
        store, holder="crashed:1:x", ttl=60, clock=lambda: datetime.now(UTC) - timedelta(minutes=2)
    )
    for round_ in range(1, _ROUNDS, 2):
        assert lapsed.try_acquire(f"schedule:race-{round_}")
    context = _processes()
    start, results = context.Barrier(4), context.Queue()
    racers = [context.Process(target=_race, args=(state_url, start, results)) for _ in range(4)]
    for racer in racers:
        racer.start()
    outcomes = [results.get(timeout=60) for _ in range(4 * _ROUNDS)]
    for racer in racers:
        racer.join(timeout=10)
    assert [racer.exitcode for racer in racers] == [0] * 4
    for round_ in range(_ROUNDS):
        winners = [holder for number, won, holder in outcomes if number == round_ and won]
        assert len(winners) == 1, (round_, outcomes)
        assert Leases(store).get(f"schedule:race-{round_}").holder == winners[0]  # type: ignore[union-attr]


def test_a_crashed_holder_loses_the_lease_after_the_ttl(store: Store, state_url: str) -> None:
    context = _processes()
    results = context.Queue()
    child = context.Process(target=_crashing_holder, args=(state_url, results))
    child.start()
    acquired, holder = results.get(timeout=60)
    child.kill()  # SIGKILL: no release, no more heartbeats
    child.join(timeout=10)
    assert acquired
    taker = Leases(store, ttl=5)
    assert not taker.try_acquire("schedule:sync"), "still within the crashed holder's TTL"
    assert taker.get("schedule:sync").holder == holder  # type: ignore[union-attr]
    time.sleep(1.7)
    assert taker.try_acquire("schedule:sync")
    assert taker.get("schedule:sync").holder == taker.holder  # type: ignore[union-attr]


def test_the_heartbeat_keeps_a_lease_past_its_ttl_and_the_end_releases_it(sqlite_store: Store) -> None:
    holder = Leases(sqlite_store, ttl=0.5)
    other = Leases(sqlite_store, ttl=0.5)
    with holder.hold("schedule:sync", heartbeat=0.1) as held:
        assert held is not None
        for _ in range(6):  # 1.2 s: over twice the TTL
            time.sleep(0.2)
            assert not other.try_acquire("schedule:sync")
        assert not held.lost.is_set()
        with other.hold("schedule:sync", heartbeat=0.1) as refused:
            assert refused is None
    assert holder.get("schedule:sync") is None
    assert other.try_acquire("schedule:sync")


def test_a_holder_whose_lease_was_taken_sees_it_lost(sqlite_store: Store) -> None:
    holder = Leases(sqlite_store, ttl=5)
    other = Leases(sqlite_store, ttl=5)
    with holder.hold("schedule:sync", heartbeat=0.1) as held:
        assert held is not None
        with sqlite_store.engine.begin() as connection:  # as if this process had stalled past its TTL
            connection.execute(update(Lease).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        assert other.try_acquire("schedule:sync")
        assert held.lost.wait(2.0)
    assert other.get("schedule:sync").holder == other.holder  # type: ignore[union-attr]


# ---------------------------------------------------------------- triggers and jobs


@pytest.mark.parametrize(
    ("field", "expected"),
    [("1-5", "mon-fri"), ("0,6", "sun,sat"), ("7", "sun"), ("*/2", "*/2"), ("*", "*"), ("sat", "sat")],
)
def test_crontab_weekday_numbers_count_from_sunday(field: str, expected: str) -> None:
    assert crontab_weekdays(field) == expected


def test_yesterday_is_the_business_date_in_the_schedule_zone() -> None:
    # 21:30 UTC on the 22nd is 00:30 on the 23rd in Moscow: yesterday there is the 22nd.
    now = datetime(2026, 11, 22, 21, 30, tzinfo=UTC)
    assert yesterday_in("Europe/Moscow", now) == date(2026, 11, 22)
    assert yesterday_in("UTC", now) == date(2026, 11, 21)


def _config(state: str, **jobs: ScheduleJob) -> ConnectorConfig:
    return ConnectorConfig(state=state, timezone="Asia/Yekaterinburg", schedule=jobs)


def _context(store: Store, config: ConnectorConfig) -> JobContext:
    started = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)  # 01:00 on 2 March in Yekaterinburg
    return JobContext(config=config, store=store, job="nightly", stop=threading.Event(), started_at=started)


def test_the_nightly_reconcile_covers_yesterday(sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("connector.reconcile.reconcile", lambda config, **kwargs: seen.update(kwargs))
    reconcile_job(_context(sqlite_store, _config("sqlite://")))
    assert seen == {"date_from": date(2026, 3, 1), "date_to": date(2026, 3, 1), "store": sqlite_store}


def test_the_sync_job_passes_the_stop_check_when_run_sync_takes_one(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def run_sync(config: ConnectorConfig, *, store: Store, workers: int, should_stop: Any) -> None:
        seen.update(store=store, workers=workers, stopped=should_stop())

    monkeypatch.setattr("connector.sync.run_sync", run_sync)
    context = _context(sqlite_store, _config("sqlite://"))
    context.stop.set()
    sync_job(context)
    assert seen == {"store": sqlite_store, "workers": 4, "stopped": True}


def test_jobs_are_stored_with_misfire_grace_coalescing_and_the_zone(store: Store, state_url: str) -> None:
    config = _config(
        state_url,
        sync=ScheduleJob(every="2m"),
        nightly=ScheduleJob(cron="30 2 * * 1-5", run=("reconcile",)),
    )
    runner = ScheduleRunner(config, store)
    runner.start()
    try:
        assert runner.scheduler is not None
        sync, nightly = runner.scheduler.get_job("sync"), runner.scheduler.get_job("nightly")
        assert (sync.misfire_grace_time, sync.coalesce, sync.max_instances) == (120, True, 1)
        assert (nightly.misfire_grace_time, nightly.coalesce, nightly.max_instances) == (
            CRON_MISFIRE_GRACE_S,
            True,
            1,
        )
        assert nightly.trigger.timezone == ZoneInfo("Asia/Yekaterinburg")
        local = nightly.next_run_time.astimezone(ZoneInfo("Asia/Yekaterinburg"))
        assert (local.hour, local.minute) == (2, 30)
        assert local.weekday() < 5
        with store.engine.connect() as connection:
            ids = connection.execute(text(f"SELECT id FROM {JOB_TABLE} ORDER BY id")).scalars().all()
        assert ids == ["nightly", "sync"]
    finally:
        runner.shutdown()


def _stored_next_run(store: Store, job: str) -> float:
    with store.engine.connect() as connection:
        query = text(f"SELECT next_run_time FROM {JOB_TABLE} WHERE id = :id")
        return float(connection.execute(query, {"id": job}).scalar_one())


def _start_and_stop(config: ConnectorConfig, store: Store) -> None:
    runner = ScheduleRunner(config, store)
    runner.start()
    runner.shutdown()


def test_a_restart_keeps_the_stored_schedule_and_a_changed_trigger_replaces_it(sqlite_store: Store) -> None:
    config = _config("sqlite://", sync=ScheduleJob(every="1h"), stale=ScheduleJob(every="1h"))
    _start_and_stop(config, sqlite_store)
    first = _stored_next_run(sqlite_store, "sync")
    time.sleep(1.1)
    _start_and_stop(_config("sqlite://", sync=ScheduleJob(every="1h")), sqlite_store)
    assert _stored_next_run(sqlite_store, "sync") == first, "the stored next run survives a restart"
    with sqlite_store.engine.connect() as connection:
        assert connection.execute(text(f"SELECT id FROM {JOB_TABLE}")).scalars().all() == ["sync"]
    _start_and_stop(_config("sqlite://", sync=ScheduleJob(every="2h")), sqlite_store)
    assert _stored_next_run(sqlite_store, "sync") >= first + 3600


# ---------------------------------------------------------------- runs


def record_job(context: JobContext) -> None:
    """A job command for the registry: remembers it ran, and under which lease holder."""
    CALLS.append((context.job, "record"))


def failing_job(context: JobContext) -> None:
    """A job command that fails."""
    raise RuntimeError("the CRM is down")


def items_job(context: JobContext) -> None:
    """Ten items of 0.1 s, checking for a stop between items."""
    for item in range(10):
        if context.should_stop():
            return
        CALLS.append((context.job, f"item {item} start"))
        time.sleep(0.1)
        CALLS.append((context.job, f"item {item} end"))


_REGISTRY = {
    "sync": "tests.connector.test_scheduler:record_job",
    "reconcile": "tests.connector.test_scheduler:failing_job",
}


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


def test_a_run_executes_its_commands_or_skips_when_another_process_holds_the_job(sqlite_store: Store) -> None:
    config = _config("sqlite://", both=ScheduleJob(every="1h", run=("sync", "sync")))
    runner = ScheduleRunner(config, sqlite_store, registry=_REGISTRY)
    assert runner.run_job("both") == "done"
    assert CALLS == [("both", "record"), ("both", "record")]
    assert runner.leases.get(lease_name("both")) is None, "released after the run"
    other = Leases(sqlite_store, holder="elsewhere:9:x")
    assert other.try_acquire(lease_name("both"))
    assert runner.run_job("both") == "busy"
    assert len(CALLS) == 2
    assert runner.run_job("missing") == "unknown"


def test_a_failing_command_ends_the_run_and_releases_the_lease(sqlite_store: Store) -> None:
    config = _config("sqlite://", nightly=ScheduleJob(every="1h", run=("reconcile", "sync")))
    runner = ScheduleRunner(config, sqlite_store, registry=_REGISTRY)
    assert runner.run_job("nightly") == "failed"
    assert CALLS == [], "the commands after a failed one do not run"
    assert runner.leases.get(lease_name("nightly")) is None


def test_a_stop_request_lets_the_current_item_finish(sqlite_store: Store) -> None:
    config = _config("sqlite://", sync=ScheduleJob(every="1h"))
    runner = ScheduleRunner(
        config, sqlite_store, registry={"sync": "tests.connector.test_scheduler:items_job"}
    )
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(runner.run_job("sync")))
    worker.start()
    time.sleep(0.25)
    runner.request_stop()
    worker.join(5)
    assert outcome == ["stopped"]
    started = [step for _, step in CALLS if step.endswith("start")]
    assert 2 <= len(started) < 10
    assert CALLS[-1] == ("sync", f"item {len(started) - 1} end"), "the item in progress finished"
    assert runner.leases.get(lease_name("sync")) is None
    assert runner.run_job("sync") == "stopped", "no new run after a stop request"


def test_an_unknown_command_is_refused_at_construction(sqlite_store: Store) -> None:
    config = _config("sqlite://", sync=ScheduleJob(every="1h"))
    with pytest.raises(ConfigError, match=r"schedule\.sync\.run names 'sync'"):
        ScheduleRunner(config, sqlite_store, registry={"reconcile": "x:y"})


def test_only_one_runner_per_process(sqlite_store: Store) -> None:
    config = _config("sqlite://", sync=ScheduleJob(every="1h"))
    first = ScheduleRunner(config, sqlite_store)
    first.start()
    try:
        with pytest.raises(ConfigError, match="already running"):
            ScheduleRunner(config, sqlite_store).start()
    finally:
        first.shutdown()
