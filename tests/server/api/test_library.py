"""Search, sort, tags and the trash through the HTTP API (TestClient over a fresh SQLite file)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from harness.accounts import account
from server.app import create_app
from server.errors import WS_4403_FORBIDDEN, WS_4404_DOCUMENT_NOT_FOUND
from server.services import Services
from server.settings import Settings
from storage.library import MARK_END, MARK_START
from storage.models import TAGS_PER_DOCUMENT, Document, utcnow
from streaming.loader import LoadedModel


def create(client: TestClient, title: str, text: str = "", headers: dict[str, str] | None = None) -> str:
    created = client.post("/api/documents", json={"title": title}, headers=headers)
    assert created.status_code == 201
    document_id = str(created.json()["id"])
    if text:
        changed = client.patch(f"/api/documents/{document_id}", json={"text": text}, headers=headers)
        assert changed.status_code == 200
    return document_id


def listed(client: TestClient, query: str = "") -> list[str]:
    response = client.get(f"/api/documents{query}")
    assert response.status_code == 200
    return [d["id"] for d in response.json()["documents"]]


def test_search_finds_a_word_in_the_text_with_a_marked_snippet(client: TestClient) -> None:
    letter = create(client, "Cover letter", "I would bring patience and curiosity to the role.")
    create(client, "Story", "The lighthouse keeper woke.")
    answer = client.get("/api/search", params={"q": "curio"})
    assert answer.status_code == 200
    [hit] = answer.json()["results"]
    assert hit["id"] == letter and hit["title"] == "Cover letter" and hit["role"] == "owner"
    assert hit["updated_at"].endswith("Z")
    assert f"{MARK_START}curiosity{MARK_END}" in hit["snippet"]
    assert answer.json()["terms"] == ["curio"]
    assert client.get("/api/search", params={"q": ""}).json()["results"] == []
    assert client.get("/api/search", params={"q": '"NEAR( -*'}).status_code == 200


def test_search_sees_shared_documents_but_not_others(client: TestClient) -> None:
    bob = account(client, "bob")
    mine = create(client, "Mine", "quokka")
    shared = create(client, "Bob's shared", "quokka", headers=bob)
    create(client, "Bob's own", "quokka", headers=bob)
    added = client.post(
        f"/api/documents/{shared}/members", json={"username": "alice", "role": "viewer"}, headers=bob
    )
    assert added.status_code == 201
    hits = client.get("/api/search", params={"q": "quokka"}).json()["results"]
    assert {h["id"]: h["role"] for h in hits} == {mine: "owner", shared: "viewer"}


@pytest.mark.parametrize(
    "params",
    [{"q": "x" * 201}, {"q": "x", "limit": "0"}, {"q": "x", "limit": "51"}, {"q": "x", "limit": "a"}],
)
def test_a_bad_search_is_refused_with_a_reason(client: TestClient, params: dict[str, str]) -> None:
    answer = client.get("/api/search", params=params)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid"


def test_the_list_sorts_by_title_or_last_change_and_filters_by_tag(client: TestClient) -> None:
    b = create(client, "banana")
    a = create(client, "Apple")
    assert listed(client) == [a, b]
    assert listed(client, "?sort=title") == [a, b]
    client.patch(f"/api/documents/{b}", json={"text": "changed"})
    assert listed(client, "?sort=updated") == [b, a]
    assert client.put(f"/api/documents/{a}/tags", json={"tags": [" To Send ", "draft"]}).json() == {
        "tags": ["draft", "to send"]
    }
    assert listed(client, "?tag=To%20Send") == [a]
    assert listed(client, "?tag=nothing") == []
    rows = {d["id"]: d["tags"] for d in client.get("/api/documents").json()["documents"]}
    assert rows == {a: ["draft", "to send"], b: []}
    assert client.get(f"/api/documents/{a}").json()["tags"] == ["draft", "to send"]
    assert client.get("/api/tags").json()["tags"] == [
        {"tag": "draft", "count": 1},
        {"tag": "to send", "count": 1},
    ]
    for bad in ("?sort=size", "?tag=%3Cb%3E", f"?tag={'x' * 40}"):
        assert client.get(f"/api/documents{bad}").status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"tags": ["ok", ""]},
        {"tags": ["ok", "<script>"]},
        {"tags": ["x" * 33]},
        {"tags": [f"t{i}" for i in range(TAGS_PER_DOCUMENT + 1)]},
        {"tags": "draft"},
        {"tags": [1]},
        {"tags": ["ok"], "more": 1},
        {},
        [],
    ],
)
def test_bad_tags_are_refused_and_change_nothing(client: TestClient, body: Any) -> None:
    document = create(client, "Tagged")
    client.put(f"/api/documents/{document}/tags", json={"tags": ["kept"]})
    answer = client.put(f"/api/documents/{document}/tags", json=body)
    assert answer.status_code == 400 and answer.json()["error"]["message"]
    assert client.get("/api/documents").json()["documents"][0]["tags"] == ["kept"]


def test_delete_moves_to_the_trash_which_restores_or_deletes_for_ever(client: TestClient) -> None:
    document = create(client, "Doomed", "Words worth keeping.")
    assert client.delete(f"/api/documents/{document}").status_code == 204
    assert client.get(f"/api/documents/{document}").status_code == 404
    assert listed(client) == []
    assert client.get("/api/search", params={"q": "keeping"}).json()["results"] == []
    assert client.delete(f"/api/documents/{document}").status_code == 404  # already in the trash
    trash = client.get("/api/trash").json()
    assert trash["keep_days"] == 30
    assert [d["id"] for d in trash["documents"]] == [document]
    assert trash["documents"][0]["deleted_at"].endswith("Z")

    assert client.post(f"/api/trash/{document}/restore").status_code == 204
    assert client.get(f"/api/documents/{document}").json()["text"] == "Words worth keeping."
    assert client.get("/api/trash").json()["documents"] == []
    # only a document in the trash can be deleted for ever
    assert client.delete(f"/api/trash/{document}").status_code == 404
    assert client.delete(f"/api/documents/{document}").status_code == 204
    assert client.delete(f"/api/trash/{document}").status_code == 204
    assert client.get("/api/trash").json()["documents"] == []
    assert client.post(f"/api/trash/{document}/restore").status_code == 404


def test_open_sockets_are_told_a_trashed_document_is_gone(client: TestClient) -> None:
    document = create(client, "Open", "Being read.")
    with client.websocket_connect(f"/ws/suggest/{document}") as ws:
        ws.receive_json()  # hello
        assert client.delete(f"/api/documents/{document}").status_code == 204
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_json()
    assert closed.value.code == WS_4403_FORBIDDEN  # as for a member removed: access has ended
    # and no new socket opens on it
    with client.websocket_connect(f"/ws/suggest/{document}") as ws:
        with pytest.raises(WebSocketDisconnect) as refused:
            ws.receive_json()
    assert refused.value.code == WS_4404_DOCUMENT_NOT_FOUND


def test_a_share_link_to_a_trashed_document_leads_nowhere(client: TestClient) -> None:
    document = create(client, "Linked")
    link = client.post(f"/api/documents/{document}/links", json={"role": "viewer"}).json()
    bob = account(client, "bob")
    client.delete(f"/api/documents/{document}")
    joined = client.post(f"/s/{link['token']}", headers=bob, follow_redirects=False)
    assert joined.status_code == 404 and "location" not in joined.headers
    client.post(f"/api/trash/{document}/restore")
    assert client.get(f"/s/{link['token']}", headers=bob).status_code == 200  # restored, it works again


def test_the_trash_is_swept_when_the_app_starts(
    tmp_path: Path, settings: Settings, loaded_model: LoadedModel
) -> None:
    app_settings = replace(settings, data_dir=tmp_path, database_url=None)
    with TestClient(create_app(app_settings, loaded_model)) as first:
        owner = account(first, "ann")
        old, recent = (create(first, title, headers=owner) for title in ("Old", "Recent"))
        for document in (old, recent):
            assert first.delete(f"/api/documents/{document}", headers=owner).status_code == 204
        found = first.app.state.services  # type: ignore[attr-defined]
        assert isinstance(found, Services)

        def age(session: Session) -> None:
            document = session.get(Document, old)
            assert document is not None
            document.deleted_at = utcnow() - timedelta(days=31)
            session.add(document)

        found.store.call(age)
        # the listing never shows an expired one, sweep or not
        assert [d["id"] for d in first.get("/api/trash", headers=owner).json()["documents"]] == [recent]
    with TestClient(create_app(app_settings, loaded_model)) as second:
        found = second.app.state.services  # type: ignore[attr-defined]
        assert isinstance(found, Services)

        def exists(session: Session, document_id: str) -> bool:
            return session.get(Document, document_id) is not None

        # the sweep has run by the time the app serves
        assert not found.store.call(exists, old)
        assert found.store.call(exists, recent)
