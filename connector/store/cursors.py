"""Incremental pull watermarks, one per (system, stream, store) (``store`` ``""`` for a system-wide stream).

A watermark is the end of the last window read completely; the next pull starts at it minus the system's
lookback. It is written only after the window's documents are journaled, so a crash re-reads, never skips.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connector.store.tables import SyncCursor, utc_now

__all__ = ["Cursors"]


class Cursors:
    """Watermarks over the state database.

    Args:
        sessions: the store's session factory.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, system: str, stream: str, store: str = "") -> datetime | None:
        """The watermark (aware, UTC), or None when the stream was never pulled."""
        value = self.get_text(system, stream, store)
        return datetime.fromisoformat(value) if value else None

    def get_text(self, system: str, stream: str, store: str = "") -> str | None:
        """An opaque watermark (a cursor, a journal id), or None."""
        with self._sessions() as session:
            return session.scalars(
                select(SyncCursor.watermark).where(
                    SyncCursor.system == system, SyncCursor.stream == stream, SyncCursor.store == store
                )
            ).first()

    def set_text(self, system: str, stream: str, value: str, store: str = "") -> None:
        """Set an opaque watermark (it is the caller's to move only forward)."""
        with self._sessions.begin() as session:
            row = session.scalars(
                select(SyncCursor)
                .where(SyncCursor.system == system, SyncCursor.stream == stream, SyncCursor.store == store)
                .with_for_update()
            ).first()
            if row is None:
                session.add(SyncCursor(system=system, stream=stream, store=store, watermark=value,
                                       updated_at=utc_now()))  # fmt: skip
            else:
                row.watermark, row.updated_at = value, utc_now()

    def advance(self, system: str, stream: str, store: str, watermark: datetime) -> None:
        """Move the watermark forward to ``watermark`` (never back: an older value is ignored)."""
        with self._sessions.begin() as session:
            row = session.scalars(
                select(SyncCursor)
                .where(SyncCursor.system == system, SyncCursor.stream == stream, SyncCursor.store == store)
                .with_for_update()
            ).first()
            if row is None:
                session.add(SyncCursor(system=system, stream=stream, store=store,
                                       watermark=watermark.isoformat(), updated_at=utc_now()))  # fmt: skip
            elif row.watermark is None or datetime.fromisoformat(row.watermark) < watermark:
                row.watermark = watermark.isoformat()
                row.updated_at = utc_now()
