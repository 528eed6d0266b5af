"""The outbox: every write to another system, recorded under its idempotency key before the first attempt.

The key is derived from the write's cause (DESIGN.md §4): ``{target}:`` + the posting key, or
``{target}:{source system}:{source doc id}:{kind}`` for a document write. It is recorded once and reused on
every retry; recording it again with the same target, operation and payload returns the stored entry, with a
different one raises :class:`~connector.errors.IdempotencyConflict` (the same ``INSERT … ON CONFLICT DO
NOTHING`` + read-back as the ledger, so it is race-free).

States only move forward; ``confirmed`` is final::

    pending ──mark_sent──▶ sent ──mark_confirmed──▶ confirmed
       │                   │  ▲                        ▲
       └──mark_failed──▶ failed ──mark_sent (retry)────┘ mark_confirmed (a lookup found it written)

``mark_sent`` counts an attempt (call it just before sending); a write whose outcome is unknown stays ``sent``
until a lookup of the key in the target confirms it or a retry is made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from connector.errors import IdempotencyConflict, LedgerError
from connector.store.tables import OutboxRow, utc_now
from connector.store.types import canonical_json

__all__ = ["Outbox", "OutboxEntry", "outbox_payload_json"]

_FROM: dict[str, tuple[str, ...]] = {
    "sent": ("pending", "sent", "failed"),
    "confirmed": ("pending", "sent", "failed"),
    "failed": ("pending", "sent"),
}


def outbox_payload_json(target: str, operation: str, payload: Any) -> str:
    """The canonical JSON an outbox entry's hash is computed over (target, operation and payload).

    Raises:
        TypeError: the payload holds a float; money and points go as strings.
    """
    return canonical_json({"target": target, "operation": operation, "payload": payload})


@dataclass(frozen=True)
class OutboxEntry:
    """One recorded write, as stored."""

    key: str
    target: str
    operation: str
    payload: Any
    payload_hash: str
    state: str
    attempts: int
    remote_id: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    last_attempt_at: datetime | None
    confirmed_at: datetime | None


def _entry(row: OutboxRow) -> OutboxEntry:
    return OutboxEntry(
        key=row.key,
        target=row.target,
        operation=row.operation,
        payload=row.payload,
        payload_hash=row.payload_hash,
        state=row.state,
        attempts=row.attempts,
        remote_id=row.remote_id,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_attempt_at=row.last_attempt_at,
        confirmed_at=row.confirmed_at,
    )


def _row_by_key(session: Session, key: str) -> OutboxRow | None:
    return session.scalars(select(OutboxRow).where(OutboxRow.key == key)).one_or_none()


class Outbox:
    """The outbox over the state database; obtain it as ``store.outbox``.

    Args:
        sessions: the store's session factory.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def record(self, key: str, target: str, operation: str, payload: Mapping[str, Any]) -> OutboxEntry:
        """Record a write before its first attempt, or return the entry already recorded under ``key``.

        Args:
            key: the idempotency key derived from the cause (see the module docstring).
            target: the configured system the write goes to.
            operation: what is written (``posting``, ``receipt``, ``bonus_document``, …).
            payload: the JSON-ready body; money as strings.

        Raises:
            IdempotencyConflict: ``key`` was recorded with another target, operation or payload.
        """
        attempted = outbox_payload_json(target, operation, payload)
        digest = hashlib.sha256(attempted.encode()).hexdigest()
        now = utc_now()
        values = {
            "key": key,
            "target": target,
            "operation": operation,
            "payload": dict(payload),
            "payload_hash": digest,
            "state": "pending",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        with self._sessions.begin() as session:
            insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
            session.execute(insert(OutboxRow).values(values).on_conflict_do_nothing(index_elements=["key"]))
            row = _row_by_key(session, key)
            assert row is not None  # inserted or already there, within this transaction
            entry = _entry(row)
        if entry.payload_hash != digest:
            raise IdempotencyConflict(
                "outbox key already recorded with a different write; it is never replayed silently",
                key=key,
                existing=outbox_payload_json(entry.target, entry.operation, entry.payload),
                attempted=attempted,
            )
        return entry

    def get(self, key: str) -> OutboxEntry | None:
        """The entry recorded under ``key``, or None."""
        with self._sessions() as session:
            row = _row_by_key(session, key)
            return _entry(row) if row else None

    def unfinished(self, target: str | None = None) -> list[OutboxEntry]:
        """Entries still ``pending`` or ``sent`` (to resume after a crash), oldest first."""
        query = select(OutboxRow).where(OutboxRow.state.in_(("pending", "sent"))).order_by(OutboxRow.id)
        if target is not None:
            query = query.where(OutboxRow.target == target)
        with self._sessions() as session:
            return [_entry(row) for row in session.scalars(query)]

    def mark_sent(self, key: str) -> OutboxEntry:
        """Count an attempt about to be made (from ``pending``, ``sent`` or ``failed``)."""
        now = utc_now()
        return self._move(key, "sent", attempts=OutboxRow.attempts + 1, last_attempt_at=now)

    def mark_confirmed(self, key: str, remote_id: str | None = None) -> OutboxEntry:
        """The target has the write (its answer, or a lookup of the key); ``remote_id`` is its id there.

        Confirming a confirmed entry again with the same (or no) remote id changes nothing.
        """
        if remote_id is None:
            return self._move(key, "confirmed", confirmed_at=utc_now())
        return self._move(key, "confirmed", confirmed_at=utc_now(), remote_id=remote_id)

    def mark_failed(self, key: str, error: str) -> OutboxEntry:
        """The attempt failed; ``error`` is the one-line reason (no secrets)."""
        return self._move(key, "failed", last_error=error)

    def _move(self, key: str, state: str, **values: Any) -> OutboxEntry:
        statement = (
            update(OutboxRow)
            .where(OutboxRow.key == key, OutboxRow.state.in_(_FROM[state]))
            .values(state=state, updated_at=utc_now(), **values)
        )
        with self._sessions.begin() as session:
            # The conditional UPDATE is the check: two racing transitions cannot both pass.
            moved = cast(CursorResult[Any], session.execute(statement)).rowcount
            row = _row_by_key(session, key)
            entry = _entry(row) if row else None
        if entry is None:
            raise LedgerError("no outbox entry with this key", key=key)
        if not moved and not _is_repeat_confirmation(entry, state, values.get("remote_id")):
            raise LedgerError(f"outbox entry is {entry.state}; it cannot move to {state}", key=key)
        return entry


def _is_repeat_confirmation(entry: OutboxEntry, state: str, remote_id: str | None) -> bool:
    return state == entry.state == "confirmed" and remote_id in (None, entry.remote_id)
