"""Import (server/api/imports.py): .md, .txt and .docx become new documents; bad files are refused with
a clear message and create nothing."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from docx import Document as new_docx
from starlette.testclient import TestClient

from harness.accounts import account
from server.api.imports import IMPORT_MAX, title_and_text
from server.collab.room import DocumentTooLarge
from storage.models import TEXT_MAX


def upload(client: TestClient, name: str, data: bytes, **headers: str) -> Any:
    return client.post("/api/documents/import", params={"name": name}, content=data, headers=headers)


def listed(client: TestClient) -> list[str]:
    return [d["id"] for d in client.get("/api/documents").json()["documents"]]


def imported(client: TestClient, name: str, data: bytes) -> dict[str, Any]:
    response = upload(client, name, data)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["role"] == "owner" and body["id"] in listed(client)
    # the text went through the live document: the document socket's state has it too
    assert client.get(f"/api/documents/{body['id']}").json()["text"] == body["text"]
    return body


def test_markdown_takes_its_title_from_the_leading_heading(client: TestClient) -> None:
    body = imported(client, "notes.md", b"# A Cover Letter\n\nDear **reader**,\n\n- one\n")
    assert body["title"] == "A Cover Letter"
    assert body["text"] == "Dear **reader**,\n\n- one\n"


def test_text_takes_its_title_from_the_file_name(client: TestClient) -> None:
    body = imported(client, "Story opening.TXT", "\ufeffIt was late.\r\nThe rain had stopped.\r\n".encode())
    assert body["title"] == "Story opening"
    assert body["text"] == "It was late.\nThe rain had stopped.\n"  # BOM gone, line ends unified


def test_an_exported_document_imports_back_from_markdown_and_docx(client: TestClient) -> None:
    text = (
        "## Part one\n\nSome **bold**, some *italic*, a [link](https://example.com/x).\n\n"
        "- first\n- second\n\n1. step\n2. next\n\n> Quoted.\n"
    )
    document = client.post("/api/documents", json={"title": "Round Trip"}).json()
    client.patch(f"/api/documents/{document['id']}", json={"text": text})
    markdown = client.get(f"/api/documents/{document['id']}/export.md").content
    again = imported(client, "round-trip.md", markdown)
    assert again["title"] == "Round Trip" and again["text"] == text

    word = client.get(f"/api/documents/{document['id']}/export.docx").content
    from_word = imported(client, "round-trip.docx", word)
    assert from_word["title"] == "Round Trip"
    assert from_word["text"] == (
        "## Part one\n\nSome **bold**, some *italic*, a [link](<https://example.com/x>).\n\n"
        "- first\n- second\n1. step\n1. next\n\n> Quoted.\n"
    )


def test_a_word_document_becomes_markdown(client: TestClient) -> None:
    word = new_docx()
    word.add_heading("Minutes", 1)
    paragraph = word.add_paragraph("Plain, ")
    paragraph.add_run("strong").bold = True
    paragraph.add_run(" and ")
    paragraph.add_run("leaning").italic = True
    paragraph.add_run(" with a * star.")
    word.add_paragraph("Apples", style="List Bullet")
    word.add_paragraph("Pears", style="List Bullet 2")
    word.add_paragraph("Wake", style="List Number")
    word.add_paragraph("Be brief.", style="Quote")
    out = io.BytesIO()
    word.save(out)
    body = imported(client, "minutes.docx", out.getvalue())
    assert body["title"] == "Minutes"
    assert body["text"] == (
        "Plain, **strong** and *leaning* with a \\* star.\n\n- Apples\n   - Pears\n1. Wake\n\n> Be brief.\n"
    )


def bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", "<Types/>")
        package.writestr("word/document.xml", b"\0" * (64 << 20))  # 64 MiB that squeeze to ~64 KiB
    return out.getvalue()


def not_word() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        package.writestr("hello.txt", "hi")
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "status", "says"),
    [
        ("picture.png", b"\x89PNG\r\n", 415, "only Markdown (.md), plain text (.txt) and Word (.docx)"),
        ("no-extension", b"text", 415, "only Markdown"),
        ("", b"text", 400, "?name="),
        ("../../etc/passwd.md", b"text", 400, "?name="),
        ("big.md", b"a" * (IMPORT_MAX + 1), 413, "over 5 MiB"),
        ("broken.docx", b"PK\x03\x04 not really a zip", 422, "not a valid .docx"),
        ("random.docx", b"plain words", 422, "not a valid .docx"),
        ("other.docx", not_word(), 422, "not a Word document"),
        ("bomb.docx", bomb(), 422, "unpacks to more than 48 MiB"),
        ("latin1.txt", "café".encode("latin-1"), 422, "not UTF-8"),
        ("binary.md", b"abc\x00\x01def", 415, "binary data"),
        ("zip.md", not_word(), 415, "archive"),
        ("empty.md", b"", 400, "empty"),
        ("blank.txt", b"  \n\n ", 400, "no text"),
        ("huge.txt", b"a" * (TEXT_MAX + 1), 413, "characters"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 30 else "",
)
def test_a_bad_file_is_refused_clearly_and_creates_nothing(
    client: TestClient, name: str, data: bytes, status: int, says: str
) -> None:
    before = listed(client)
    response = upload(client, name, data)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]["message"]
    assert listed(client) == before


def test_a_failed_import_leaves_nothing_behind(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    rooms = client.app.state.services.rooms  # type: ignore[attr-defined]

    async def refuse(document_id: str, text: str) -> None:
        raise DocumentTooLarge("the document would grow past its limit of 16 MiB")

    monkeypatch.setattr(rooms, "set_text", refuse)
    response = upload(client, "fine.md", b"Fine text.")
    assert response.status_code == 413 and "16 MiB" in response.json()["error"]["message"]
    assert listed(client) == []
    assert client.get("/api/trash").json()["documents"] == []  # not in the trash either: gone


def test_any_signed_in_user_may_import_and_anonymous_may_not(client: TestClient) -> None:
    zed = account(client, "zed")
    response = client.post("/api/documents/import", params={"name": "a.md"}, content=b"Hi", headers=zed)
    assert response.status_code == 201 and response.json()["owner"] == "zed"
    assert response.json()["id"] not in listed(client)  # zed's, not alice's
    client.cookies.clear()
    assert upload(client, "a.md", b"Hi", origin="http://testserver").status_code == 401


@pytest.mark.parametrize(
    ("name", "text", "title", "rest"),
    [
        ("x.md", "#   Hello  #\n\nBody", "Hello", "Body"),
        ("x.md", "\n\n## Deeper\nBody", "Deeper", "Body"),
        ("Plain name.md", "Body\n# Later heading\n", "Plain name", "Body\n# Later heading\n"),
        ("a\x01b.md", "Body", "ab", "Body"),
        ("\x01.md", "Body", "Imported", "Body"),
        ("long.md", "# " + "t" * 300, "t" * 200, ""),
    ],
)
def test_the_title_comes_from_the_leading_heading_or_the_name(
    name: str, text: str, title: str, rest: str
) -> None:
    assert title_and_text(name, text) == (title, rest)
