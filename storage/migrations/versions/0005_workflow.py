"""The writer's workflow: named versions and who wrote in them, notes for suggestions, the trash,
tags, comments, and role names long enough for `commenter`.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("revisions") as batch:
        batch.add_column(sa.Column("name", sa.String(80), nullable=True))
        batch.add_column(sa.Column("authors", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("notes", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_documents_deleted_at", "documents", ["deleted_at"])
    # "commenter" does not fit the 8 characters the first roles needed
    with op.batch_alter_table("memberships") as batch:
        batch.alter_column("role", type_=sa.String(16), existing_type=sa.String(8), existing_nullable=False)
    with op.batch_alter_table("share_links") as batch:
        batch.alter_column("role", type_=sa.String(16), existing_type=sa.String(8), existing_nullable=False)
    op.create_table(
        "document_tags",
        sa.Column(
            "document_id",
            sa.String(32),
            sa.ForeignKey("documents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tag", sa.String(32), primary_key=True),
    )
    op.create_index("ix_document_tags_tag", "document_tags", ["tag"])
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "document_id", sa.String(32), sa.ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("thread_id", sa.Integer(), sa.ForeignKey("comments.id", ondelete="CASCADE"), nullable=True),
        sa.Column("author", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("anchor_start", sa.String(512), nullable=False, server_default=""),
        sa.Column("anchor_end", sa.String(512), nullable=False, server_default=""),
        sa.Column("quote", sa.String(500), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(32), nullable=True),
    )
    op.create_index("ix_comments_document_id", "comments", ["document_id", "id"])


def downgrade() -> None:
    op.drop_table("comments")
    op.drop_table("document_tags")
    with op.batch_alter_table("share_links") as batch:
        batch.alter_column("role", type_=sa.String(8), existing_type=sa.String(16), existing_nullable=False)
    with op.batch_alter_table("memberships") as batch:
        batch.alter_column("role", type_=sa.String(8), existing_type=sa.String(16), existing_nullable=False)
    op.drop_index("ix_documents_deleted_at", "documents")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("notes")
    with op.batch_alter_table("revisions") as batch:
        batch.drop_column("authors")
        batch.drop_column("name")
