"""The outbox, a partition at a time: the same states and rules as :mod:`connector.store.outbox`, in few statements.

A write costs one HTTP call; recording it, counting its attempt and confirming it one transaction each would cost
more than the call on SQLite. So a partition's writes are recorded in one ``INSERT … ON CONFLICT DO NOTHING``
(then their hashes are compared, as :meth:`~connector.store.outbox.Outbox.record` does: another payload under a
key is an :class:`~connector.errors.IdempotencyConflict`), marked ``sent`` in one ``UPDATE`` before the first of
them is sent, and confirmed together afterwards. A crash before the confirmations are stored leaves the writes
``sent``: the next run's batched lookup in the target finds them and confirms them without writing again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connector.errors import IdempotencyConflict
from connector.model import DocRef
from connector.store import Store
from connector.store.outbox import outbox_payload_json
from connector.store.tables import CrossRef, OutboxRow, utc_now

__all__ = [
    "OutboxRecord",
    "confirm_many",
    "fail_many",
    "link_many",
    "mark_sent_many",
    "outbox_rows",
    "record_many",
]

_CHUNK = 500
_OPEN = ("pending", "sent", "failed")


@dataclass(frozen=True)
class OutboxRecord:
    """What the push needs of a stored entry."""

    key: str
    state: str
    operation: str
    payload: Any


def outbox_rows(store: Store, keys: Iterable[str]) -> dict[str, OutboxRecord]:
    """The stored entries of ``keys`` (absent keys are not in the answer); one query per 500 keys."""
    wanted, found = list(dict.fromkeys(keys)), {}
    columns = (OutboxRow.key, OutboxRow.state, OutboxRow.operation, OutboxRow.payload)
    with store.session() as session:
        for start in range(0, len(wanted), _CHUNK):
            rows = session.execute(select(*columns).where(OutboxRow.key.in_(wanted[start : start + _CHUNK])))
            found.update(
                {str(row[0]): OutboxRecord(str(row[0]), str(row[1]), str(row[2]), row[3]) for row in rows}
            )
    return found


def record_many(
    store: Store, writes: Sequence[tuple[str, str, str, dict[str, Any]]]
) -> dict[str, IdempotencyConflict]:
    """Record ``(key, target, operation, payload)`` writes not recorded yet; returns the keys in conflict.

    A key recorded before with the same write is left as it is (its state and attempts kept).
    """
    now, rows, hashes = utc_now(), [], {}
    for key, target, operation, payload in writes:
        attempted = outbox_payload_json(target, operation, payload)
        hashes[key] = (hashlib.sha256(attempted.encode()).hexdigest(), attempted)
        rows.append({"key": key, "target": target, "operation": operation, "payload": dict(payload),
                     "payload_hash": hashes[key][0], "state": "pending", "attempts": 0, "created_at": now,
                     "updated_at": now})  # fmt: skip
    if not rows:
        return {}
    columns = (
        OutboxRow.key,
        OutboxRow.payload_hash,
        OutboxRow.target,
        OutboxRow.operation,
        OutboxRow.payload,
    )
    stored: list[Any] = []
    with store.transaction() as session:
        # one statement run for many rows (compiled once, sent in multi-row batches): a multi-row VALUES of its
        # own would be compiled again for every partition size
        session.execute(_insert(store, OutboxRow).on_conflict_do_nothing(index_elements=["key"]), rows)
        for start in range(0, len(rows), _CHUNK):
            keys = [row["key"] for row in rows[start : start + _CHUNK]]
            stored += session.execute(select(*columns).where(OutboxRow.key.in_(keys))).all()
    return {
        str(key): IdempotencyConflict(
            "outbox key already recorded with a different write; it is never replayed silently",
            key=key,
            existing=outbox_payload_json(target, operation, payload),
            attempted=hashes[key][1],
        )
        for key, digest, target, operation, payload in stored
        if hashes[key][0] != digest
    }


def mark_sent_many(store: Store, keys: Sequence[str]) -> None:
    """Count an attempt of each key about to be sent (``pending``/``sent``/``failed`` → ``sent``)."""
    if not keys:
        return
    now = utc_now()
    with store.transaction() as session:
        for start in range(0, len(keys), _CHUNK):
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.key.in_(list(keys[start : start + _CHUNK])), OutboxRow.state.in_(_OPEN))
                .values(state="sent", attempts=OutboxRow.attempts + 1, last_attempt_at=now, updated_at=now)
            )


def confirm_many(store: Store, confirmed: Sequence[tuple[str, str]]) -> None:
    """The target has these writes: ``(key, remote id)`` → ``confirmed`` (a confirmed entry stays as it is)."""
    _move_many(store, [{"k": key, "remote_id": remote, "confirmed_at": utc_now()} for key, remote in confirmed],
               state="confirmed")  # fmt: skip


def fail_many(store: Store, failed: Sequence[tuple[str, str]]) -> None:
    """These attempts failed: ``(key, one-line reason)`` → ``failed`` (only from ``pending``/``sent``)."""
    _move_many(store, [{"k": key, "last_error": error[:1000]} for key, error in failed], state="failed")


def _move_many(store: Store, params: list[dict[str, Any]], *, state: str) -> None:
    if not params:
        return
    allowed = _OPEN if state == "confirmed" else ("pending", "sent")
    values: dict[str, Any] = {"state": state, "updated_at": utc_now()}
    for name in params[0]:
        if name != "k":
            values[name] = bindparam(name)
    statement = (
        update(OutboxRow)
        # equalities, not IN: an expanding IN cannot run as executemany
        .where(OutboxRow.key == bindparam("k"), or_(*(OutboxRow.state == name for name in allowed)))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    with store.engine.begin() as connection:
        connection.execute(statement, params)


def link_many(store: Store, pairs: Sequence[tuple[DocRef, DocRef]], method: str) -> None:
    """Cross-reference each pair (idempotent), in one statement."""
    if not pairs:
        return
    rows = []
    for one, other in pairs:
        ref = CrossRef.between(one, other, method)
        rows.append(
            {name: getattr(ref, name) for name in _CROSS_COLUMNS}
            | {"method": method, "created_at": utc_now()}
        )
    with store.engine.begin() as connection:
        connection.execute(
            _insert(store, CrossRef).on_conflict_do_nothing(index_elements=list(_CROSS_COLUMNS)), rows
        )


def _insert(store: Store, table: type[OutboxRow] | type[CrossRef]) -> Any:
    """The dialect's ``INSERT`` into ``table`` (with ``ON CONFLICT``), as a Core statement run for many rows."""
    insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    return insert(cast(Table, table.__table__))


_CROSS_COLUMNS = ("left_system", "left_kind", "left_id", "right_system", "right_kind", "right_id")
