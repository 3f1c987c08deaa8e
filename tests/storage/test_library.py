"""Search, tags and the trash, on SQLite (FTS5) and, in CI, PostgreSQL (full-text with a GIN index)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session

from storage import accounts, collab, documents, library, sharing
from storage.database import Store
from storage.documents import DocumentNotFound
from storage.library import MARK_END, MARK_START, SearchQueryInvalid, TagInvalid
from storage.models import TAG_MAX, TAGS_PER_DOCUMENT, Document, DocumentCreate, Role, utcnow


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with Store(database_url) as started:
        for name in ("ann", "bob"):
            await started.run(accounts.create_user, name, f"hash-of-{name}")
        yield started


async def make(store: Store, title: str, body: str, owner: str = "ann") -> str:
    created = await store.run(documents.create_document, DocumentCreate(title=title), owner)
    await store.run(collab.save_text, created.id, body)
    return created.id


async def search(store: Store, user: str, query: str) -> list[library.SearchHit]:
    return await store.run(library.search, user, query, 20)


async def test_search_finds_words_in_the_body_with_a_highlighted_snippet(store: Store) -> None:
    letter = await make(
        store, "Cover letter", "Dear hiring manager, I have written software for lighthouses."
    )
    await make(store, "Story", "The keeper climbed the stairs at dusk.")
    [hit] = await search(store, "ann", "lighthouses")
    assert hit.id == letter and hit.role == Role.OWNER
    assert f"{MARK_START}lighthouses{MARK_END}" in hit.snippet
    # every word must appear; the last may be the start of one; case and accents do not matter
    assert [h.id for h in await search(store, "ann", "SOFTWARE light")] == [letter]
    assert await search(store, "ann", "software keeper") == []


async def test_a_title_match_ranks_above_a_body_match(store: Store) -> None:
    body = await make(store, "Notes", "Some words about gardens and other things, gardens again.")
    title = await make(store, "Gardens", "A plan for the spring.")
    assert [h.id for h in await search(store, "ann", "gardens")] == [title, body]


async def test_search_sees_only_readable_documents_out_of_the_trash(store: Store) -> None:
    own = await make(store, "Mine", "albatross one")
    shared = await make(store, "Shared", "albatross two", owner="bob")
    await make(store, "Private", "albatross three", owner="bob")
    await store.run(sharing.put_member, shared, "ann", Role.VIEWER)
    hits = await search(store, "ann", "albatross")
    assert {h.id for h in hits} == {own, shared}
    assert {h.id: h.role for h in hits}[shared] == Role.VIEWER
    await store.run(documents.delete_document, own, "ann")
    assert [h.id for h in await search(store, "ann", "albatross")] == [shared]
    await store.run(library.restore, own, "ann")
    assert {h.id for h in await search(store, "ann", "albatross")} == {own, shared}


async def test_the_index_follows_renames_edits_and_deletions(store: Store) -> None:
    doc = await make(store, "Before", "old words")
    await store.run(collab.save_text, doc, "new words")
    await store.run(documents.rename_document, doc, "ann", "Renamed")
    assert await search(store, "ann", "old") == []
    assert [h.id for h in await search(store, "ann", "renamed new")] == [doc]
    await store.run(documents.delete_document, doc, "ann")
    await store.run(library.delete_forever, doc, "ann")
    assert await search(store, "ann", "new") == []


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '"unbalanced',
        "*",
        "-",
        "-word",
        "NEAR",
        "NEAR(a b)",
        "a OR",
        "AND",
        "NOT x",
        "col:word",
        "title:x",
        "^start",
        "(",
        ")",
        "'",
        "it's",
        "a & b | !c",
        "x:*",
        "\\",
        "{}",
        "\x00",
        "",
        "   ",
        "🙂",
        "x" * 200,
        " ".join(["w"] * 100),
    ],
)
async def test_hostile_queries_never_break_the_search(store: Store, query: str) -> None:
    doc = await make(store, "Plain", "word NEAR start it's x col title")
    hits = await search(store, "ann", query)
    assert all(h.id == doc for h in hits)


async def test_operators_are_plain_words(store: Store) -> None:
    doc = await make(store, "Ops", "Meet me NEAR the river or not")
    assert [h.id for h in await search(store, "ann", "near river")] == [doc]
    assert [h.id for h in await search(store, "ann", '"NEAR" -river*')] == [doc]


async def test_an_overlong_query_is_refused(store: Store) -> None:
    with pytest.raises(SearchQueryInvalid):
        await search(store, "ann", "x" * 201)


async def test_tags_are_normalized_bounded_and_counted(store: Store) -> None:
    one = await make(store, "One", "a")
    two = await make(store, "Two", "b")
    tags = library.normalize_tags(["  Draft ", "to   send", "draft", "sci-fi_2"])
    assert tags == ["draft", "to send", "sci-fi_2"]
    assert await store.run(library.set_tags, one, "ann", tags) == ["draft", "sci-fi_2", "to send"]
    await store.run(library.set_tags, two, "ann", ["draft"])
    counts = await store.run(library.list_tags, "ann")
    assert [(c.tag, c.count) for c in counts] == [("draft", 2), ("sci-fi_2", 1), ("to send", 1)]
    listed = {d.id: d.tags for d in await store.run(documents.list_documents, "ann")}
    assert listed == {one: ["draft", "sci-fi_2", "to send"], two: ["draft"]}
    filtered = await store.run(documents.list_documents, "ann", "updated", "to send")
    assert [d.id for d in filtered] == [one]
    # replacing, and clearing
    await store.run(library.set_tags, one, "ann", [])
    assert [(c.tag, c.count) for c in await store.run(library.list_tags, "ann")] == [("draft", 1)]
    # someone who cannot read the document cannot tag it
    with pytest.raises(DocumentNotFound):
        await store.run(library.set_tags, two, "bob", ["mine"])


@pytest.mark.parametrize(
    "bad",
    [
        [""],
        ["   "],
        ["x" * (TAG_MAX + 1)],
        ["<b>"],
        ["a/b"],
        ["comma,separated"],
        [3],
        [None],
        [f"t{i}" for i in range(TAGS_PER_DOCUMENT + 1)],
    ],
)
def test_a_bad_tag_is_refused(bad: list[object]) -> None:
    with pytest.raises(TagInvalid):
        library.normalize_tags(bad)


def test_the_most_tags_allowed_fit() -> None:
    assert len(library.normalize_tags([f"t{i}" for i in range(TAGS_PER_DOCUMENT)])) == TAGS_PER_DOCUMENT
    assert library.normalize_tags(["x" * TAG_MAX]) == ["x" * TAG_MAX]


async def test_sort_by_title_or_last_change(store: Store) -> None:
    b = await make(store, "banana", "1")
    a = await make(store, "Apple", "2")
    c = await make(store, "cherry", "3")
    await store.run(collab.save_text, b, "changed last")
    assert [d.id for d in await store.run(documents.list_documents, "ann")] == [b, c, a]
    assert [d.id for d in await store.run(documents.list_documents, "ann", "title")] == [a, b, c]


async def test_trash_hides_restores_and_deletes_for_ever(store: Store) -> None:
    doc = await make(store, "Doomed", "text")
    await store.run(sharing.put_member, doc, "bob", Role.EDITOR)
    await store.run(documents.delete_document, doc, "ann")
    # gone for everyone: the list, opening it, its role
    assert await store.run(documents.list_documents, "ann") == []
    assert await store.run(documents.list_documents, "bob") == []
    assert await store.run(documents.role_of, doc, "ann") is None
    with pytest.raises(DocumentNotFound):
        await store.run(documents.get_document, doc, "bob")
    # only the owner sees it in the trash, and only the owner restores it
    [trashed] = await store.run(library.list_trash, "ann")
    assert trashed.id == doc and trashed.deleted_at is not None
    assert await store.run(library.list_trash, "bob") == []
    with pytest.raises(DocumentNotFound):
        await store.run(library.restore, doc, "bob")
    await store.run(library.restore, doc, "ann")
    assert [d.id for d in await store.run(documents.list_documents, "bob")] == [doc]
    # a document out of the trash cannot be deleted for ever; one in it can, by its owner only
    with pytest.raises(DocumentNotFound):
        await store.run(library.delete_forever, doc, "ann")
    await store.run(documents.delete_document, doc, "ann")
    with pytest.raises(DocumentNotFound):
        await store.run(library.delete_forever, doc, "bob")
    await store.run(library.delete_forever, doc, "ann")
    assert await store.run(library.list_trash, "ann") == []
    assert await store.run(lambda session: session.get(Document, doc)) is None


async def test_documents_in_the_trash_over_30_days_are_purged(store: Store) -> None:
    old = await make(store, "Old", "x")
    recent = await make(store, "Recent", "y")
    kept = await make(store, "Kept", "z")
    for doc in (old, recent):
        await store.run(documents.delete_document, doc, "ann")

    def age(session: Session, document_id: str, days: float) -> None:
        document = session.get(Document, document_id)
        assert document is not None
        document.deleted_at = utcnow() - timedelta(days=days)
        session.add(document)

    await store.run(age, old, 30.01)
    await store.run(age, recent, 29.9)
    # an expired one is not listed even before the sweep
    assert [d.id for d in await store.run(library.list_trash, "ann")] == [recent]
    assert await store.run(library.purge_expired) == 1
    assert await store.run(lambda session: session.get(Document, old)) is None
    assert await store.run(library.purge_expired) == 0
    assert [d.id for d in await store.run(documents.list_documents, "ann")] == [kept]
    assert [d.id for d in await store.run(library.list_trash, "ann")] == [recent]


async def test_the_index_covers_documents_written_before_it_existed(database_url: str) -> None:
    from storage.database import make_engine, upgrade

    engine = make_engine(database_url)
    upgrade(engine, "0005")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO documents (id, title, owner, text, version, created_at, updated_at, notes) "
                "VALUES ('old1', 'Old draft', 'ann', 'Forgotten marmalade.', 1, :now, :now, '')"
            ),
            {"now": utcnow()},
        )
    engine.dispose()
    async with Store(database_url) as store:
        [hit] = await search(store, "ann", "marmalade")
        assert hit.id == "old1"


async def test_postgres_search_uses_the_gin_index(store: Store) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the GIN index is PostgreSQL's; SQLite has its FTS5 table")
    await make(store, "Indexed", "a word to find")

    def plan(session: Session) -> str:
        connection = session.connection()
        connection.execute(text("SET LOCAL enable_seqscan = off"))  # as on a table too big to scan
        rows = connection.execute(
            text(
                "EXPLAIN SELECT id FROM documents "
                "WHERE to_tsvector('simple', title || ' ' || text) @@ to_tsquery('simple', 'find:*')"
            )
        ).all()
        return "\n".join(str(row[0]) for row in rows)

    assert "ix_documents_search" in await store.run(plan)
