"""SQLite's WAL is checkpointed by a thread woken by the commits, not inside the commits."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.store import open_store
from connector.store.checkpoint import WalCheckpointer
from connector.store.engine import wal_checkpointer
from connector.store.journal import Journal, JournalWrite
from connector.store.types import JSONBytes


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_what_the_commits_append_to_the_wal_reaches_the_database_file_from_the_checkpoint_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    with open_store(f"sqlite:///{path}") as store:
        checkpointer = wal_checkpointer(store.engine)
        assert checkpointer is not None
        checkpointer.idle = 0.1
        journal = Journal(store.sessions)
        before = path.stat().st_size
        text = JSONBytes(('{"id": "x", "note": "' + "я" * 2000 + '"}').encode())  # 4 KB a row: 2 MB in all
        for page in range(5):
            writes = [
                JournalWrite("SELL", f"d-{page}-{n}", "v1", text, None, store="s-1") for n in range(100)
            ]
            journal.upsert_many("evotor", writes)
        assert _until(lambda: not checkpointer.running())  # idle: its last checkpoint done, the thread ended
        # SQLite's own checkpoint waits for 10,000 WAL pages (40 MB): the 2 MB reached the file by the thread.
        assert path.stat().st_size - before > 2_000_000
        assert checkpointer.checkpoints >= 1
        with sqlite3.connect(path) as connection:
            busy, frames, done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert (busy, frames) == (0, done)  # nothing left in the WAL that the file lacks
        assert len(journal.find("d-4-99")) == 1


def test_the_thread_ends_when_idle_and_a_commit_starts_it_again(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x)")
    checkpointer = WalCheckpointer(str(path), spacing=0.01, idle=0.05)
    checkpointer.notify()
    assert checkpointer.running()
    assert _until(lambda: not checkpointer.running())
    first = checkpointer.checkpoints
    assert first >= 2  # the one asked for, and the last one before ending
    checkpointer.notify()
    assert checkpointer.running()
    assert _until(lambda: not checkpointer.running())
    assert checkpointer.checkpoints > first


def test_a_database_it_cannot_open_ends_the_thread_and_is_never_created(tmp_path: Path) -> None:
    for missing in (tmp_path / "missing" / "state.db", tmp_path / "gone.db"):
        checkpointer = WalCheckpointer(str(missing), idle=0.05)
        checkpointer.notify()
        assert _until(lambda checkpointer=checkpointer: not checkpointer.running())
        assert checkpointer.checkpoints == 0
        assert not missing.exists()  # the commits' own checkpoints take over; no stray empty database


def test_a_relative_state_path_is_checkpointed_where_it_was_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///relative.db") as store:
        checkpointer = wal_checkpointer(store.engine)
        assert checkpointer is not None
        assert checkpointer.path == str(tmp_path / "relative.db")


def test_only_a_sqlite_file_has_a_checkpoint_thread(tmp_path: Path) -> None:
    with open_store("sqlite:///:memory:") as memory:
        assert wal_checkpointer(memory.engine) is None
    with open_store(f"sqlite:///{tmp_path / 'file.db'}") as file:
        assert wal_checkpointer(file.engine) is not None


def test_closing_the_store_stops_the_thread_first_so_the_database_file_alone_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = open_store(f"sqlite:///{path}")
    checkpointer = wal_checkpointer(store.engine)
    assert checkpointer is not None
    checkpointer.idle = 60.0  # still running when the store closes
    Journal(store.sessions).upsert_many("evotor", [JournalWrite("SELL", "d-1", "v1", JSONBytes(b"{}"), None)])
    assert checkpointer.running()
    store.close()
    assert not checkpointer.running()
    assert not path.with_name("state.db-wal").exists()  # the last connection checkpointed and removed it
    copy = tmp_path / "copy.db"
    copy.write_bytes(path.read_bytes())
    with sqlite3.connect(copy) as connection:
        assert connection.execute("SELECT source_id FROM documents").fetchall() == [("d-1",)]
