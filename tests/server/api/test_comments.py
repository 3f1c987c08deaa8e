"""Comments over HTTP: roles, bounds, the author taken from the session, resolve and reopen, the
delete rules, and the live message (103) that tells a document's other sockets; and the commenter
role on both sockets (updates refused like a viewer's, no suggestion socket)."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Text, write_message
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from harness.accounts import account
from server.collab.ywire import MESSAGE_COMMENTS, MESSAGE_REJECTED
from server.errors import WS_4403_FORBIDDEN
from storage.models import ANCHOR_MAX, COMMENT_MAX, QUOTE_MAX

pytestmark = pytest.mark.timeout(180)

SPAN = {"anchor_start": "AQID", "anchor_end": "AQIH", "quote": "Dear Sir"}


@pytest.fixture
def people(client: TestClient) -> dict[str, dict[str, str]]:
    """alice (the `client` fixture's user, the owner) and cora (commenter), vic (viewer), ed (editor)."""
    return {name: account(client, name) for name in ("alice", "cora", "vic", "ed")}


@pytest.fixture
def path(client: TestClient, people: dict[str, Any]) -> str:
    document = client.post("/api/documents", json={"title": "Letter"}).json()
    for name, role in (("cora", "commenter"), ("vic", "viewer"), ("ed", "editor")):
        added = client.post(f"/api/documents/{document['id']}/members", json={"username": name, "role": role})
        assert added.status_code == 201
    return f"/api/documents/{document['id']}"


def threads(client: TestClient, path: str) -> list[dict[str, Any]]:
    response = client.get(f"{path}/comments")
    assert response.status_code == 200
    result: list[dict[str, Any]] = response.json()["threads"]
    return result


def test_a_commenter_comments_and_everyone_reads_it(client: TestClient, people: Any, path: str) -> None:
    made = client.post(f"{path}/comments", json={"body": "Too formal?", **SPAN}, headers=people["cora"])
    assert made.status_code == 201
    thread = made.json()
    assert (thread["author"], thread["body"], thread["quote"]) == ("cora", "Too formal?", "Dear Sir")
    reply = client.post(f"{path}/comments", json={"body": "Agreed", "thread_id": thread["id"]})
    assert reply.status_code == 201 and reply.json()["author"] == "alice"
    for who in ("vic", "ed", "cora"):
        listed = client.get(f"{path}/comments", headers=people[who]).json()["threads"]
        assert [(t["body"], [r["body"] for r in t["replies"]]) for t in listed] == [
            ("Too formal?", ["Agreed"])
        ]
    refused = client.post(f"{path}/comments", json={"body": "me too", **SPAN}, headers=people["vic"])
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    assert "comment" in refused.json()["error"]["message"]


def test_the_author_is_the_signed_in_user_never_the_clients_word(
    client: TestClient, people: Any, path: str
) -> None:
    forged = client.post(
        f"{path}/comments", json={"body": "hi", "author": "alice", **SPAN}, headers=people["cora"]
    )
    assert forged.status_code == 400  # no such field
    made = client.post(f"{path}/comments", json={"body": "hi", **SPAN}, headers=people["cora"]).json()
    assert made["author"] == "cora"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"body": "   ", **SPAN}, "body: write something first"),
        ({"body": "x" * (COMMENT_MAX + 1), **SPAN}, f"at most {COMMENT_MAX}"),
        ({"body": "bell\u0007", **SPAN}, "control characters"),
        ({"body": "ok", **SPAN, "anchor_start": "%%%"}, "anchor_start: not base64"),
        ({"body": "ok", **SPAN, "anchor_end": ""}, "anchor_end"),
        ({"body": "ok", **SPAN, "anchor_end": "A" * (ANCHOR_MAX + 1)}, "anchor_end"),
        ({"body": "ok", **SPAN, "quote": "q" * (QUOTE_MAX + 1)}, "quote"),
        ({"body": 5, **SPAN}, "body"),
        ({"body": "ok", "thread_id": 999_999}, "no such comment"),
        ({"body": "ok", "thread_id": "one"}, "thread_id"),
        ({**SPAN}, "body"),
        ([1, 2], "body"),
    ],
)
def test_bad_comments_get_clear_errors_and_change_nothing(
    client: TestClient, people: Any, path: str, body: Any, message: str
) -> None:
    response = client.post(f"{path}/comments", json=body, headers=people["cora"])
    assert response.status_code in (400, 404)
    assert message in response.json()["error"]["message"]
    assert threads(client, path) == []


def test_a_reply_takes_no_anchors(client: TestClient, people: Any, path: str) -> None:
    first = client.post(f"{path}/comments", json={"body": "One", **SPAN}).json()
    refused = client.post(f"{path}/comments", json={"body": "Two", "thread_id": first["id"], **SPAN})
    assert refused.status_code == 400 and "reply" in refused.json()["error"]["message"]
    assert threads(client, path)[0]["replies"] == []


