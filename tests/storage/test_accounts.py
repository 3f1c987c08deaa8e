"""Accounts, sessions, members and share links, on SQLite and (in CI) PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from storage import accounts, documents, sharing
from storage.accounts import UsernameTaken, UserNotFound
from storage.database import Store
from storage.documents import DocumentNotFound
from storage.models import DocumentCreate, Role, utcnow
from storage.sharing import LinkNotValid


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with Store(database_url) as started:
        for name in ("ann", "bob", "cy"):
            await started.run(accounts.create_user, name, f"hash-of-{name}")
        yield started


async def test_the_first_account_is_the_admin_and_names_are_unique(store: Store) -> None:
    users = await store.run(accounts.list_users)
    assert [(u.username, u.is_admin) for u in users] == [("ann", True), ("bob", False), ("cy", False)]
    with pytest.raises(UsernameTaken):
        await store.run(accounts.create_user, "bob", "another-hash")


async def test_live_sessions_are_those_neither_ended_nor_expired(store: Store) -> None:
    later, earlier = utcnow() + timedelta(days=1), utcnow() - timedelta(seconds=1)
    await store.run(accounts.start_session, "open", "ann", later, "10.0.0.1", None)
    await store.run(accounts.start_session, "expired", "ann", earlier, "10.0.0.1", None)
    await store.run(accounts.start_session, "ended", "bob", later, "10.0.0.1", None)
    await store.run(accounts.end_session, "ended")
    many = {f"unknown{i}" for i in range(accounts.SESSIONS_PER_QUERY + 10)}  # more than one query
    asked = {"open", "expired", "ended"} | many
    assert await store.run(accounts.live_sessions, asked) == {"open"}


async def test_sessions_expire_rotate_and_end_with_a_password_change(store: Store) -> None:
    later = utcnow() + timedelta(days=1)
    await store.run(accounts.start_session, "s1", "ann", later, "10.0.0.1", None)
    assert (await store.run(accounts.session_user, "s1")).username == "ann"
    # signing in again from the same browser: the old id stops working
    await store.run(accounts.start_session, "s2", "ann", later, "10.0.0.1", "s1")
    assert await store.run(accounts.session_user, "s1") is None
    assert (await store.run(accounts.session_user, "s2")).username == "ann"

    await store.run(accounts.start_session, "old", "bob", utcnow() - timedelta(seconds=1), "", None)
    assert await store.run(accounts.session_user, "old") is None

    await store.run(accounts.set_password_hash, "ann", "new-hash")
    assert await store.run(accounts.session_user, "s2") is None
    assert (await store.run(accounts.get_user, "ann")).password_hash == "new-hash"


async def test_members_see_shared_documents_with_their_role(store: Store) -> None:
    doc = await store.run(documents.create_document, DocumentCreate(title="Shared"), "ann")
    await store.run(documents.create_document, DocumentCreate(title="Private"), "ann")
    assert await store.run(documents.role_of, doc.id, "bob") is None
    with pytest.raises(DocumentNotFound):
        await store.run(documents.get_document, doc.id, "bob")

    member, created = await store.run(sharing.put_member, doc.id, "bob", Role.VIEWER)
    assert created and member.role is Role.VIEWER
    listed = await store.run(documents.list_documents, "bob")
    assert [(d.title, d.owner, d.role) for d in listed] == [("Shared", "ann", Role.VIEWER)]
    assert (await store.run(documents.get_document, doc.id, "bob")).role is Role.VIEWER

    _, created = await store.run(sharing.put_member, doc.id, "bob", Role.EDITOR)
    assert not created
    members = await store.run(sharing.list_members, doc.id)
    assert [(m.username, m.role) for m in members] == [("ann", Role.OWNER), ("bob", Role.EDITOR)]
    with pytest.raises(UserNotFound):
        await store.run(sharing.put_member, doc.id, "nobody", Role.VIEWER)

    assert await store.run(sharing.remove_member, doc.id, "bob")
    assert not await store.run(sharing.remove_member, doc.id, "bob")
    assert await store.run(documents.list_documents, "bob") == []


async def test_links_join_expire_revoke_and_never_lower_a_role(store: Store) -> None:
    doc = await store.run(documents.create_document, DocumentCreate(title="Linked"), "ann")
    viewer_link = await store.run(sharing.create_link, doc.id, "h-view", Role.VIEWER, "ann", None)
    await store.run(sharing.create_link, doc.id, "h-edit", Role.EDITOR, "ann", utcnow() + timedelta(days=1))
    await store.run(sharing.create_link, doc.id, "h-old", Role.EDITOR, "ann", utcnow() - timedelta(seconds=1))

    assert await store.run(sharing.join_by_link, "h-view", "bob") == (doc.id, Role.VIEWER)
    assert await store.run(sharing.join_by_link, "h-edit", "bob") == (doc.id, Role.EDITOR)
    assert await store.run(sharing.join_by_link, "h-view", "bob") == (doc.id, Role.EDITOR)
    assert await store.run(sharing.join_by_link, "h-view", "ann") == (doc.id, Role.OWNER)
    with pytest.raises(LinkNotValid):
        await store.run(sharing.join_by_link, "h-old", "cy")
    with pytest.raises(LinkNotValid):
        await store.run(sharing.join_by_link, "no-such-hash", "cy")

    assert await store.run(sharing.revoke_link, doc.id, viewer_link.id)
    with pytest.raises(LinkNotValid):
        await store.run(sharing.join_by_link, "h-view", "cy")
    links = await store.run(sharing.list_links, doc.id)
    assert [(link.role, link.revoked, link.expired) for link in links] == [
        (Role.EDITOR, False, True),
        (Role.EDITOR, False, False),
        (Role.VIEWER, True, False),
    ]
    assert not await store.run(sharing.revoke_link, "other-document", links[0].id)


async def test_deleting_a_document_takes_its_members_and_links(store: Store) -> None:
    doc = await store.run(documents.create_document, DocumentCreate(title="Gone soon"), "ann")
    await store.run(sharing.put_member, doc.id, "bob", Role.EDITOR)
    await store.run(sharing.create_link, doc.id, "h-gone", Role.VIEWER, "ann", None)
    await store.run(documents.delete_document, doc.id, "ann")
    assert await store.run(documents.list_documents, "bob") == []
    with pytest.raises(LinkNotValid):
        await store.run(sharing.join_by_link, "h-gone", "cy")
