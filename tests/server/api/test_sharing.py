"""Sharing: members and roles, share links, and roles enforced on live sockets (a viewer's crafted
CRDT update changes nothing and is logged; a change of role reaches open sockets at once)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Text, create_awareness_message, write_message
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from harness.accounts import account
from harness.yclient import YClient
from server.app import create_app
from server.collab.yupdates import write_var_uint
from server.collab.ywire import MESSAGE_ROLE_CHANGED
from server.errors import WS_4403_FORBIDDEN
from server.settings import Settings
from storage import documents
from storage.models import ShareLink, utcnow
from streaming.loader import LoadedModel
from tests.conftest import serve, wait_until

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def people(client: TestClient) -> dict[str, dict[str, str]]:
    """alice (the `client` fixture's user) and three more accounts."""
    return {name: account(client, name) for name in ("alice", "bob", "carol", "dan")}


def test_the_owner_invites_changes_and_removes_members(client: TestClient, people: dict[str, Any]) -> None:
    document = client.post("/api/documents", json={"title": "Team"}).json()
    path = f"/api/documents/{document['id']}"
    bob = people["bob"]
    assert client.get(path, headers=bob).status_code == 404

    added = client.post(f"{path}/members", json={"username": "Bob", "role": "viewer"})
    assert added.status_code == 201 and added.json()["role"] == "viewer"
    assert client.get(path, headers=bob).json()["role"] == "viewer"
    [row] = client.get("/api/documents", headers=bob).json()["documents"]
    assert (row["title"], row["owner"], row["role"]) == ("Team", "alice", "viewer")
    refused = client.patch(path, json={"text": "Bob was here"}, headers=bob)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")

    assert client.patch(f"{path}/members/bob", json={"role": "editor"}).status_code == 200
    assert client.patch(path, json={"text": "Bob was here"}, headers=bob).status_code == 200
    members = client.get(f"{path}/members", headers=bob).json()["members"]
    assert [(m["username"], m["role"]) for m in members] == [("alice", "owner"), ("bob", "editor")]

    assert client.delete(f"{path}/members/bob").status_code == 204
    assert client.get(path, headers=bob).status_code == 404
    assert client.get("/api/documents", headers=bob).json()["documents"] == []
    assert client.get(path).json()["text"] == "Bob was here"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"username": "nobody", "role": "viewer"}, 400, "no_such_user"),
        ({"username": "alice", "role": "editor"}, 400, "invalid"),
        ({"username": "bob", "role": "owner"}, 400, "invalid"),
        ({"username": "bob", "role": "admin"}, 400, "invalid"),
        ({"username": "bob"}, 400, "invalid"),
    ],
)
def test_bad_invitations_get_clear_errors(
    client: TestClient, people: dict[str, Any], body: dict[str, str], status: int, code: str
) -> None:
    document = client.post("/api/documents", json={"title": "Team"}).json()
    response = client.post(f"/api/documents/{document['id']}/members", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    members = client.get(f"/api/documents/{document['id']}/members").json()["members"]
    assert [m["username"] for m in members] == ["alice"]


def test_a_member_can_leave_but_the_owner_cannot(client: TestClient, people: dict[str, Any]) -> None:
    document = client.post("/api/documents", json={"title": "Team"}).json()
    path = f"/api/documents/{document['id']}"
    client.post(f"{path}/members", json={"username": "bob", "role": "editor"})
    client.post(f"{path}/members", json={"username": "carol", "role": "editor"})
    assert client.delete(f"{path}/members/carol", headers=people["bob"]).status_code == 403
    assert client.delete(f"{path}/members/bob", headers=people["bob"]).status_code == 204
    assert client.delete(f"{path}/members/alice").status_code == 400
    assert client.delete(f"{path}/members/bob").status_code == 404


def test_share_links_join_revoke_and_expire(client: TestClient, people: dict[str, Any]) -> None:
    document = client.post("/api/documents", json={"title": "Linked"}).json()
    path = f"/api/documents/{document['id']}"
    link = client.post(f"{path}/links", json={"role": "editor", "expires_in_days": 7}).json()
    assert link["url"] == f"/s/{link['token']}" and link["expires_at"] and not link["revoked"]

    carol = people["carol"]
    page = client.get(link["url"], headers=carol)
    assert page.status_code == 200 and "Linked" in page.text and "editor" in page.text
    joined = client.post(link["url"], headers=carol, follow_redirects=False)
    assert (joined.status_code, joined.headers["location"]) == (303, f"/d/{document['id']}")
    assert client.get(path, headers=carol).json()["role"] == "editor"
    again = client.get(link["url"], headers=carol)
    assert "You already have access" in again.text and f'href="/d/{document["id"]}"' in again.text

    assert client.delete(f"{path}/links/{link['id']}").status_code == 204
    listed = client.get(f"{path}/links").json()["links"]
    assert [(x["id"], x["revoked"]) for x in listed] == [(link["id"], True)]
    assert "token" not in listed[0]
    dan = people["dan"]
    assert client.get(link["url"], headers=dan).status_code == 404
    assert client.post(link["url"], headers=dan, follow_redirects=False).status_code == 404
    assert client.get(path, headers=dan).status_code == 404
    assert client.get(path, headers=carol).status_code == 200  # revoking a link keeps who joined

    expiring = client.post(f"{path}/links", json={"role": "viewer", "expires_in_days": 1}).json()
    store = client.app.state.services.store  # type: ignore[attr-defined]

    def expire(session: Any) -> None:
        row = session.get(ShareLink, expiring["id"])
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)

    store.call(expire)
    assert client.post(expiring["url"], headers=dan, follow_redirects=False).status_code == 404
    assert client.get(path, headers=dan).status_code == 404

    for bad in (
        {"role": "owner"},
        {"expires_in_days": 0},
        {"expires_in_days": 366},
        {"role": "viewer", "x": 1},
    ):
        assert client.post(f"{path}/links", json=bad).status_code == 400


