"""Two sync processes on one database: never the same partition at once (PostgreSQL), one at a time (SQLite)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest

from connector.store import open_store
from connector.store.runs import Runs
from connector.sync.locks import (
    SyncBusyError,
    abandoned_runs,
    lock_key,
    partition_lock,
    process_lock,
    run_presence,
)


def test_a_second_sync_on_the_same_sqlite_file_stops_with_a_clear_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(url) as store, process_lock(store):
        # Another process (the kernel's flock is per open file): it must refuse, naming the lock and the holder.
        code = textwrap.dedent(f"""
            from connector.store import open_store
            from connector.sync.locks import SyncBusyError, process_lock
            with open_store({url!r}) as store:
                try:
                    with process_lock(store, wait=0.3):
                        print("acquired")
                except SyncBusyError as exc:
                    print("busy:", exc)
        """)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                check=True)  # fmt: skip
    assert result.stdout.startswith("busy: another sync is running on this SQLite state database")
    assert "state.db.sync.lock" in result.stdout


def test_the_sqlite_lock_is_free_again_after_the_run(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        with process_lock(store):
            pass
        with process_lock(store, wait=0):
            assert (tmp_path / "state.db.sync.lock").exists()


def test_in_one_process_a_held_sqlite_lock_is_refused_too(tmp_path: Path) -> None:
    with (
        open_store(f"sqlite:///{tmp_path / 'state.db'}") as store,
        process_lock(store),
        pytest.raises(SyncBusyError, match="pass --wait SECONDS"),
        process_lock(store, wait=0),
    ):
        pass


@pytest.mark.postgres
def test_a_partition_held_by_one_connection_is_skipped_by_another(pg_state: str) -> None:
    first, second = open_store(pg_state), open_store(pg_state)
    try:
        with partition_lock(first, "evotor->crm:postings:s-1:2026-11-02") as mine:
            assert mine
            with partition_lock(second, "evotor->crm:postings:s-1:2026-11-02") as theirs:
                assert not theirs
            with partition_lock(second, "evotor->crm:postings:s-1:2026-11-03") as other_day:
                assert other_day
        with partition_lock(second, "evotor->crm:postings:s-1:2026-11-02") as now_free:
            assert now_free
    finally:
        first.close()
        second.close()


def test_lock_keys_are_stable_signed_64_bit_integers() -> None:
    key = lock_key("evotor->crm:postings:s-1:2026-11-02")
    assert key == lock_key("evotor->crm:postings:s-1:2026-11-02")
    assert -(2**63) <= key < 2**63
    assert key != lock_key("evotor->crm:postings:s-1:2026-11-03")


@pytest.mark.postgres
def test_syncs_share_the_run_lock_and_applying_fixes_excludes_them(pg_state: str) -> None:
    one, two, fixer = open_store(pg_state), open_store(pg_state), open_store(pg_state)
    try:
        with (  # two syncs side by side; applying fixes must wait for them
            process_lock(one),
            process_lock(two),
            pytest.raises(SyncBusyError, match="a sync is running"),
            process_lock(fixer, wait=0, exclusive=True),
        ):
            pass
        with (  # no sync now: the fixes go ahead, and a sync waits for them
            process_lock(fixer, exclusive=True),
            pytest.raises(SyncBusyError, match="fixes are being applied"),
            process_lock(one, wait=0),
        ):
            pass
        with process_lock(one):
            pass  # free again
    finally:
        for store in (one, two, fixer):
            store.close()


def test_fixes_are_not_applied_while_a_sync_holds_the_sqlite_state(tmp_path: Path) -> None:
    from connector.config import ConnectorConfig
    from connector.discrepancies import ReconcileResult
    from connector.reconcile import apply_fixes

    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(url) as store, process_lock(store):
        result = ReconcileResult(date_from=date(2026, 11, 1), date_to=date(2026, 11, 1), stores=[])
        with pytest.raises(SyncBusyError):
            apply_fixes(ConnectorConfig(state=url), result, store, wait=0)


@pytest.mark.postgres
def test_a_live_run_is_not_taken_for_dead_and_a_dead_one_is(pg_state: str) -> None:
    with open_store(pg_state) as store:
        runs = Runs(store.sessions)
        live, dead = runs.start("sync", {}), runs.start("sync", {})
        with run_presence(store, live):
            assert abandoned_runs(store, [live, dead]) == [dead]
        assert abandoned_runs(store, [live, dead]) == [live, dead], "its process ended: nothing holds it"


def test_on_sqlite_every_running_sync_is_dead_once_the_file_lock_is_ours(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store, process_lock(store):
        run = Runs(store.sessions).start("sync", {})
        assert abandoned_runs(store, [run]) == [run]
    with open_store("sqlite://") as memory:  # no file, no lock to tell by: nothing is declared dead
        assert abandoned_runs(memory, [1]) == []
