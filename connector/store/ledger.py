"""The postings ledger: append-only, idempotent by key, with balances as of any moment.

Rules borrowed from TigerBeetle and Stripe (DESIGN.md §4): the key of a posting is derived from its cause and
is its identity. Appending a key that exists with the same payload returns the stored posting and writes
nothing; the same key with a different payload raises :class:`~connector.errors.IdempotencyConflict`. There is
no update and no delete: a correction is a new, compensating posting.

Idempotency is race-free on both backends: ``INSERT … ON CONFLICT (key) DO NOTHING`` and then the stored row is
read back and its payload hash compared, all in one transaction. Several rows are inserted in key order, so two
writers appending overlapping batches in any order lock the same keys in the same order and never deadlock.

The payload hash is the SHA-256 of :func:`canonical_posting_json`: the posting's JSON with sorted keys and
every time in UTC, so the same instant written with another offset is the same payload. Postings come back
with their times in UTC.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, Row, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from connector.errors import IdempotencyConflict
from connector.model import DocRef, Posting
from connector.store.tables import Base, PostingRow, utc_now

__all__ = ["Balance", "Ledger", "canonical_posting_json", "posting_hash"]

_ZERO = Decimal("0.00")
_BATCH = 500
_TIME_FIELDS = ("occurred_at", "available_at", "expires_at")


def canonical_posting_json(posting: Posting) -> str:
    """The posting as compact JSON with sorted keys, amounts as 2-decimal strings and times in UTC.

    Example:
        ``{"account":"+79161234567","amount":"150.00",…,"occurred_at":"2026-11-20T07:00:00Z",…}``
    """
    utc = {name: getattr(posting, name) for name in _TIME_FIELDS if getattr(posting, name) is not None}
    normalized = posting.model_copy(update={name: value.astimezone(UTC) for name, value in utc.items()})
    return json.dumps(
        normalized.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def posting_hash(posting: Posting) -> str:
    """SHA-256 (hex) of :func:`canonical_posting_json`: equal exactly when two postings are the same payload."""
    return hashlib.sha256(canonical_posting_json(posting).encode()).hexdigest()


@dataclass(frozen=True)
class Balance:
    """Points on one account as of a moment; see :meth:`Ledger.balance` for the formula.

    Attributes:
        account: the ledger identity (E.164 phone or ``card:<number>``).
        as_of: the moment, aware.
        available: points the customer can spend now.
        pending: accrued points not yet available (inside the activation delay).
        expired: accrued points that expired unspent.
    """

    account: str
    as_of: datetime
    available: Decimal
    pending: Decimal
    expired: Decimal


def _ref_columns(prefix: str, ref: DocRef | None) -> dict[str, str | None]:
    return {
        f"{prefix}_system": ref.system if ref else None,
        f"{prefix}_kind": ref.kind if ref else None,
        f"{prefix}_id": ref.id if ref else None,
    }


def _to_row(posting: Posting, created_at: datetime) -> dict[str, Any]:
    return {
        "key": posting.key,
        "account": posting.account,
        "kind": posting.kind,
        "amount": posting.amount,
        **_ref_columns("document", posting.document),
        "occurred_at": posting.occurred_at,
        "available_at": posting.available_at,
        "expires_at": posting.expires_at,
        "status": posting.status,
        **_ref_columns("ref", posting.ref),
        "payload_hash": posting_hash(posting),
        "created_at": created_at,
    }


def _ref(system: str | None, kind: str | None, id_: str | None) -> DocRef | None:
    if system is None or kind is None or id_ is None:
        return None
    return DocRef(system=system, kind=kind, id=id_)


def _from_row(row: Row[Any]) -> Posting:
    return Posting(
        key=row.key,
        account=row.account,
        kind=row.kind,
        amount=row.amount,
        document=_ref(row.document_system, row.document_kind, row.document_id),
        occurred_at=row.occurred_at,
        available_at=row.available_at,
        expires_at=row.expires_at,
        status=row.status,
        ref=_ref(row.ref_system, row.ref_kind, row.ref_id),
    )


_TABLE = Base.metadata.tables[PostingRow.__tablename__]
# Built once: executed with parameters, so each dialect compiles them once and caches them.
_INSERT = {
    "postgresql": postgresql.insert(_TABLE).on_conflict_do_nothing(index_elements=["key"]),
    "sqlite": sqlite.insert(_TABLE).on_conflict_do_nothing(index_elements=["key"]),
}
_BY_KEYS = select(_TABLE).where(_TABLE.c.key.in_(bindparam("keys", expanding=True)))


def _check_same_payload(posting: Posting, digest: str, stored: Row[Any]) -> None:
    if stored.payload_hash == digest:
        return
    raise IdempotencyConflict(
        "posting key already used with a different payload; a correction must be a new posting",
        key=posting.key,
        existing=canonical_posting_json(_from_row(stored)),
        attempted=canonical_posting_json(posting),
    )


def _split(rows: Iterable[Row[Any]], as_of: datetime) -> dict[str, Decimal]:
    """Sum the rows into the buckets the balance formula needs (see :meth:`Ledger.balance`)."""
    sums = dict.fromkeys(("pending", "live", "expired", "reversed", "debited"), _ZERO)
    for row in rows:
        if row.amount < 0:
            sums["reversed" if row.kind == "accrual_reversal" else "debited"] -= row.amount
        elif row.available_at is not None and as_of < row.available_at:
            sums["pending"] += row.amount
        elif row.expires_at is not None and row.expires_at <= as_of:
            sums["expired"] += row.amount
        else:
            sums["live"] += row.amount
    return sums


class Ledger:
    """The postings ledger over the state database; obtain it as ``store.ledger``.

    Args:
        engine: the store's engine.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def append(self, posting: Posting) -> Posting:
        """Append a posting, or return the stored one when its key is already there with the same payload.

        Returns:
            The posting as stored (times in UTC).

        Raises:
            IdempotencyConflict: the key exists with a different payload; nothing was written.
        """
        return self.append_many([posting])[0]

    def append_many(self, postings: Iterable[Posting]) -> list[Posting]:
        """Append several postings in one transaction, all or nothing, with :meth:`append`'s semantics.

        Returns:
            The stored postings, in the order given.

        Raises:
            IdempotencyConflict: some key exists with a different payload; none of the postings was written.
        """
        given = list(postings)
        # Key order: concurrent batches that overlap lock their keys in the same order, so they wait, not deadlock.
        ordered = sorted(given, key=lambda posting: posting.key)
        now = utc_now()
        rows = [_to_row(posting, now) for posting in ordered]
        stored: dict[str, Row[Any]] = {}
        with self._engine.begin() as connection:
            insert = _INSERT[connection.dialect.name]
            for start in range(0, len(rows), _BATCH):
                chunk = rows[start : start + _BATCH]
                connection.execute(insert, chunk)
                keys = [row["key"] for row in chunk]
                stored.update((row.key, row) for row in connection.execute(_BY_KEYS, {"keys": keys}))
            for posting, row in zip(ordered, rows, strict=True):
                _check_same_payload(posting, row["payload_hash"], stored[posting.key])
        return [_from_row(stored[posting.key]) for posting in given]

    def get(self, key: str) -> Posting | None:
        """The posting stored under ``key``, or None."""
        with self._engine.connect() as connection:
            row = connection.execute(_BY_KEYS, {"keys": [key]}).one_or_none()
        return _from_row(row) if row else None

    def postings(self, account: str | None = None, document: DocRef | None = None) -> list[Posting]:
        """Postings of an account and/or a document, oldest first (by ``occurred_at``, then insertion)."""
        query = select(_TABLE).order_by(_TABLE.c.occurred_at, _TABLE.c.id)
        if account is not None:
            query = query.where(_TABLE.c.account == account)
        if document is not None:
            query = query.where(
                _TABLE.c.document_system == document.system,
                _TABLE.c.document_kind == document.kind,
                _TABLE.c.document_id == document.id,
            )
        with self._engine.connect() as connection:
            return [_from_row(row) for row in connection.execute(query)]

    def balance(self, account: str, as_of: datetime) -> Balance:
        """The account's points as of a moment, following 1C's ``БонусныеБаллы`` arithmetic.

        Counted: postings with ``occurred_at <= as_of`` whose status is not ``cancelled``. Each positive
        posting is *pending* while ``as_of < available_at``, *expired* once ``expires_at <= as_of``, else
        *live* (a null ``available_at`` means available at once, a null ``expires_at`` never expires). Sums::

            P = pending credits    E = expired credits    L = live credits
            R = |accrual reversals|                       O = |every other negative posting|
            pending   = max(0, P - R)           # a return inside the activation delay cancels pending points
            D         = O + max(0, R - P)       # what is written off the available points
            expired   = max(0, E - D)           # spending uses up expiring points first (1C: КСписанию)
            available = max(0, L + E - D - expired)

        ``available`` is 1C's ``max(0, Начислено − max(0, КСписанию))``: accrued minus written off, never
        negative. Example: +100 expiring on 1 Jan, −60 spent in December, +50 live: on 2 Jan
        available = 50 + 100 − 60 − 40 = 50, expired = 40.

        Args:
            account: the ledger identity.
            as_of: an aware moment.

        Raises:
            ValueError: ``as_of`` is naive.
        """
        if as_of.tzinfo is None:
            raise ValueError(f"as_of must be timezone-aware, not {as_of.isoformat()}")
        query = select(_TABLE.c.kind, _TABLE.c.amount, _TABLE.c.available_at, _TABLE.c.expires_at).where(
            _TABLE.c.account == account,
            _TABLE.c.occurred_at <= as_of,
            _TABLE.c.status != "cancelled",
        )
        with self._engine.connect() as connection:
            sums = _split(connection.execute(query), as_of)
        pending = max(_ZERO, sums["pending"] - sums["reversed"])
        debited = sums["debited"] + max(_ZERO, sums["reversed"] - sums["pending"])
        expired = max(_ZERO, sums["expired"] - debited)
        available = max(_ZERO, sums["live"] + sums["expired"] - debited - expired)
        return Balance(account=account, as_of=as_of, available=available, pending=pending, expired=expired)
