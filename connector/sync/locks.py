"""Who may sync what, when several ``sync`` processes share one state database.

* PostgreSQL: each partition (and each pulled stream) is guarded by a session-level advisory lock,
  ``pg_try_advisory_lock(key)``, taken on a connection held while the partition is processed. A second process
  skips a partition it cannot lock (the holder is doing it); a process that dies loses its locks with its
  connection, so SIGKILL leaves nothing to clean up.
* Writers to other systems: a ``sync`` run holds the run lock *shared* and ``reconcile --fix --apply`` holds it
  *exclusive* (:func:`process_lock` with ``exclusive=True``), so a fix never writes a key at the same moment as a
  sync that could write the same key (a missing accrual is fixed under the sync's own key). On PostgreSQL it is a
  session-level advisory lock (syncs still run side by side); on SQLite the file lock below is exclusive anyway.
* SQLite: one writer at a time is all the file allows, so the whole run takes an exclusive ``flock`` on
  ``<database>.sync.lock`` beside the file. A second ``sync`` waits up to ``wait`` seconds for it, then stops with
  :class:`SyncBusyError` naming the holder's pid; the kernel drops the lock when the holder dies.
* A run that died without finishing (SIGKILL, a crash, the machine lost) would stay ``running`` in ``runs``
  forever. While a sync runs it holds :func:`run_presence`; the next sync asks :func:`abandoned_runs` which
  ``running`` syncs no live process holds and records them ``interrupted``. On PostgreSQL presence is an advisory
  lock named after the run (the server drops it with the dead process's connection); on SQLite the next sync
  holds the exclusive file lock, so every other ``running`` sync is dead.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, text

from connector.errors import StoreError
from connector.store import Store

__all__ = [
    "SyncBusyError",
    "abandoned_runs",
    "lock_key",
    "partition_lock",
    "process_lock",
    "run_presence",
    "run_registry",
]

_POLL_S = 0.2


class SyncBusyError(StoreError):
    """Another ``sync`` holds the SQLite state database; only one runs at a time there."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a partition name (the same in every process)."""
    return int.from_bytes(
        hashlib.sha256(f"loyalty-connector:{name}".encode()).digest()[:8], "big", signed=True
    )


@contextmanager
def partition_lock(store: Store, name: str) -> Iterator[bool]:
    """Hold partition ``name`` for the block; yields False when another process holds it (PostgreSQL).

    On SQLite the process lock already excludes other processes: always True.
    """
    if store.dialect != "postgresql":
        yield True
        return
    key = lock_key(name)
    with store.engine.connect() as connection:
        taken = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        connection.commit()
        try:
            yield taken
        finally:
            if taken:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()


def _lock_path(store: Store) -> Path | None:
    database = store.engine.url.database
    if store.dialect != "sqlite" or database in (None, "", ":memory:"):
        return None
    return Path(str(database)).with_name(Path(str(database)).name + ".sync.lock")


@contextmanager
def process_lock(store: Store, *, wait: float = 0.0, exclusive: bool = False) -> Iterator[None]:
    """Hold the run lock: shared by ``sync`` runs, exclusive for applying reconciliation fixes.

    Args:
        store: the open state database.
        wait: seconds to wait for the holders to finish before giving up.
        exclusive: for a writer that must not overlap any sync (PostgreSQL; on SQLite every holder is exclusive).

    Raises:
        SyncBusyError: another process holds the lock after ``wait`` seconds.
    """
    if store.dialect == "postgresql":
        with _advisory_run_lock(store, wait=wait, exclusive=exclusive):
            yield
        return
    path = _lock_path(store)
    if path is None:
        yield
        return
    with path.open("a+") as handle:
        _acquire(handle, path, wait)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _advisory_run_lock(store: Store, *, wait: float, exclusive: bool) -> Iterator[None]:
    take = "pg_try_advisory_lock" if exclusive else "pg_try_advisory_lock_shared"
    release = "pg_advisory_unlock" if exclusive else "pg_advisory_unlock_shared"
    deadline = time.monotonic() + wait
    with store.engine.connect() as connection:
        # Advisory locks span the whole server: scope the key to this state (database and schema).
        key = lock_key(f"run:{_state_scope(connection)}")
        while not connection.execute(text(f"SELECT {take}(:k)"), {"k": key}).scalar():
            connection.rollback()  # leave no transaction open while waiting
            if time.monotonic() >= deadline:
                raise SyncBusyError(
                    "fixes are being applied on this state database; try again when they end"
                    if not exclusive
                    else "a sync is running on this state database; apply the fixes when it ends, or pass --wait",
                )
            time.sleep(_POLL_S)
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text(f"SELECT {release}(:k)"), {"k": key})
            connection.commit()


def _state_scope(connection: Connection) -> str:
    """Advisory locks span the whole server: keys are scoped to this state (database and schema)."""
    return str(connection.execute(text("SELECT current_database() || '.' || current_schema()")).scalar())


@contextmanager
def run_presence(store: Store, run_id: int) -> Iterator[None]:
    """Mark run ``run_id`` alive for other processes while the block runs (PostgreSQL; see the module doc).

    Call it inside :func:`process_lock`, so that on SQLite the file lock says the same.
    """
    with _state_lock(store, f"run-alive:{{scope}}:{run_id}"):
        yield


@contextmanager
def run_registry(store: Store) -> Iterator[None]:
    """Hold while finding abandoned runs, or while starting a run and taking its :func:`run_presence`.

    PostgreSQL: without it, one sync could see another's run row in the moment between its insert and its
    presence lock, and record a live run ``interrupted``. SQLite: the file lock already excludes that.
    """
    with _state_lock(store, "run-registry:{scope}"):
        yield


@contextmanager
def _state_lock(store: Store, name: str) -> Iterator[None]:
    """PostgreSQL: hold the advisory lock ``name`` (``{scope}`` filled with this state's scope), waiting for it,
    on a connection kept for the block. SQLite: nothing to hold."""
    if store.dialect != "postgresql":
        yield
        return
    with store.engine.connect() as connection:
        key = lock_key(name.format(scope=_state_scope(connection)))
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            connection.commit()


def abandoned_runs(store: Store, running: list[int]) -> list[int]:
    """Which of these ``running`` sync runs no live process holds; call it holding :func:`process_lock` and
    :func:`run_registry`.

    SQLite: the caller's exclusive file lock means no other sync is alive — all of them (none for a database
    without a file, where there is no lock to tell). PostgreSQL: those whose :func:`run_presence` lock is free.
    """
    if store.dialect != "postgresql":
        return list(running) if _lock_path(store) is not None else []
    dead = []
    with store.engine.connect() as connection:
        scope = _state_scope(connection)
        for run_id in running:
            key = lock_key(f"run-alive:{scope}:{run_id}")
            if connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                dead.append(run_id)
        connection.commit()
    return dead


def _acquire(handle: IO[str], path: Path, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise SyncBusyError(
                    "another sync is running on this SQLite state database (one at a time on SQLite; use "
                    "PostgreSQL to run several); try again when it ends, or pass --wait SECONDS",
                    lock=str(path),
                    pid=holder,
                ) from None
            time.sleep(_POLL_S)
