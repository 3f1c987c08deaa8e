"""A steadier assistant's history rules: a suggestion that produced no text is recorded as empty and
never listed; text the writer typed through is their own ("typed"), not an acceptance; notes are
stored cleaned. On SQLite and (in CI) PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from storage import documents, notes, suggestions
from storage.database import Store
from storage.documents import DocumentNotFound
from storage.models import NOTES_MAX, DocumentCreate, Outcome, SuggestionCreate


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with Store(database_url) as started:
        yield started


async def new_suggestion(store: Store, document_id: str) -> int:
    data = SuggestionCreate(
        document_id=document_id, user="ann", context_chars=5, params={}, model="m", device="cpu"
    )
    suggestion_id: int = await store.run(suggestions.record_request, data)
    return suggestion_id


async def test_a_suggestion_without_text_is_empty_and_not_listed(store: Store) -> None:
    document = await store.run(documents.create_document, DocumentCreate(title="Doc"), "ann")
    empty = await new_suggestion(store, document.id)
    await store.run(suggestions.record_result, empty, Outcome.SHOWN, ["", ""], None, 40.0, 1)
    shown = await new_suggestion(store, document.id)
    await store.run(suggestions.record_result, shown, Outcome.SHOWN, ["", " a dog"], 30.0, 90.0, 3)
    cancelled = await new_suggestion(store, document.id)
    await store.run(suggestions.record_result, cancelled, Outcome.CANCELLED, [""], None, None, 0)
    typed_over = await new_suggestion(store, document.id)
    await store.run(suggestions.record_result, typed_over, Outcome.CANCELLED, [" and"], 20.0, 50.0, 1)
    busy = await new_suggestion(store, document.id)
    await store.run(suggestions.record_result, busy, Outcome.BUSY, [""], None, None, 0)
    await new_suggestion(store, document.id)  # still generating

    rows = await store.run(suggestions.list_suggestions, document.id, "ann")
    # no "(no text) · cancelled" rows: only suggestions that put text on the screen are listed
    assert {row.id: row.outcome for row in rows} == {shown: "shown", typed_over: "cancelled"}


@pytest.mark.parametrize("late", [Outcome.CANCELLED, Outcome.SUPERSEDED, Outcome.SHOWN])
async def test_an_acceptance_outlives_the_end_of_the_generation_it_stopped(
    store: Store, late: Outcome
) -> None:
    """Tab while the ghost streams: the editor's feedback is stored before the cancelled
    generation's result; the result adds its text and timings and keeps the outcome."""
    document = await store.run(documents.create_document, DocumentCreate(title="Doc"), "ann")
    suggestion_id = await new_suggestion(store, document.id)
    await store.run(suggestions.record_feedback, suggestion_id, Outcome.ACCEPTED, 7, 0)
    await store.run(suggestions.record_result, suggestion_id, late, [" and so"], 30.0, 90.0, 2)
    [row] = await store.run(suggestions.list_suggestions, document.id, "ann")
    assert (row.outcome, row.accepted_chars, row.alternatives, row.total_ms) == (
        "accepted",
        7,
        [" and so"],
        90.0,
    )


async def test_typed_through_is_recorded_as_typed_with_nothing_accepted(store: Store) -> None:
    document = await store.run(documents.create_document, DocumentCreate(title="Doc"), "ann")
    suggestion_id = await new_suggestion(store, document.id)
    await store.run(suggestions.record_result, suggestion_id, Outcome.SHOWN, [" and so"], 30.0, 90.0, 2)
    await store.run(suggestions.record_feedback, suggestion_id, Outcome.TYPED, 0, 0)
    [row] = await store.run(suggestions.list_suggestions, document.id, "ann")
    assert (row.outcome, row.accepted_chars) == ("typed", 0)


async def test_notes_are_stored_and_read_back(store: Store) -> None:
    document = await store.run(documents.create_document, DocumentCreate(title="Doc"), "ann")
    cleaned = notes.clean_notes("  Tone: dry.\r\nAudience: editors.\t \n")
    assert cleaned == "Tone: dry.\nAudience: editors."
    await store.run(notes.set_notes, document.id, "ann", cleaned)
    assert await store.run(notes.notes_of, document.id) == cleaned
    assert (await store.run(documents.get_document, document.id, "ann")).notes == cleaned
    with pytest.raises(DocumentNotFound):
        await store.run(notes.set_notes, document.id, "bob", "vandalism")
    with pytest.raises(DocumentNotFound):
        await store.run(notes.notes_of, "no-such-document")


@pytest.mark.parametrize(
    "bad", ["x" * (NOTES_MAX + 1), "bell\x07", "escape\x1b[0m", "next\x85line", "\ud800"]
)
def test_bad_notes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="notes"):
        notes.clean_notes(bad)


async def test_feedback_and_the_generations_end_written_at_once_keep_the_feedback(store: Store) -> None:
    """The socket stores both on worker threads, each in its own transaction: whichever commits
    first, the writer's acceptance stands (a read-then-write `record_result` lost it 2 runs in 6)."""
    document = await store.run(documents.create_document, DocumentCreate(title="Doc"), "ann")
    ids = [await new_suggestion(store, document.id) for _ in range(40)]
    await asyncio.gather(
        *(
            call
            for suggestion_id in ids
            for call in (
                store.run(suggestions.record_feedback, suggestion_id, Outcome.ACCEPTED, 3, 0),
                store.run(
                    suggestions.record_result, suggestion_id, Outcome.CANCELLED, [" and"], 9.0, 20.0, 1
                ),
            )
        )
    )
    rows = await store.run(suggestions.list_suggestions, document.id, "ann")
    assert {row.outcome for row in rows} == {"accepted"} and len(rows) == len(ids)
