"""Comments: threads and replies, their bounds, editing, resolving and deleting, on SQLite and
PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest

from storage import accounts, comments, documents, library
from storage.comments import CommentInvalid, CommentLimit, CommentNotFound, NotYours
from storage.database import Store
from storage.models import ANCHOR_MAX, COMMENT_MAX, QUOTE_MAX, DocumentCreate

START = base64.b64encode(b"\x01\x02\x03").decode()
END = base64.b64encode(b"\x01\x02\x07").decode()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with Store(database_url) as started:
        for name in ("ann", "bob"):
            await started.run(accounts.create_user, name, f"hash-of-{name}")
        yield started


@pytest.fixture
async def doc(store: Store) -> str:
    created = await store.run(documents.create_document, DocumentCreate(title="Letter"), "ann")
    return created.id


async def thread(
    store: Store, doc: str, body: str = "Too formal?", author: str = "bob"
) -> comments.ThreadRead:
    return await store.run(comments.add_thread, doc, author, body, START, END, "Dear Sir")


async def test_threads_list_with_their_replies_in_order(store: Store, doc: str) -> None:
    first = await thread(store, doc, "  Too formal?\n")
    second = await thread(store, doc, "Typo", author="ann")
    reply = await store.run(comments.add_reply, doc, first.id, "ann", "Agreed")
    await store.run(comments.add_reply, doc, first.id, "bob", "Changed it")
    listed = await store.run(comments.list_threads, doc)
    assert [t.id for t in listed] == [first.id, second.id]
    assert (listed[0].body, listed[0].quote, listed[0].anchor_start) == ("Too formal?", "Dear Sir", START)
    assert [(r.author, r.body, r.thread_id) for r in listed[0].replies] == [
        ("ann", "Agreed", first.id),
        ("bob", "Changed it", first.id),
    ]
    assert listed[1].replies == [] and reply.id is not None


@pytest.mark.parametrize(
    ("body", "anchor", "quote", "message"),
    [
        ("   ", START, "", "body: write something first"),
        ("x" * (COMMENT_MAX + 1), START, "", f"body: at most {COMMENT_MAX}"),
        ("bell\x07", START, "", "body: control characters"),
        ("nul\x00", START, "", "body: control characters"),
        ("ok", "not base64!", "", "anchor_start: not base64"),
        ("ok", "", "", "anchor_start: a base64"),
        ("ok", "A" * (ANCHOR_MAX + 4), "", "anchor_start: a base64"),
        ("ok", START, "q" * (QUOTE_MAX + 1), f"quote: at most {QUOTE_MAX}"),
    ],
)
async def test_bad_input_is_refused_and_stores_nothing(
    store: Store, doc: str, body: str, anchor: str, quote: str, message: str
) -> None:
    with pytest.raises(CommentInvalid, match=message):
        await store.run(comments.add_thread, doc, "ann", body, anchor, END, quote)
    assert await store.run(comments.list_threads, doc) == []


async def test_newlines_and_tabs_are_kept(store: Store, doc: str) -> None:
    made = await thread(store, doc, "one\n\ttwo")
    assert made.body == "one\n\ttwo"


async def test_replies_go_to_a_first_comment_of_the_same_document(store: Store, doc: str) -> None:
    first = await thread(store, doc)
    reply = await store.run(comments.add_reply, doc, first.id, "ann", "Yes")
    with pytest.raises(CommentInvalid, match="thread_id"):
        await store.run(comments.add_reply, doc, reply.id, "ann", "nested")
    other = await store.run(documents.create_document, DocumentCreate(title="Other"), "ann")
    with pytest.raises(CommentNotFound):
        await store.run(comments.add_reply, other.id, first.id, "ann", "elsewhere")
    with pytest.raises(CommentNotFound):
        await store.run(comments.add_reply, doc, 999_999, "ann", "nowhere")


async def test_only_the_author_edits_a_body(store: Store, doc: str) -> None:
    first = await thread(store, doc)
    with pytest.raises(NotYours):
        await store.run(comments.edit_body, doc, first.id, "ann", "Mine now")
    edited = await store.run(comments.edit_body, doc, first.id, "bob", "Too stiff?")
    assert edited.body == "Too stiff?" and edited.edited_at is not None
    with pytest.raises(CommentInvalid):
        await store.run(comments.edit_body, doc, first.id, "bob", "")
    [listed] = await store.run(comments.list_threads, doc)
    assert listed.body == "Too stiff?"


async def test_resolve_and_reopen_a_thread_from_any_of_its_comments(store: Store, doc: str) -> None:
    first = await thread(store, doc)
    reply = await store.run(comments.add_reply, doc, first.id, "ann", "Fixed")
    resolved = await store.run(comments.set_resolved, doc, reply.id, "ann", True)
    assert resolved.id == first.id and resolved.resolved_by == "ann" and resolved.resolved_at is not None
    again = await store.run(comments.set_resolved, doc, first.id, "bob", True)
    assert again.resolved_by == "ann"  # resolving twice keeps who did it first
    reopened = await store.run(comments.set_resolved, doc, first.id, "bob", False)
    assert (reopened.resolved_at, reopened.resolved_by) == (None, None)


async def test_delete_rules(store: Store, doc: str) -> None:
    first = await thread(store, doc)
    reply = await store.run(comments.add_reply, doc, first.id, "ann", "Fine")
    other = await store.run(comments.add_reply, doc, first.id, "bob", "Thanks")
    with pytest.raises(NotYours):
        await store.run(comments.delete_comment, doc, reply.id, "bob", False)
    await store.run(comments.delete_comment, doc, other.id, "bob", False)  # own reply
    [listed] = await store.run(comments.list_threads, doc)
    assert [r.id for r in listed.replies] == [reply.id]
    await store.run(comments.delete_comment, doc, first.id, "ann", True)  # the owner: any; the thread goes
    assert await store.run(comments.list_threads, doc) == []
    with pytest.raises(CommentNotFound):
        await store.run(comments.delete_comment, doc, reply.id, "ann", True)


async def test_comments_are_capped_per_document_and_per_thread(
    store: Store, doc: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(comments, "COMMENTS_PER_DOCUMENT", 3)
    monkeypatch.setattr(comments, "REPLIES_PER_THREAD", 1)
    first = await thread(store, doc)
    await store.run(comments.add_reply, doc, first.id, "ann", "one")
    with pytest.raises(CommentLimit, match="at most 1 replies"):
        await store.run(comments.add_reply, doc, first.id, "ann", "two")
    await thread(store, doc)
    with pytest.raises(CommentLimit, match="at most 3 comments"):
        await thread(store, doc)
    assert sum(1 + len(t.replies) for t in await store.run(comments.list_threads, doc)) == 3


async def test_a_document_deleted_for_ever_takes_its_comments(store: Store, doc: str) -> None:
    first = await thread(store, doc)
    await store.run(comments.add_reply, doc, first.id, "ann", "Yes")
    await store.run(documents.delete_document, doc, "ann")
    assert len(await store.run(comments.list_threads, doc)) == 1  # in the trash: kept, for a restore
    await store.run(library.delete_forever, doc, "ann")
    assert await store.run(comments.list_threads, doc) == []
