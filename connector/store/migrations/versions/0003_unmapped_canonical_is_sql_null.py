"""A journaled payload that is not mapped has SQL NULL as its canonical form, never a JSON ``null``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

The JSON columns wrote Python ``None`` as the JSON value ``null``, so ``canonical IS NOT NULL`` also matched
payloads that were not mapped — a changed version that failed to map kept its business date and was read as a
document of that day by the reconciliation. The columns now write ``None`` as SQL NULL
(:data:`connector.store.types.JSONDocument`); this turns the ``null`` values already stored into SQL NULL.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

__all__ = ["downgrade", "upgrade"]

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE documents SET canonical = NULL WHERE canonical = 'null'::jsonb")
    else:
        op.execute("UPDATE documents SET canonical = NULL WHERE canonical = 'null'")


def downgrade() -> None:
    """Nothing to undo: SQL NULL is what an older connector reads as not mapped, too."""
