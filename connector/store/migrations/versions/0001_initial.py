"""Initial schema: every table of DESIGN.md §4.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Migrations are self-contained: they spell column types with plain SQLAlchemy types (the storage types the
TypeDecorators in ``connector.store.types`` sit on), so later changes to the models never rewrite history.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

__all__ = ["downgrade", "upgrade"]

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Storage types only (see the module docstring): BIGINT ids that auto-increment on SQLite, JSONB on PostgreSQL.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


_IMMUTABLE = "postings are immutable: a correction is a new posting"

# The ledger's promise kept by the database itself: no UPDATE or DELETE of a posting, whoever connects.
# NOTE for later migrations: SQLite batch mode recreates a table without its triggers; a migration that
# batch-alters ``postings`` must create these triggers again (test_ledger checks they hold at head).
_PG_FUNCTION = f"""
CREATE FUNCTION postings_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{_IMMUTABLE} (key %)', OLD.key USING ERRCODE = 'restrict_violation';
END
$$
"""
_PG_TRIGGER = (
    "CREATE TRIGGER postings_immutable BEFORE UPDATE OR DELETE ON postings "
    "FOR EACH ROW EXECUTE FUNCTION postings_are_immutable()"
)
_SQLITE_TRIGGER = "CREATE TRIGGER postings_no_{event} BEFORE {event} ON postings BEGIN SELECT RAISE(ABORT, '{message}'); END"


def _make_postings_immutable() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
        return
    for event in ("update", "delete"):
        op.execute(_SQLITE_TRIGGER.format(event=event, message=_IMMUTABLE))


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", _ID, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("who", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column("outcome", sa.String(length=255), nullable=False),
        sa.Column("detail", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)

    op.create_table(
        "cross_refs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("left_system", sa.String(length=64), nullable=False),
        sa.Column("left_kind", sa.String(length=64), nullable=False),
        sa.Column("left_id", sa.String(length=255), nullable=False),
        sa.Column("right_system", sa.String(length=64), nullable=False),
        sa.Column("right_kind", sa.String(length=64), nullable=False),
        sa.Column("right_id", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cross_refs")),
        sa.UniqueConstraint(
            "left_system",
            "left_kind",
            "left_id",
            "right_system",
            "right_kind",
            "right_id",
            name="uq_cross_refs_pair",
        ),
    )
    op.create_index(
        op.f("ix_cross_refs_right_system_right_kind_right_id"),
        "cross_refs",
        ["right_system", "right_kind", "right_id"],
        unique=False,
    )

    op.create_table(
        "documents",
        sa.Column("id", _ID, nullable=False),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("store", sa.String(length=128), nullable=True),
        sa.Column("business_date", sa.Date(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("number", sa.String(length=64), nullable=True),
        sa.Column("total", sa.BigInteger(), nullable=True),
        sa.Column("account", sa.String(length=64), nullable=True),
        sa.Column("version", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("canonical", _JSON, nullable=True),
        sa.Column("raw", _JSON, nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('posted', 'draft', 'deleted')", name=op.f("ck_documents_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("system", "kind", "source_id", name=op.f("uq_documents_system_kind_source_id")),
    )
    op.create_index(op.f("ix_documents_account"), "documents", ["account"], unique=False)
    op.create_index(
        op.f("ix_documents_store_business_date"), "documents", ["store", "business_date"], unique=False
    )

    op.create_table(
        "leases",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leases")),
        sa.UniqueConstraint("name", name=op.f("uq_leases_name")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", _ID, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("remote_id", sa.String(length=255), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'sent', 'confirmed', 'failed')", name=op.f("ck_outbox_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("key", name=op.f("uq_outbox_key")),
    )
    op.create_index(op.f("ix_outbox_state_target"), "outbox", ["state", "target"], unique=False)

    op.create_table(
        "postings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("document_system", sa.String(length=64), nullable=True),
        sa.Column("document_kind", sa.String(length=64), nullable=True),
        sa.Column("document_id", sa.String(length=255), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ref_system", sa.String(length=64), nullable=True),
        sa.Column("ref_kind", sa.String(length=64), nullable=True),
        sa.Column("ref_id", sa.String(length=255), nullable=True),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'active', 'cancelled')", name=op.f("ck_postings_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postings")),
        sa.UniqueConstraint("key", name=op.f("uq_postings_key")),
    )
    op.create_index(
        op.f("ix_postings_account_occurred_at"), "postings", ["account", "occurred_at"], unique=False
    )
    op.create_index(
        op.f("ix_postings_document_system_document_kind_document_id"),
        "postings",
        ["document_system", "document_kind", "document_id"],
        unique=False,
    )
    _make_postings_immutable()

    op.create_table(
        "runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("counts", _JSON, nullable=False),
        sa.Column("args", _JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('sync', 'reconcile')", name=op.f("ck_runs_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs_kind_started_at"), "runs", ["kind", "started_at"], unique=False)

    op.create_table(
        "sync_cursors",
        sa.Column("id", _ID, nullable=False),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("store", sa.String(length=128), nullable=False),
        sa.Column("watermark", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_cursors")),
        sa.UniqueConstraint("system", "stream", "store", name=op.f("uq_sync_cursors_system_stream_store")),
    )
    op.create_table(
        "users",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('viewer', 'operator', 'admin')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "discrepancies",
        sa.Column("id", _ID, nullable=False),
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("store", sa.String(length=128), nullable=True),
        sa.Column("business_date", sa.Date(), nullable=True),
        sa.Column("refs", _JSON, nullable=False),
        sa.Column("expected", _JSON, nullable=True),
        sa.Column("actual", _JSON, nullable=True),
        sa.Column("delta", sa.BigInteger(), nullable=True),
        sa.Column("fix", _JSON, nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('open', 'fixed', 'dismissed')", name=op.f("ck_discrepancies_state")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_discrepancies_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discrepancies")),
    )
    op.create_index(op.f("ix_discrepancies_run_id_kind"), "discrepancies", ["run_id", "kind"], unique=False)
    op.create_index(
        op.f("ix_discrepancies_store_business_date"),
        "discrepancies",
        ["store", "business_date"],
        unique=False,
    )

    op.create_table(
        "failed_items",
        sa.Column("id", _ID, nullable=False),
        sa.Column("run_id", _ID, nullable=True),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("route", sa.String(length=128), nullable=True),
        sa.Column("store", sa.String(length=128), nullable=True),
        sa.Column("business_date", sa.Date(), nullable=True),
        sa.Column("document_system", sa.String(length=64), nullable=True),
        sa.Column("document_kind", sa.String(length=64), nullable=True),
        sa.Column("document_id", sa.String(length=255), nullable=True),
        sa.Column("error_kind", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("payload_excerpt", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("skipped_by", sa.String(length=64), nullable=True),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "error_kind IN ('transient', 'permanent')", name=op.f("ck_failed_items_error_kind")
        ),
        sa.CheckConstraint(
            "state IN ('open', 'retried', 'skipped', 'resolved')", name=op.f("ck_failed_items_state")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_failed_items_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_failed_items")),
    )
    op.create_index(
        op.f("ix_failed_items_document_system_document_kind_document_id"),
        "failed_items",
        ["document_system", "document_kind", "document_id"],
        unique=False,
    )
    op.create_index(op.f("ix_failed_items_state_system"), "failed_items", ["state", "system"], unique=False)

    op.create_table(
        "fixes",
        sa.Column("id", _ID, nullable=False),
        sa.Column("discrepancy_id", _ID, nullable=False),
        sa.Column("plan", _JSON, nullable=False),
        sa.Column("outbox_key", sa.String(length=255), nullable=True),
        sa.Column("applied_by", sa.String(length=64), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["discrepancy_id"], ["discrepancies.id"], name=op.f("fk_fixes_discrepancy_id_discrepancies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fixes")),
    )
    op.create_index(op.f("ix_fixes_discrepancy_id"), "fixes", ["discrepancy_id"], unique=False)


def downgrade() -> None:
    op.drop_table("fixes")
    op.drop_table("failed_items")
    op.drop_table("discrepancies")
    op.drop_table("users")
    op.drop_table("sync_cursors")
    op.drop_table("runs")
    op.drop_table("postings")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION postings_are_immutable()")
    op.drop_table("outbox")
    op.drop_table("leases")
    op.drop_table("documents")
    op.drop_table("cross_refs")
    op.drop_table("audit_log")
