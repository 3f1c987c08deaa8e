"""Full-text search over documents' titles and text: an FTS5 table kept current by triggers on
SQLite, a GIN index on the same words on PostgreSQL (queried in `storage.library`).

On SQLite the triggers live on `documents`: a later migration that rebuilds that table (Alembic's
`batch_alter_table` on SQLite copies it into a new one) must call `create_sqlite_index()` again.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# the document id is stored, not indexed: it is how a hit finds its document, and how the triggers
# find a row to replace (SQLite's own rowids may change when `documents` is vacuumed or rebuilt)
SQLITE_INDEX = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5("
    "id UNINDEXED, title, text, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3')"
)
SQLITE_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS documents_fts_insert AFTER INSERT ON documents BEGIN "
    "INSERT INTO documents_fts (id, title, text) VALUES (new.id, new.title, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS documents_fts_update AFTER UPDATE OF title, text ON documents BEGIN "
    "DELETE FROM documents_fts WHERE id = old.id; "
    "INSERT INTO documents_fts (id, title, text) VALUES (new.id, new.title, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS documents_fts_delete AFTER DELETE ON documents BEGIN "
    "DELETE FROM documents_fts WHERE id = old.id; END",
)
POSTGRES_INDEX = (
    "CREATE INDEX IF NOT EXISTS ix_documents_search ON documents "
    "USING gin (to_tsvector('simple', title || ' ' || text))"
)


def create_sqlite_index() -> None:
    """The FTS5 table, its triggers, and every document indexed afresh."""
    op.execute(SQLITE_INDEX)
    for trigger in SQLITE_TRIGGERS:
        op.execute(trigger)
    op.execute("DELETE FROM documents_fts")
    op.execute("INSERT INTO documents_fts (id, title, text) SELECT id, title, text FROM documents")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        create_sqlite_index()
    elif op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_INDEX)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("documents_fts_insert", "documents_fts_update", "documents_fts_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS documents_fts")
    elif op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_documents_search")
