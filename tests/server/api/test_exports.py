"""Export in each format (server/api/exports.py): content, structure, file names, and safe HTML."""

from __future__ import annotations

import io
from typing import Any

import pytest
from docx import Document as open_docx
from docx.text.hyperlink import Hyperlink
from starlette.testclient import TestClient

from harness.accounts import account
from server.api.exports import file_names

TEXT = """## Opening

Some **bold** words, some *italic* ones, and a [link](https://example.com/a?b=1).

- first point
- second point

1. step one
2. step two

> A quotation.

`inline code` and <script>alert(1)</script> and [a trap](javascript:alert(1)).
"""


def written(client: TestClient, title: str = "My Novel: Part 1", text: str = TEXT) -> dict[str, Any]:
    document: dict[str, Any] = client.post("/api/documents", json={"title": title}).json()
    assert client.patch(f"/api/documents/{document['id']}", json={"text": text}).status_code == 200
    return document


def test_markdown_is_the_title_and_the_text(client: TestClient) -> None:
    document = written(client)
    response = client.get(f"/api/documents/{document['id']}/export.md")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="my-novel-part-1.md"'
    assert response.text == f"# My Novel: Part 1\n\n{TEXT}"


def test_plain_text_drops_the_marks_and_keeps_the_structure(client: TestClient) -> None:
    document = written(client)
    response = client.get(f"/api/documents/{document['id']}/export.txt")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert 'filename="my-novel-part-1.txt"' in response.headers["content-disposition"]
    text = response.text
    assert text.startswith("My Novel: Part 1\n================\n\nOpening\n\n")
    assert "Some bold words, some italic ones, and a link (https://example.com/a?b=1)." in text
    assert "• first point\n• second point\n\n1. step one\n2. step two" in text
    assert "\n    A quotation.\n" in text
    assert "**" not in text and "##" not in text and "](https" not in text


def test_html_is_a_standalone_page_with_everything_escaped(client: TestClient) -> None:
    document = written(client, title="<img src=x onerror=alert(1)>")
    response = client.get(f"/api/documents/{document['id']}/export.html")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert page.startswith("<!doctype html>") and "<style>" in page and "@media print" in page
    assert "<title>&lt;img src=x onerror=alert(1)&gt;</title>" in page
    assert "<h2>Opening</h2>" in page
    assert "<strong>bold</strong>" in page and "<em>italic</em>" in page
    assert '<a href="https://example.com/a?b=1">link</a>' in page
    assert "<li>first point</li>" in page and "<ol>" in page and "<blockquote>" in page
    assert "<code>inline code</code>" in page
    # raw HTML stays text, and a javascript: link is no link
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "javascript:" not in page.split("[a trap]")[0] and 'href="javascript' not in page
    assert "<img" not in page


def test_docx_opens_with_headings_runs_lists_quotes_and_real_links(client: TestClient) -> None:
    document = written(client)
    response = client.get(f"/api/documents/{document['id']}/export.docx")
    assert response.status_code == 200
    assert response.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )
    assert 'filename="my-novel-part-1.docx"' in response.headers["content-disposition"]
    word = open_docx(io.BytesIO(response.content))
    paragraphs = word.paragraphs
    styles = {p.text: p.style.name for p in paragraphs if p.style is not None}
    assert styles["My Novel: Part 1"] == "Title" and styles["Opening"] == "Heading 2"
    assert styles["first point"] == styles["second point"] == "List Bullet"
    assert styles["step one"] == "List Number" and styles["A quotation."] == "Quote"
    body = next(p for p in paragraphs if p.text.startswith("Some "))
    assert [r.text for r in body.runs if r.bold] == ["bold"]
    assert [r.text for r in body.runs if r.italic] == ["italic"]
    [link] = [item for item in body.iter_inner_content() if isinstance(item, Hyperlink)]
    assert link.text == "link" and link.address == "https://example.com/a?b=1"
    code = next(p for p in paragraphs if p.text.startswith("inline code"))
    assert code.runs[0].font.name == "Courier New"
    assert not any(isinstance(i, Hyperlink) for i in code.iter_inner_content())  # javascript: dropped
    assert word.core_properties.title == "My Novel: Part 1"


@pytest.mark.parametrize("extension", ["md", "txt", "html", "docx"])
def test_export_is_for_readers_only(client: TestClient, extension: str) -> None:
    document = written(client)
    path = f"/api/documents/{document['id']}/export.{extension}"
    mallory = account(client, "mallory")
    assert client.get(path, headers=mallory).status_code == 404
    client.cookies.clear()
    assert client.get(path).status_code == 401


def test_a_non_ascii_title_gets_a_unicode_file_name() -> None:
    assert file_names("Über 日本", "md") == (
        "attachment; filename=\"uber.md\"; filename*=UTF-8''%C3%BCber-%E6%97%A5%E6%9C%AC.md"
    )
    assert (
        file_names("日本", "txt")
        == "attachment; filename=\"document.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"
    )
    assert file_names('a"b\r\nc', "md") == 'attachment; filename="a-b-c.md"'


def test_the_export_has_the_live_text_and_an_empty_document_exports(client: TestClient) -> None:
    document = client.post("/api/documents", json={"title": "Empty"}).json()
    for extension in ("md", "txt", "html", "docx"):
        response = client.get(f"/api/documents/{document['id']}/export.{extension}")
        assert response.status_code == 200 and len(response.content) > 0
