"""The document JSON API and pages, through TestClient over a fresh SQLite file."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient


def create(client: TestClient, title: str = "Chapter One") -> dict[str, Any]:
    response = client.post("/api/documents", json={"title": title})
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


def test_create_then_list_read_rename_and_delete(client: TestClient) -> None:
    document = create(client)
    assert client.get("/api/documents").json()["documents"][0]["id"] == document["id"]

    read = client.get(f"/api/documents/{document['id']}").json()
    assert read["title"] == "Chapter One" and read["text"] == "" and read["created_at"].endswith("Z")

    renamed = client.patch(f"/api/documents/{document['id']}", json={"title": "Chapter 1"})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Chapter 1"

    assert client.delete(f"/api/documents/{document['id']}").status_code == 204
    assert client.get(f"/api/documents/{document['id']}").status_code == 404
    assert client.get("/api/documents").json() == {"documents": []}


def test_autosaved_text_reads_back_exactly(client: TestClient) -> None:
    document = create(client)
    text = "It is a truth universally acknowledged,  that\n\n\u2014 a single man — “in possession”\t\n"
    saved = client.patch(f"/api/documents/{document['id']}", json={"text": text})
    assert saved.status_code == 200 and saved.json()["version"] == 1
    assert client.get(f"/api/documents/{document['id']}").json()["text"] == text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/documents/nope"),
        ("PATCH", "/api/documents/nope"),
        ("DELETE", "/api/documents/nope"),
        ("GET", "/api/documents/nope/export.md"),
        ("GET", "/api/documents/nope/suggestions"),
        ("GET", "/api/documents/nope/revisions"),
        ("POST", "/api/documents/nope/revisions/1/restore"),
    ],
)
def test_a_document_that_does_not_exist_is_404(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={} if method == "PATCH" else None)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": 5}, "title"),
        ({"text": ["not", "text"]}, "text"),
        ({"owner": "mallory"}, "owner"),
    ],
)
def test_bad_changes_are_rejected_and_the_document_is_intact(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    document = create(client)
    client.patch(f"/api/documents/{document['id']}", json={"text": "Precious words."})
    response = client.patch(f"/api/documents/{document['id']}", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(field)
    after = client.get(f"/api/documents/{document['id']}").json()
    assert (after["title"], after["text"], after["owner"]) == ("Chapter One", "Precious words.", "alice")


def test_a_body_that_is_not_json_is_rejected(client: TestClient) -> None:
    response = client.post("/api/documents", content=b"title=x", headers={"content-type": "text/plain"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"


def test_export_is_markdown_with_the_title(client: TestClient) -> None:
    document = create(client, "My Novel: Part 1")
    client.patch(f"/api/documents/{document['id']}", json={"text": "Once upon a time."})
    response = client.get(f"/api/documents/{document['id']}/export.md")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/markdown")
    assert 'filename="my-novel-part-1.md"' in response.headers["content-disposition"]
    assert response.text == "# My Novel: Part 1\n\nOnce upon a time.\n"


def test_an_earlier_revision_can_be_restored(client: TestClient) -> None:
    document = create(client)
    client.patch(f"/api/documents/{document['id']}", json={"text": "Version one."})
    [revision] = client.get(f"/api/documents/{document['id']}/revisions").json()["revisions"]
    client.patch(f"/api/documents/{document['id']}", json={"text": "Version two, overwriting."})
    restored = client.post(f"/api/documents/{document['id']}/revisions/{revision['id']}/restore")
    # autosaves within a minute share one revision, so the newest autosave is what comes back
    assert restored.status_code == 200 and restored.json()["text"] == "Version two, overwriting."


def test_pages(client: TestClient) -> None:
    document = create(client)
    assert "Cowrite" in client.get("/").text
    assert client.get(f"/d/{document['id']}").status_code == 200
    missing = client.get("/d/does-not-exist")
    assert missing.status_code == 404 and "not found" in missing.text
