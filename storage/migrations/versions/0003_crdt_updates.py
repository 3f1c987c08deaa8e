"""The CRDT update log behind each document.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crdt_updates",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "document_id", sa.String(32), sa.ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("snapshot", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_crdt_updates_document_id", "crdt_updates", ["document_id", "id"])


def downgrade() -> None:
    op.drop_table("crdt_updates")
