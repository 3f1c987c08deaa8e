"""Alembic revisions: an empty database and one at the previous revision both reach head intact."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import inspect, text

from storage import accounts, documents
from storage.database import Store, current_revision, make_engine, upgrade

HEAD = "0006"


async def test_start_upgrades_an_empty_database(database_url: str) -> None:
    async with Store(database_url) as store:
        tables = set(inspect(store.engine).get_table_names())
        expected = {"documents", "revisions", "suggestions", "crdt_updates", "users", "sessions"}
        assert (
            expected | {"memberships", "share_links", "alembic_version", "comments", "document_tags"}
            <= tables
        )
        assert current_revision(store.engine) == HEAD


async def test_a_database_at_the_previous_revision_keeps_its_documents(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    now = datetime(2026, 1, 2, 3, 4, 5)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO documents (id, title, owner, text, version, created_at, updated_at) "
                "VALUES ('old1', 'Old draft', 'local', 'Kept words.', 3, :now, :now)"
            ),
            {"now": now},
        )
    engine.dispose()

    async with Store(database_url) as store:
        assert current_revision(store.engine) == HEAD
        with store.engine.connect() as connection:
            row = connection.execute(
                text("SELECT title, text, version FROM documents WHERE id = 'old1'")
            ).one()
            assert tuple(row) == ("Old draft", "Kept words.", 3)
            assert connection.execute(text("SELECT count(*) FROM suggestions")).scalar() == 0
        # the first account adopts the documents written before accounts existed
        first = await store.run(accounts.create_user, "ann", "argon2-hash-here")
        assert first.is_admin
        assert [d.title for d in await store.run(documents.list_documents, "ann")] == ["Old draft"]


async def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    async with Store(f"sqlite:///{tmp_path / 'wal.db'}") as store:
        with store.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
