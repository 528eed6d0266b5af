"""Named leases in the state database: at most one process runs a scheduled job at a time.

A lease is a row of ``leases`` (:class:`~connector.store.tables.Lease`): ``holder`` is ``host:pid:uuid``,
``expires_at`` is the last heartbeat plus the TTL. Taking it is one atomic statement pair in one transaction —
``INSERT … ON CONFLICT (name) DO NOTHING``, then, when the row exists, ``UPDATE … WHERE name = :name AND
(expires_at < :now OR holder = :me)`` — so exactly one of several racing processes gets a row count of 1, on
SQLite (one writer at a time) and on PostgreSQL (the second UPDATE waits for the first and re-checks its WHERE
against the committed row). A holder renews the lease from a heartbeat thread; a crashed holder stops renewing
and anyone may take the lease once ``expires_at`` has passed. Times come from each process's UTC clock, so the
hosts sharing a database must keep their clocks in sync (NTP) to well within the TTL.

Example:
    >>> leases = Leases(store, ttl=30.0)                     # doctest: +SKIP
    >>> with leases.hold("schedule:sync", heartbeat=5.0) as held:
    ...     if held is not None:
    ...         do_work(should_stop=held.lost.is_set)
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from connector.logs import get_logger
from connector.store import Store
from connector.store.tables import Lease

__all__ = ["HeldLease", "LeaseInfo", "Leases", "holder_id"]

_log = get_logger(__name__)
_LEASES: Table = Lease.__table__  # type: ignore[assignment]


def holder_id() -> str:
    """``host:pid:uuid`` — unique per process even when pids are reused or hosts share a name."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LeaseInfo:
    """A lease row as read: who holds it, since when, its last heartbeat and when it lapses."""

    name: str
    holder: str
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        """True once ``expires_at`` has passed: the holder stopped renewing and anyone may take it."""
        return self.expires_at < now

    def heartbeat_age(self, now: datetime) -> float:
        """Seconds since the holder's last heartbeat."""
        return (now - self.heartbeat_at).total_seconds()


@dataclass
class HeldLease:
    """A lease this process holds; ``lost`` is set when a renewal finds it taken or lapsed."""

    name: str
    holder: str
    lost: threading.Event


class Leases:
    """Take, renew, release and read named leases in one state database.

    Args:
        store: the open state database.
        ttl: seconds a lease stays valid after its last heartbeat.
        holder: this process's holder id (default :func:`holder_id`).
        clock: the current UTC time; tests pass their own.
    """

    def __init__(
        self,
        store: Store,
        *,
        ttl: float = 30.0,
        holder: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if ttl <= 0:
            raise ValueError("the lease TTL must be positive")
        self.store = store
        self.ttl = timedelta(seconds=ttl)
        self.holder = holder or holder_id()
        self.clock = clock

    def try_acquire(self, name: str) -> bool:
        """Take lease ``name`` if it is free, lapsed, or already ours; False when someone else holds it."""
        now = self.clock()
        with self.store.engine.begin() as connection:
            if self._insert(connection, name, now):
                return True
            result = connection.execute(
                update(_LEASES)
                .where(_LEASES.c.name == name)
                .where((_LEASES.c.expires_at < now) | (_LEASES.c.holder == self.holder))
                .values(
                    holder=self.holder,
                    acquired_at=case((_LEASES.c.holder == self.holder, _LEASES.c.acquired_at), else_=now),
                    heartbeat_at=now,
                    expires_at=now + self.ttl,
                )
            )
            return result.rowcount == 1

    def _insert(self, connection: Connection, name: str, now: datetime) -> bool:
        values: dict[str, Any] = {
            "name": name,
            "holder": self.holder,
            "acquired_at": now,
            "heartbeat_at": now,
            "expires_at": now + self.ttl,
        }
        insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
        statement = insert(_LEASES).values(**values).on_conflict_do_nothing(index_elements=["name"])
        return connection.execute(statement).rowcount == 1

    def renew(self, name: str) -> bool:
        """Push ``expires_at`` one TTL past now; False when the lease is no longer ours (taken after lapsing)."""
        now = self.clock()
        with self.store.engine.begin() as connection:
            result = connection.execute(
                update(_LEASES)
                .where(_LEASES.c.name == name, _LEASES.c.holder == self.holder)
                .values(heartbeat_at=now, expires_at=now + self.ttl)
            )
            return result.rowcount == 1

    def release(self, name: str) -> bool:
        """Give lease ``name`` up at once (only if ours); True when a row was ours and is gone."""
        with self.store.engine.begin() as connection:
            result = connection.execute(
                delete(_LEASES).where(_LEASES.c.name == name, _LEASES.c.holder == self.holder)
            )
            return result.rowcount == 1

    def get(self, name: str) -> LeaseInfo | None:
        """The lease row ``name`` (held, or lapsed and not yet taken), or None."""
        with self.store.engine.connect() as connection:
            row = connection.execute(select(_LEASES).where(_LEASES.c.name == name)).mappings().first()
        if row is None:
            return None
        return LeaseInfo(
            name=row["name"],
            holder=row["holder"],
            acquired_at=row["acquired_at"],
            heartbeat_at=row["heartbeat_at"],
            expires_at=row["expires_at"],
        )

    @contextmanager
    def hold(
        self, name: str, *, heartbeat: float, lost: threading.Event | None = None
    ) -> Iterator[HeldLease | None]:
        """Hold lease ``name`` for the block, renewed every ``heartbeat`` seconds; yields None if it is taken.

        The lease is released when the block ends, however it ends. If a renewal finds the lease gone (this
        process stalled past the TTL and another took it), ``HeldLease.lost`` is set: the work should stop.

        Args:
            name: the lease.
            heartbeat: seconds between renewals; well under the TTL.
            lost: the event to set when the lease is lost (e.g. the job's own stop event); default a new one.
        """
        if not self.try_acquire(name):
            yield None
            return
        held = HeldLease(name=name, holder=self.holder, lost=lost or threading.Event())
        stop = threading.Event()
        thread = threading.Thread(
            target=self._heartbeat, args=(held, stop, heartbeat), name=f"lease-{name}", daemon=True
        )
        thread.start()
        try:
            yield held
        finally:
            stop.set()
            thread.join()
            self._release_quietly(name)

    def _heartbeat(self, held: HeldLease, stop: threading.Event, interval: float) -> None:
        deadline = self.clock() + self.ttl
        while not stop.wait(interval):
            try:
                if not self.renew(held.name):
                    _log.error("lease lost to another process", lease=held.name, holder=self.holder)
                    held.lost.set()
                    return
                deadline = self.clock() + self.ttl
            except SQLAlchemyError as exc:
                # A database hiccup: keep trying until the lease would have lapsed anyway.
                _log.warning("lease renewal failed", lease=held.name, error=str(exc).splitlines()[0])
                if self.clock() >= deadline:
                    held.lost.set()
                    return

    def _release_quietly(self, name: str) -> None:
        try:
            self.release(name)
        except SQLAlchemyError as exc:
            # It lapses after the TTL anyway; failing to release must not hide the job's own outcome.
            _log.warning("lease release failed", lease=name, error=str(exc).splitlines()[0])
