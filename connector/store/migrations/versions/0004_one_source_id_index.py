"""One index by (system, source id, kind) for the journal, and the account index only where there is an account.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Every journal row went into four indexes. Two of them began with the system and were keyed by the source id
(the unique (system, kind, source_id) and 0002's (system, source_id)); the unique (system, source_id, kind)
serves both the lookups that name the kind and those that do not (:meth:`Journal.get`, ``find``, ``places``).
A receipt landed raw has no account yet, so ``ix_documents_account`` is partial (``account IS NOT NULL``):
the queries by account compare it with a value, which both databases know implies it is not null. A pull's
insert then updates two indexes instead of four.

On SQLite a table constraint cannot be dropped, so ``documents`` is rebuilt (its rows copied once, which takes
a while for a journal of millions of documents); on PostgreSQL the constraint and indexes are altered in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

__all__ = ["downgrade", "upgrade"]

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_HAS_ACCOUNT = sa.text("account IS NOT NULL")


def _documents(unique: tuple[str, ...]) -> sa.Table:
    """``documents`` as 0001 made it, with its unique constraint on ``unique``: what SQLite's rebuild copies
    (its CHECK and its store/day index included)."""
    return sa.Table(
        "documents",
        sa.MetaData(),
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
        sa.CheckConstraint("status IN ('posted', 'draft', 'deleted')", name="ck_documents_status"),
        sa.PrimaryKeyConstraint("id", name="pk_documents"),
        sa.UniqueConstraint(*unique, name=f"uq_documents_{'_'.join(unique)}"),
        sa.Index("ix_documents_store_business_date", "store", "business_date"),
    )


def upgrade() -> None:
    op.drop_index("ix_documents_system_source_id", table_name="documents")
    op.drop_index("ix_documents_account", table_name="documents")
    with op.batch_alter_table("documents", copy_from=_documents(("system", "kind", "source_id"))) as batch:
        batch.drop_constraint("uq_documents_system_kind_source_id", type_="unique")
        batch.create_unique_constraint("uq_documents_system_source_id_kind", ["system", "source_id", "kind"])
    op.create_index("ix_documents_account", "documents", ["account"], unique=False,
                    sqlite_where=_HAS_ACCOUNT, postgresql_where=_HAS_ACCOUNT)  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_documents_account", table_name="documents")
    with op.batch_alter_table("documents", copy_from=_documents(("system", "source_id", "kind"))) as batch:
        batch.drop_constraint("uq_documents_system_source_id_kind", type_="unique")
        batch.create_unique_constraint("uq_documents_system_kind_source_id", ["system", "kind", "source_id"])
    op.create_index("ix_documents_account", "documents", ["account"], unique=False)
    op.create_index("ix_documents_system_source_id", "documents", ["system", "source_id"], unique=False)