def test_a_change_of_role_reaches_open_sockets(client: TestClient, people: dict[str, Any]) -> None:
    document = client.post("/api/documents", json={"title": "Live"}).json()
    path = f"/api/documents/{document['id']}"
    client.post(f"{path}/members", json={"username": "bob", "role": "editor"})
    with client.websocket_connect(f"/ws/suggest/{document['id']}", headers=people["bob"]) as ws:
        assert ws.receive_json()["type"] == "hello"
        client.patch(f"{path}/members/bob", json={"role": "viewer"})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == WS_4403_FORBIDDEN

    # bob is a viewer now; promoted while connected, his document socket is told at once
    with client.websocket_connect(f"/ws/doc/{document['id']}", headers=people["bob"]) as ws:
        ws.receive_bytes()
        client.patch(f"{path}/members/bob", json={"role": "editor"})
        while (message := ws.receive_bytes())[0] != MESSAGE_ROLE_CHANGED:
            pass
        assert message == bytes([MESSAGE_ROLE_CHANGED]) + write_message(b"editor")
        client.delete(f"{path}/members/bob")
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_bytes()
    assert closed.value.code == WS_4403_FORBIDDEN


@pytest.fixture
def live(app_settings: Settings, loaded_model: LoadedModel) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    app = create_app(replace(app_settings), loaded_model)
    with serve(app) as url, httpx.Client(base_url=url) as http:
        people = {name: account(http, name) for name in ("alice", "vic", "ed")}
        document = http.post("/api/documents", json={"title": "Read me"}, headers=people["alice"]).json()[
            "id"
        ]
        http.patch(f"/api/documents/{document}", json={"text": "Only alice writes."}, headers=people["alice"])
        for name, role in (("vic", "viewer"), ("ed", "editor")):
            http.post(
                f"/api/documents/{document}/members",
                json={"username": name, "role": role},
                headers=people["alice"],
            )
        yield url.replace("http", "ws", 1) + f"/ws/doc/{document}", app, people