def test_only_the_author_edits_and_commenters_resolve_and_reopen(
    client: TestClient, people: Any, path: str
) -> None:
    first = client.post(f"{path}/comments", json={"body": "Typo", **SPAN}, headers=people["cora"]).json()
    url = f"{path}/comments/{first['id']}"
    not_hers = client.patch(url, json={"body": "Mine"})  # alice owns the document, not the comment
    assert not_hers.status_code == 403
    bad = client.patch(url, json={"body": " ", "resolved": True}, headers=people["cora"])
    assert bad.status_code == 400
    [kept] = threads(client, path)
    assert (kept["body"], kept["resolved_at"]) == ("Typo", None)  # the bad body kept it open too
    edited = client.patch(url, json={"body": "Typo here"}, headers=people["cora"])
    assert edited.status_code == 200 and edited.json()["edited_at"] is not None
    assert client.patch(url, json={}).status_code == 400

    assert client.patch(url, json={"resolved": True}, headers=people["vic"]).status_code == 403
    resolved = client.patch(url, json={"resolved": True}, headers=people["ed"])
    assert resolved.status_code == 200 and resolved.json()["resolved_by"] == "ed"
    assert threads(client, path)[0]["resolved_by"] == "ed"
    reopened = client.patch(url, json={"resolved": False}, headers=people["cora"]).json()
    assert (reopened["resolved_at"], reopened["resolved_by"]) == (None, None)


def test_delete_rules(client: TestClient, people: Any, path: str) -> None:
    first = client.post(f"{path}/comments", json={"body": "Cut this?", **SPAN}, headers=people["ed"]).json()
    reply = client.post(
        f"{path}/comments", json={"body": "No", "thread_id": first["id"]}, headers=people["cora"]
    ).json()
    assert client.delete(f"{path}/comments/{reply['id']}", headers=people["ed"]).status_code == 403
    assert client.delete(f"{path}/comments/{reply['id']}", headers=people["vic"]).status_code == 403
    assert client.delete(f"{path}/comments/{reply['id']}", headers=people["cora"]).status_code == 204
    again = client.post(
        f"{path}/comments", json={"body": "Yes", "thread_id": first["id"]}, headers=people["cora"]
    )
    assert again.status_code == 201
    assert (
        client.delete(f"{path}/comments/{first['id']}").status_code == 204
    )  # the owner: anyone's, thread and all
    assert threads(client, path) == []
    assert client.delete(f"{path}/comments/{first['id']}").status_code == 404
    other = client.post("/api/documents", json={"title": "Other"}).json()
    made = client.post(f"{path}/comments", json={"body": "Here", **SPAN}).json()
    elsewhere = client.delete(f"/api/documents/{other['id']}/comments/{made['id']}")
    assert elsewhere.status_code == 404  # a comment is found through its own document only
    assert len(threads(client, path)) == 1


def test_a_change_reaches_the_documents_other_sockets(client: TestClient, people: Any, path: str) -> None:
    document_id = path.rsplit("/", 1)[1]
    with client.websocket_connect(f"/ws/doc/{document_id}", headers=people["vic"]) as ws:
        ws.receive_bytes()
        client.post(f"{path}/comments", json={"body": "Look", **SPAN}, headers=people["cora"])
        while (message := ws.receive_bytes())[0] != MESSAGE_COMMENTS:
            pass
        assert message == bytes([MESSAGE_COMMENTS])
        [thread] = threads(client, path)
        client.patch(f"{path}/comments/{thread['id']}", json={"resolved": True})
        while ws.receive_bytes()[0] != MESSAGE_COMMENTS:
            pass


def test_a_commenter_cannot_change_the_text_nor_get_suggestions(
    client: TestClient, people: Any, path: str
) -> None:
    document_id = path.rsplit("/", 1)[1]
    client.patch(path, json={"text": "Kept as is."})
    assert client.patch(path, json={"text": "Cora was here"}, headers=people["cora"]).status_code == 403
    with client.websocket_connect(f"/ws/doc/{document_id}", headers=people["cora"]) as ws:
        ws.receive_bytes()
        forged = Doc()
        forged.get("content", type=Text).insert(0, "Cora was here. ")
        ws.send_bytes(bytes([0, 2]) + write_message(forged.get_update()))
        while ws.receive_bytes()[0] != MESSAGE_REJECTED:
            pass
    assert client.get(path).json()["text"] == "Kept as is."
    with client.websocket_connect(f"/ws/suggest/{document_id}", headers=people["cora"]) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == WS_4403_FORBIDDEN


def test_commenters_are_invited_and_made_by_links(client: TestClient, people: Any) -> None:
    document = client.post("/api/documents", json={"title": "Shared"}).json()
    members = f"/api/documents/{document['id']}/members"
    assert client.post(members, json={"username": "cora", "role": "commenter"}).json()["role"] == "commenter"
    link = client.post(f"/api/documents/{document['id']}/links", json={"role": "commenter"}).json()
    assert link["role"] == "commenter"
    joined = client.post(link["url"], headers=people["vic"], follow_redirects=False)
    assert joined.status_code == 303
    roles = {m["username"]: m["role"] for m in client.get(members).json()["members"]}
    assert roles == {"alice": "owner", "cora": "commenter", "vic": "commenter"}
    listed = client.get("/api/documents", headers=people["vic"]).json()["documents"]
    assert [row["role"] for row in listed] == ["commenter"]
