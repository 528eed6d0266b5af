"""Index the journal by (system, source id): lookups that do not know the document's kind.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

``Journal.get((system, id))``, ``Journal.find``, ``Journal.existing`` and the ledger postings' place lookup ask
for a source id without its kind; the unique (system, kind, source_id) index cannot serve them, so each read
every journaled row of the system — a sync got slower as its journal grew.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

__all__ = ["downgrade", "upgrade"]

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_documents_system_source_id"), "documents", ["system", "source_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_documents_system_source_id"), table_name="documents")