def test_a_viewers_crafted_update_changes_nothing_and_is_logged(
    live: Any, caplog: pytest.LogCaptureFixture
) -> None:
    socket, app, people = live
    document_id = socket.rsplit("/", 1)[1]

    async def run() -> None:
        async with (
            YClient(socket, headers=people["alice"]) as alice,
            YClient(socket, headers=people["vic"]) as vic,
        ):
            await asyncio.wait_for(alice.synced.wait(), 10)
            await asyncio.wait_for(vic.synced.wait(), 10)
            assert str(vic.text) == "Only alice writes."  # viewers read the live document
            await vic.set_awareness({"user": {"name": "vic"}}, clock=1)  # and show their presence
            await alice.wait_for(lambda c: vic.client_id in c.awareness)

            # an update made outside any editor, sent as a sync update and as a sync step 2
            forged = Doc()
            forged.apply_update(vic.doc.get_update())
            text = forged.get("content", type=Text)
            before = forged.get_state()
            text.insert(0, "Vic rewrote this. ")
            update = forged.get_update(before)
            await vic.send_raw(bytes([0, 2]) + _framed(update))
            await vic.send_raw(bytes([0, 1]) + _framed(update))
            await vic.wait_for(lambda c: len(c.rejected) == 2)
            assert vic.closed is None  # still reading along

            # alice's edit still flows to everyone, vic included
            alice.text.insert(len(b"Only alice writes."), " Still.")
            await alice.wait_saved()
            await vic.wait_for(lambda c: str(c.text) == "Only alice writes. Still.")
            assert str(alice.text) == "Only alice writes. Still."

        room = app.state.services.rooms.get(document_id)
        assert str(room.text) == "Only alice writes. Still."

    with caplog.at_level(logging.WARNING, logger="cowrite.audit"):
        asyncio.run(run())
    dropped = [
        r.getMessage()
        for r in caplog.records
        if "dropped a document update from viewer vic" in r.getMessage()
    ]
    assert dropped and document_id in dropped[0]
    wait_until(
        lambda: (
            app.state.services.store.call(documents.get_document, document_id, "alice").text
            == "Only alice writes. Still."
        ),
        "the text to be saved",
    )


def _cursor(clock: int) -> dict[str, Any]:
    """A cursor as y-codemirror publishes it: two Yjs relative positions."""
    position = {"type": None, "tname": "content", "item": {"client": 7, "clock": clock}, "assoc": 0}
    return {"anchor": position, "head": position}


def _framed(update: bytes) -> bytes:
    return write_message(update)


def test_nobody_can_move_or_rename_someone_elses_cursor(live: Any, caplog: pytest.LogCaptureFixture) -> None:
    socket, _, people = live

    async def run() -> None:
        async with (
            YClient(socket, headers=people["alice"]) as alice,
            YClient(socket, headers=people["ed"]) as ed,
            YClient(socket, headers=people["vic"]) as watcher,
        ):
            await alice.set_awareness({"user": {"name": "alice"}, "cursor": _cursor(1)}, clock=1)
            # ed labels his own cursor "alice": everyone sees "ed"
            await ed.set_awareness({"user": {"name": "alice", "color": "#123456"}}, clock=1)
            await watcher.wait_for(lambda c: {alice.client_id, ed.client_id} <= c.awareness.keys())
            assert watcher.awareness[ed.client_id]["user"] == {"name": "ed", "color": "#123456"}
            # ed sends a state under alice's client id: dropped, alice's cursor stays hers
            forged = json.dumps({"user": {"name": "alice"}, "cursor": _cursor(99)}).encode()
            entry = (
                write_var_uint(1)
                + write_var_uint(alice.client_id)
                + write_var_uint(5)
                + write_message(forged)
            )
            await ed.send_raw(create_awareness_message(entry))
            await ed.set_awareness(
                {"user": {"name": "ed"}, "cursor": _cursor(2)}, clock=2
            )  # a marker after it
            await watcher.wait_for(lambda c: c.awareness[ed.client_id].get("cursor") == _cursor(2))
            assert watcher.awareness[alice.client_id] == {"user": {"name": "alice"}, "cursor": _cursor(1)}
            # a state that is not a JSON object is malformed
            bad = write_var_uint(1) + write_var_uint(ed.client_id) + write_var_uint(9) + write_message(b"[1]")
            await ed.send_raw(create_awareness_message(bad))
            await ed.wait_for(lambda c: c.closed is not None)
            assert ed.closed == 1007

    with caplog.at_level(logging.WARNING, logger="cowrite.audit"):
        asyncio.run(run())
    assert any("another connection's client id" in r.getMessage() for r in caplog.records)
