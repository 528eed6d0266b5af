"""The state database as SQLAlchemy 2 declarative models (DESIGN.md §4).

The schema is created and changed only by the Alembic migrations in ``connector/store/migrations``; these
models are what the code queries, and a test proves the migrated schema equals them on both backends.

Conventions:

* every timestamp is :class:`~connector.store.types.UTCDateTime` (aware in, aware UTC out);
* money and points are :class:`~connector.store.types.Amount` (exact Decimal, integer kopecks underneath);
* a ``DocRef`` is spelled as three columns ``<name>_system``, ``<name>_kind``, ``<name>_id``;
* states are short strings guarded by a CHECK constraint, so that adding a state is a migration, not a guess;
* constraint and index names follow :data:`NAMING_CONVENTION`, identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from connector.model import DocRef
from connector.store.types import Amount, Id, JSONDocument, UTCDateTime

__all__ = [
    "DISCREPANCY_STATES",
    "DOCUMENT_STATUSES",
    "ERROR_KINDS",
    "FAILED_ITEM_STATES",
    "NAMING_CONVENTION",
    "OUTBOX_STATES",
    "RUN_KINDS",
    "USER_ROLES",
    "AuditEntry",
    "Base",
    "CrossRef",
    "Discrepancy",
    "FailedItem",
    "Fix",
    "JournalDocument",
    "Lease",
    "OutboxRow",
    "PostingRow",
    "Run",
    "SyncCursor",
    "User",
    "utc_now",
]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

DOCUMENT_STATUSES = ("posted", "draft", "deleted")
OUTBOX_STATES = ("pending", "sent", "confirmed", "failed")
RUN_KINDS = ("sync", "reconcile")
ERROR_KINDS = ("transient", "permanent")
FAILED_ITEM_STATES = ("open", "retried", "skipped", "resolved")
DISCREPANCY_STATES = ("open", "fixed", "dismissed")
USER_ROLES = ("viewer", "operator", "admin")


def utc_now() -> datetime:
    """The current time, aware, in UTC: the default of every ``*_at`` column."""
    return datetime.now(UTC)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({listed})"


class Base(DeclarativeBase):
    """Declarative base of every table; its ``metadata`` is what the migrations must produce."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class JournalDocument(Base):
    """The document journal: one row per document per system, with its canonical and raw forms.

    ``version`` is the source's change marker (1C ``DataVersion``, Evotor's version) so that a re-read of an
    unchanged document is recognised. ``canonical`` is null while a raw payload waits to be mapped (webhook
    intake) or could not be mapped (see :class:`FailedItem`).
    """

    __tablename__ = "documents"
    __table_args__ = (
        # One index for lookups with and without the kind (migration 0004).
        UniqueConstraint("system", "source_id", "kind"),
        Index(None, "store", "business_date"),
        # A receipt landed raw has no account: only rows with one are indexed (queries compare it with a value).
        Index(
            None,
            "account",
            sqlite_where=text("account IS NOT NULL"),
            postgresql_where=text("account IS NOT NULL"),
        ),
        CheckConstraint(_one_of("status", DOCUMENT_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    system: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(255))
    store: Mapped[str | None] = mapped_column(String(128))
    business_date: Mapped[date | None] = mapped_column(Date)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    number: Mapped[str | None] = mapped_column(String(64))
    total: Mapped[Decimal | None] = mapped_column(Amount)
    account: Mapped[str | None] = mapped_column(String(64), doc="the customer's ledger identity, if any")
    version: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="posted")
    canonical: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    raw: Mapped[Any | None] = mapped_column(JSONDocument)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class CrossRef(Base):
    """The same business document in two systems (``DocRef`` ↔ ``DocRef``).

    The pair is stored once: ``left`` is the ref whose ``(system, kind, id)`` sorts first, so a lookup from
    either side queries both columns. ``method`` says how the match was made (``cross_ref``, ``external_id``,
    ``fiscal``, ``number``, ``created``).
    """

    __tablename__ = "cross_refs"
    __table_args__ = (
        # Named by hand: the conventional name would pass PostgreSQL's 63-character limit.
        UniqueConstraint(
            "left_system",
            "left_kind",
            "left_id",
            "right_system",
            "right_kind",
            "right_id",
            name="uq_cross_refs_pair",
        ),
        Index(None, "right_system", "right_kind", "right_id"),
    )

    @classmethod
    def between(cls, one: DocRef, other: DocRef, method: str) -> CrossRef:
        """A cross-reference row for two refs in either order (stored with the smaller ref on the left).

        Example:
            >>> CrossRef.between(DocRef(system="onec", kind="cheque", id="g-1"),
            ...                  DocRef(system="evotor", kind="receipt", id="d-1"), "external_id").left_system
            'evotor'
        """
        left, right = sorted((one, other), key=lambda ref: (ref.system, ref.kind, ref.id))
        return cls(
            left_system=left.system,
            left_kind=left.kind,
            left_id=left.id,
            right_system=right.system,
            right_kind=right.kind,
            right_id=right.id,
            method=method,
        )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    left_system: Mapped[str] = mapped_column(String(64))
    left_kind: Mapped[str] = mapped_column(String(64))
    left_id: Mapped[str] = mapped_column(String(255))
    right_system: Mapped[str] = mapped_column(String(64))
    right_kind: Mapped[str] = mapped_column(String(64))
    right_id: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class PostingRow(Base):
    """The postings ledger. Rows are inserted once and never updated or deleted: the code has no such path,
    and triggers made by the initial migration make the database refuse an UPDATE or DELETE from anyone.

    ``payload_hash`` is the SHA-256 of the posting's canonical JSON (see :mod:`connector.store.ledger`); it is
    what makes a replay with the same key recognisable and a different payload a conflict.
    """

    __tablename__ = "postings"
    __table_args__ = (
        UniqueConstraint("key"),
        Index(None, "account", "occurred_at"),
        Index(None, "document_system", "document_kind", "document_id"),
        CheckConstraint("status IN ('pending', 'active', 'cancelled')", name="status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    account: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    amount: Mapped[Decimal] = mapped_column(Amount)
    document_system: Mapped[str | None] = mapped_column(String(64))
    document_kind: Mapped[str | None] = mapped_column(String(64))
    document_id: Mapped[str | None] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    available_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    ref_system: Mapped[str | None] = mapped_column(String(64))
    ref_kind: Mapped[str | None] = mapped_column(String(64))
    ref_id: Mapped[str | None] = mapped_column(String(255))
    payload_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class OutboxRow(Base):
    """A write to another system, recorded before its first attempt under its idempotency key.

    ``key`` is ``{target}:`` + the posting key, or ``{target}:{source system}:{source doc id}:{kind}`` for a
    document write (DESIGN.md §4). ``state`` only moves forward: see :mod:`connector.store.outbox`.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("key"),
        Index(None, "state", "target"),
        CheckConstraint(_one_of("state", OUTBOX_STATES), name="state"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    target: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(64))
    payload: Mapped[Any] = mapped_column(JSONDocument)
    payload_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    remote_id: Mapped[str | None] = mapped_column(String(255))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SyncCursor(Base):
    """The incremental pull watermark of one (system, stream, store); ``store`` is ``""`` for all stores.

    ``watermark`` is opaque to the store (an ISO timestamp, a 1C ``DataVersion``, an Evotor cursor).
    """

    __tablename__ = "sync_cursors"
    __table_args__ = (UniqueConstraint("system", "stream", "store"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    system: Mapped[str] = mapped_column(String(64))
    stream: Mapped[str] = mapped_column(String(64))
    store: Mapped[str] = mapped_column(String(128), default="")
    watermark: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Run(Base):
    """One sync or reconciliation run, with its arguments and counts (fetched, mapped, written, …)."""

    __tablename__ = "runs"
    __table_args__ = (
        Index(None, "kind", "started_at"),
        CheckConstraint(_one_of("kind", RUN_KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="running")
    counts: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    args: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class FailedItem(Base):
    """A document or write that failed: kept with its error, payload and attempts until a person acts.

    Nothing is deleted to make a problem go away (DESIGN.md §4): a skip records ``skipped_by`` and
    ``skip_reason``; a retry moves the item to ``retried`` and a later success to ``resolved``.
    """

    __tablename__ = "failed_items"
    __table_args__ = (
        Index(None, "state", "system"),
        Index(None, "document_system", "document_kind", "document_id"),
        CheckConstraint(_one_of("error_kind", ERROR_KINDS), name="error_kind"),
        CheckConstraint(_one_of("state", FAILED_ITEM_STATES), name="state"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    system: Mapped[str] = mapped_column(String(64))
    route: Mapped[str | None] = mapped_column(String(128))
    store: Mapped[str | None] = mapped_column(String(128))
    business_date: Mapped[date | None] = mapped_column(Date)
    document_system: Mapped[str | None] = mapped_column(String(64))
    document_kind: Mapped[str | None] = mapped_column(String(64))
    document_id: Mapped[str | None] = mapped_column(String(255))
    error_kind: Mapped[str] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text)
    payload_excerpt: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(16), default="open")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    skipped_by: Mapped[str | None] = mapped_column(String(64))
    skip_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Discrepancy(Base):
    """A difference a reconciliation found, with the ids in each system and the proposed fix.

    ``expected`` and ``actual`` are JSON (an amount as a 2-decimal string, or a value such as a phone);
    ``delta`` is the money or points at stake, signed, so totals by kind are one SQL ``SUM``.
    """

    __tablename__ = "discrepancies"
    __table_args__ = (
        Index(None, "run_id", "kind"),
        Index(None, "store", "business_date"),
        CheckConstraint(_one_of("state", DISCREPANCY_STATES), name="state"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    kind: Mapped[str] = mapped_column(String(32))
    store: Mapped[str | None] = mapped_column(String(128))
    business_date: Mapped[date | None] = mapped_column(Date)
    refs: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    expected: Mapped[Any | None] = mapped_column(JSONDocument)
    actual: Mapped[Any | None] = mapped_column(JSONDocument)
    delta: Mapped[Decimal | None] = mapped_column(Amount)
    fix: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    state: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Fix(Base):
    """One planned or applied write that fixes a discrepancy; ``outbox_key`` is set once it is queued."""

    __tablename__ = "fixes"
    __table_args__ = (Index(None, "discrepancy_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    discrepancy_id: Mapped[int] = mapped_column(ForeignKey("discrepancies.id"))
    plan: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    outbox_key: Mapped[str | None] = mapped_column(String(255))
    applied_by: Mapped[str | None] = mapped_column(String(64))
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class User(Base):
    """A console user; ``password_hash`` is a self-describing hash string (e.g. argon2), never a password."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("name"),
        CheckConstraint(_one_of("role", USER_ROLES), name="role"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    locale: Mapped[str] = mapped_column(String(8), default="ru")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class AuditEntry(Base):
    """Who did what to which target, and how it ended; written for every console or CLI action."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    who: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(255))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)


class Lease(Base):
    """A named lease (scheduler job, sync partition) held by one process until ``expires_at``.

    A holder renews ``heartbeat_at``/``expires_at``; a crashed holder simply stops renewing and loses it.
    """

    __tablename__ = "leases"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
