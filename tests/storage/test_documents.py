"""Document and suggestion queries, on SQLite and (in CI) PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from storage import collab, documents, suggestions
from storage.database import Store
from storage.documents import DocumentNotFound
from storage.models import DocumentCreate, Outcome, SuggestionCreate


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with Store(database_url) as started:
        yield started


async def test_create_list_update_delete(store: Store) -> None:
    created = await store.run(documents.create_document, DocumentCreate(title="Chapter One"), "ann")
    await store.run(documents.create_document, DocumentCreate(title="Someone else's"), "bob")
    await store.run(collab.save_text, created.id, "It is a truth.\nAnother line.")
    await store.run(documents.rename_document, created.id, "ann", "  Chapter One  ")
    updated = await store.run(documents.get_document, created.id, "ann")
    assert updated.version == created.version + 1 and updated.text == "It is a truth.\nAnother line."

    listed = await store.run(documents.list_documents, "ann")
    assert [d.title for d in listed] == ["Chapter One"]
    assert listed[0].chars == len(updated.text) and listed[0].preview == "It is a truth. Another line."

    await store.run(documents.delete_document, created.id, "ann")
    with pytest.raises(DocumentNotFound):
        await store.run(documents.get_document, created.id, "ann")


async def test_another_owner_cannot_see_a_document(store: Store) -> None:
    created = await store.run(documents.create_document, DocumentCreate(title="Private"), "ann")
    with pytest.raises(DocumentNotFound):
        await store.run(documents.get_document, created.id, "bob")
    with pytest.raises(DocumentNotFound):
        await store.run(documents.rename_document, created.id, "bob", "vandalism")
    assert (await store.run(documents.get_document, created.id, "ann")).title == "Private"


async def test_suggestion_history_records_result_and_feedback(store: Store) -> None:
    document = await store.run(documents.create_document, DocumentCreate(title="Doc"), "ann")
    suggestion_id = await store.run(
        suggestions.record_request,
        SuggestionCreate(
            document_id=document.id, user="ann", context_chars=12, params={"n": 2}, model="m", device="cpu"
        ),
    )
    await store.run(
        suggestions.record_result, suggestion_id, Outcome.SHOWN, ["a cat", "a dog"], 61.5, 300.0, 7
    )
    await store.run(suggestions.record_feedback, suggestion_id, Outcome.PARTIAL, 2, 1)

    [row] = await store.run(suggestions.list_suggestions, document.id, "ann")
    assert (row.outcome, row.accepted_chars, row.alternative) == ("partial", 2, 1)
    assert row.alternatives == ["a cat", "a dog"] and row.params == {"n": 2} and row.tokens == 7

    await store.run(documents.delete_document, document.id, "ann")
    with pytest.raises(DocumentNotFound):
        await store.run(suggestions.list_suggestions, document.id, "ann")
