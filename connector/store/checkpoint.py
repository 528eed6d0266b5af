"""SQLite WAL checkpoints off the writers' path: a thread of their own, woken by commits.

In WAL mode a commit appends pages to the ``-wal`` file; a *checkpoint* copies them into the database file and
syncs both. By default the connection whose commit takes the WAL past ``wal_autocheckpoint`` pages runs the
checkpoint inside that commit, and SQLite has one writer: in a sync, every thread waiting for the writer's turn
(:meth:`connector.sync.context.SyncContext.writing`) waits for the copy and the two syncs too. A pull landing a
hundred thousand receipts spent about a quarter of its time there (``benchmarks/README.md``).

:class:`WalCheckpointer` takes that work off the commits: a commit only wakes its thread, which runs a
``PASSIVE`` checkpoint (it neither blocks nor waits for readers and the writer) on its own connection, at most
every ``spacing`` seconds, one last time after ``idle`` seconds without commits, and then ends (the next commit
starts it again). The connections keep ``wal_autocheckpoint`` as a backstop should the thread fall behind.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from connector.logs import get_logger

__all__ = ["WalCheckpointer"]

_log = get_logger("connector.store.checkpoint")


class WalCheckpointer:
    """Checkpoints one SQLite database file's WAL from a background thread; :meth:`notify` after a commit.

    Args:
        path: the database file, absolute.
        spacing: seconds at least between two checkpoints.
        idle: seconds without a commit after which the thread checkpoints once more and ends.

    Attributes:
        checkpoints: checkpoints run so far (all threads).
    """

    def __init__(self, path: str, *, spacing: float = 0.2, idle: float = 5.0) -> None:
        self.path = path
        self.spacing = spacing
        self.idle = idle
        self.checkpoints = 0
        self._pending = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def notify(self) -> None:
        """A commit happened (or is about to): checkpoint soon, starting the thread if it is not running."""
        with self._lock:
            self._pending.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
                self._thread.start()

    def running(self) -> bool:
        """Whether the thread is running now."""
        with self._lock:
            return self._thread is not None

    def stop(self) -> None:
        """End the thread and close its connection, so that the store's last connection to close checkpoints
        what is left and removes the WAL (a copy of the database file alone is then whole). The next commit
        starts it again."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            self._stopping.set()
            self._pending.set()
        thread.join()
        with self._lock:
            self._stopping.clear()
            self._pending.clear()

    def _run(self) -> None:
        try:
            # Read-write of an existing file only: a checkpointer never creates a database.
            connection = sqlite3.connect(f"{Path(self.path).as_uri()}?mode=rw", uri=True)
        except sqlite3.Error as exc:
            _log.warning("store.checkpoint_failed", error=str(exc))
            self._release()
            return
        try:
            while not self._idle_end(connection):
                pass
        except sqlite3.Error as exc:  # the commits' own checkpoints take over until the next start
            _log.warning("store.checkpoint_failed", error=str(exc))
        finally:
            connection.close()
            self._release()

    def _idle_end(self, connection: sqlite3.Connection) -> bool:
        """Wait for a commit and checkpoint; True when the thread is to end (stopped, or idle and done)."""
        woken = self._pending.wait(self.idle)
        if self._stopping.is_set():
            return True
        if woken:
            self._pending.clear()
            self._checkpoint(connection)
            self._stopping.wait(self.spacing)
            return False
        self._checkpoint(connection)  # what the last commits appended after the previous checkpoint
        with self._lock:  # a commit from now on starts a new thread
            if self._pending.is_set():
                return False
            self._thread = None
            return True

    def _release(self) -> None:
        with self._lock:
            if self._thread is threading.current_thread():
                self._thread = None

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self.checkpoints += 1
