"""Version history queries: authors, names, what is merged and what never is, on SQLite and
(in CI) PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from storage import collab, documents, versions
from storage.database import Store
from storage.documents import DocumentNotFound
from storage.models import VERSION_NAME_MAX, DocumentCreate, Revision


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with Store(database_url) as started:
        yield started


async def _document(store: Store) -> str:
    return (await store.run(documents.create_document, DocumentCreate(title="Draft"), "ann")).id


async def test_autosaves_share_a_revision_and_gather_its_authors(store: Store) -> None:
    doc_id = await _document(store)
    await store.run(collab.save_text, doc_id, "First", "autosave", ["ann"])
    await store.run(collab.save_text, doc_id, "First words", "autosave", ["bob", "ann"])
    await store.run(collab.save_text, doc_id, "First words here", "autosave", [])
    listed = await store.run(versions.list_versions, doc_id, "ann")
    assert len(listed) == 1
    assert listed[0].chars == len("First words here") and listed[0].authors == ["ann", "bob"]


async def test_a_new_revision_names_only_those_who_wrote_since_the_one_before(store: Store) -> None:
    doc_id = await _document(store)
    await store.run(collab.save_text, doc_id, "One", "autosave", ["ann"])
    _age_revisions(store, doc_id)
    await store.run(collab.save_text, doc_id, "One two", "autosave", ["bob"])
    listed = await store.run(versions.list_versions, doc_id, "ann")
    assert [v.authors for v in listed] == [["bob"], ["ann"]]


async def test_a_named_version_is_never_merged_into_a_later_autosave(store: Store) -> None:
    doc_id = await _document(store)
    await store.run(collab.save_text, doc_id, "Sent", "autosave", ["ann"])
    first = (await store.run(versions.list_versions, doc_id, "ann"))[0]
    named = await store.run(versions.name_version, doc_id, "ann", first.id, "sent to editor")
    assert named.name == "sent to editor"
    await store.run(collab.save_text, doc_id, "Sent, then changed", "autosave", ["bob"])
    listed = await store.run(versions.list_versions, doc_id, "ann")
    assert [(v.name, v.chars, v.authors) for v in listed] == [
        (None, len("Sent, then changed"), ["bob"]),
        ("sent to editor", len("Sent"), ["ann"]),
    ]
    kept = await store.run(versions.get_version, doc_id, "ann", first.id)
    assert kept.text == "Sent"


async def test_saving_a_named_version_names_the_newest_when_it_holds_the_text(store: Store) -> None:
    doc_id = await _document(store)
    await store.run(collab.save_text, doc_id, "Same", "autosave", ["ann"])
    saved = await store.run(versions.save_version, doc_id, "ann", "v1", versions.NAMED)
    listed = await store.run(versions.list_versions, doc_id, "ann")
    assert len(listed) == 1 and listed[0].id == saved.id and listed[0].authors == ["ann"]
    # named already: another name makes a copy of its own
    again = await store.run(versions.save_version, doc_id, "ann", "v2", versions.NAMED)
    assert again.id != saved.id and again.reason == "named"
    kept = await store.run(versions.save_version, doc_id, "ann", None, versions.BEFORE_RESTORE)
    assert kept.reason == "before-restore" and kept.name is None
    assert len(await store.run(versions.list_versions, doc_id, "ann")) == 3


async def test_a_restore_keeps_the_text_it_replaces(store: Store) -> None:
    doc_id = await _document(store)
    await store.run(collab.save_text, doc_id, "Old text")
    old = (await store.run(versions.list_versions, doc_id, "ann"))[0]
    _age_revisions(store, doc_id)
    await store.run(collab.save_text, doc_id, "New text")
    assert await store.run(versions.text_to_restore, doc_id, "ann", old.id) == "Old text"
    listed = await store.run(versions.list_versions, doc_id, "ann")
    assert [v.reason for v in listed] == ["before-restore", "autosave", "autosave"]
    assert (await store.run(versions.get_version, doc_id, "ann", listed[0].id)).text == "New text"


async def test_unchanged_text_adds_its_writers_to_the_newest_revision(store: Store) -> None:
    """Among replicas the lease holder saved the text; the replica they wrote through names them."""
    doc_id = await _document(store)
    await store.run(collab.save_text, doc_id, "Both", "autosave", ["ann"])
    await store.run(collab.save_text, doc_id, "Both", "autosave", ["bob"])
    await store.run(versions.add_authors, doc_id, ["cid", "ann"])
    assert (await store.run(versions.list_versions, doc_id, "ann"))[0].authors == ["ann", "bob", "cid"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("x" * (VERSION_NAME_MAX + 1), f"at most {VERSION_NAME_MAX}"),
        ("two\nlines", "no control characters"),
        ("bell\x07", "no control characters"),
        (12, "must be a string"),
    ],
)
def test_bad_names_are_refused(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        versions.clean_name(raw)


def test_names_are_trimmed_and_may_be_as_long_as_the_limit() -> None:
    assert versions.clean_name("  sent to editor \t") == "sent to editor"
    assert versions.clean_name("é" * VERSION_NAME_MAX) == "é" * VERSION_NAME_MAX


async def test_versions_of_another_document_or_user_are_not_found(store: Store) -> None:
    doc_id = await _document(store)
    other = await _document(store)
    await store.run(collab.save_text, doc_id, "Mine")
    mine = (await store.run(versions.list_versions, doc_id, "ann"))[0]
    with pytest.raises(versions.VersionNotFound):
        await store.run(versions.get_version, other, "ann", mine.id)
    with pytest.raises(versions.VersionNotFound):
        await store.run(versions.name_version, other, "ann", mine.id, "stolen")
    with pytest.raises(DocumentNotFound):
        await store.run(versions.list_versions, doc_id, "mallory")
    with pytest.raises(DocumentNotFound):
        await store.run(versions.name_version, doc_id, "mallory", mine.id, "stolen")
    assert (await store.run(versions.get_version, doc_id, "ann", mine.id)).name is None


def _age_revisions(store: Store, document_id: str) -> None:
    """Make the document's revisions older than the autosave window (as if a minute passed)."""
    with Session(store.engine) as session:
        for revision in session.exec(select(Revision).where(Revision.document_id == document_id)).all():
            revision.created_at = revision.created_at - versions.REVISION_EVERY - timedelta(seconds=1)
            session.add(revision)
        session.commit()
