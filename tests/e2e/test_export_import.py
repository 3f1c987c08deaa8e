"""Export and import in Chromium: each format downloaded from the editor's Export menu and the list's
row menu, the print view filled and printed alone, and files imported through the file button and
the drop zone (a bad one refused with its reason, creating nothing)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docx import Document as open_docx
from docx.text.hyperlink import Hyperlink
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, Writer, open_writer

pytestmark = pytest.mark.timeout(240)

QUIET = {"autoSuggest": False}
TEXT = (
    "## A letter\n\nDear **Ms Lind**, I read *The Quiet Coast* twice.\n\n"
    "- it is brave\n- it is kind\n\n> Every harbour keeps a light.\n\n"
    "More at [my site](https://example.com/me).\n"
)


@pytest.fixture
def writer(browser: Any, base_url: str) -> Iterator[Writer]:
    opened = open_writer(browser, base_url, "ann", QUIET)
    yield opened
    opened.close()


def written(writer: Writer, title: str = "Cover Letter", text: str = TEXT) -> str:
    created = writer.api("POST", "/api/documents", {"title": title})
    writer.api("PATCH", f"/api/documents/{created['id']}", {"text": text})
    return str(created["id"])


def open_document(writer: Writer, document_id: str) -> Any:
    page = writer.page
    page.goto(f"/d/{document_id}")
    page.wait_for_function("window.cowrite && window.cowrite.state().synced")
    return page


def listed(writer: Writer) -> list[str]:
    return [d["id"] for d in writer.api("GET", "/api/documents")["documents"]]


def downloaded(page: Any, click: Any) -> tuple[str, bytes]:
    with page.expect_download() as info:
        click()
    download = info.value
    return download.suggested_filename, Path(download.path()).read_bytes()


def test_each_format_downloads_from_the_export_menu(writer: Writer) -> None:
    page = open_document(writer, written(writer))
    # an edit typed just now is in the download: export flushes the live document first
    page.evaluate(
        "window.cowrite.view.dispatch({changes: {from: window.cowrite.view.state.doc.length,"
        " insert: 'Yours, Ann'}})"
    )
    expect(page.get_by_test_id("status-save")).to_have_text("Saved")

    page.get_by_test_id("export-button").click()
    menu = page.get_by_test_id("export-panel")
    expect(menu).to_be_visible()
    expect(menu.locator(".export-item")).to_have_text(
        ["Markdown (.md)", "Plain text (.txt)", "Web page (.html)", "Word (.docx)", "Print or save as PDF"]
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "export.png"))

    name, body = downloaded(page, lambda: menu.get_by_test_id("export-md").click())
    assert name == "cover-letter.md"
    assert body.decode() == f"# Cover Letter\n\n{TEXT}Yours, Ann\n"
    expect(menu).to_be_hidden()  # a download closes the menu

    page.get_by_test_id("export-button").click()
    name, body = downloaded(page, lambda: menu.get_by_test_id("export-txt").click())
    assert name == "cover-letter.txt"
    text = body.decode()
    assert "Dear Ms Lind, I read The Quiet Coast twice." in text and "• it is brave\n• it is kind" in text
    assert "more at my site (https://example.com/me)." in text.lower() and "**" not in text

    page.get_by_test_id("export-button").click()
    name, body = downloaded(page, lambda: menu.get_by_test_id("export-html").click())
    assert name == "cover-letter.html"
    page_html = body.decode()
    assert "<strong>Ms Lind</strong>" in page_html and "<em>The Quiet Coast</em>" in page_html
    assert '<a href="https://example.com/me">my site</a>' in page_html and "<blockquote>" in page_html

    page.get_by_test_id("export-button").click()
    name, body = downloaded(page, lambda: menu.get_by_test_id("export-docx").click())
    assert name == "cover-letter.docx"
    word = open_docx(io.BytesIO(body))
    styles = {p.text: p.style.name for p in word.paragraphs if p.style is not None}
    assert styles["A letter"] == "Heading 2" and styles["it is brave"] == "List Bullet"
    assert styles["Every harbour keeps a light."] == "Quote"
    dear = next(p for p in word.paragraphs if p.text.startswith("Dear"))
    assert [r.text for r in dear.runs if r.bold] == ["Ms Lind"]
    assert [r.text for r in dear.runs if r.italic] == ["The Quiet Coast"]
    more = next(p for p in word.paragraphs if p.text.startswith("More at"))
    [link] = [i for i in more.iter_inner_content() if isinstance(i, Hyperlink)]
    assert link.address == "https://example.com/me"


def test_print_shows_the_whole_document_and_nothing_else(writer: Writer) -> None:
    # longer than a page: the print copy has every line, whatever the editor has drawn
    long_text = TEXT + "".join(f"\nParagraph number {n} of the long middle.\n" for n in range(1, 301))
    page = open_document(writer, written(writer, text=long_text))
    # a function, so that Playwright calls it (an expression that yields a function is called too)
    page.evaluate("() => { window.print = () => { window.printed = (window.printed || 0) + 1; }; }")
    assert page.evaluate("window.printed") is None
    view = page.get_by_test_id("print-view")
    expect(view).to_be_hidden()  # on screen it never shows

    page.get_by_test_id("export-button").click()
    page.get_by_test_id("export-print").click()
    page.wait_for_function(
        "window.printed === 1 || !document.querySelector('[data-testid=export-error]').hidden"
    )
    expect(page.get_by_test_id("export-error")).to_be_hidden()
    assert page.evaluate("window.printed") == 1
    expect(page.get_by_test_id("export-panel")).to_be_hidden()
    expect(view.locator("h1.title")).to_have_text("Cover Letter")
    expect(view.locator("strong")).to_have_text("Ms Lind")
    expect(view.locator("p").last).to_have_text("Paragraph number 300 of the long middle.")

    page.emulate_media(media="print")
    expect(view).to_be_visible()
    expect(page.locator(".topbar")).to_be_hidden()
    expect(page.get_by_test_id("statusbar")).to_be_hidden()
    expect(page.locator(".cm-editor")).to_be_hidden()
    assert view.evaluate("e => getComputedStyle(e).fontFamily").startswith("Georgia")
    page.emulate_media(media="screen")
    expect(view).to_be_hidden()
    expect(page.locator(".topbar")).to_be_visible()


def test_a_row_of_the_list_exports_too(writer: Writer) -> None:
    document_id = written(writer, title="Über den Hafen")
    page = writer.page
    page.goto("/")
    row = page.locator(f"[data-testid=doc-row][data-id='{document_id}']")
    row.get_by_test_id("row-export").locator("summary").click()
    expect(row.locator(".row-export-list")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "export-row.png"))
    name, body = downloaded(page, lambda: row.get_by_test_id("export-md").click())
    assert name == "über-den-hafen.md"  # a Unicode title keeps its letters (filename*)
    assert body.decode().startswith("# Über den Hafen\n\n## A letter")
    expect(row.locator(".row-export-list")).to_be_hidden()


def test_a_file_imported_with_the_button_opens_as_a_new_document(writer: Writer) -> None:
    page = writer.page
    page.goto("/")
    expect(page.get_by_test_id("empty")).to_be_visible()
    markdown = "# Harbour Notes\n\nThe **light** turns every *nine* seconds.\n"
    held: list[Any] = []  # the upload, held back so that its progress can be seen
    page.route("**/api/documents/import*", lambda route: held.append(route))
    page.get_by_test_id("import-input").set_input_files(
        {"name": "notes.md", "mimeType": "text/markdown", "buffer": markdown.encode()}
    )
    expect(page.get_by_test_id("import-progress")).to_be_visible()
    expect(page.get_by_test_id("import-status")).to_have_text("Importing “notes.md”…")
    expect(page.get_by_test_id("import-zone")).to_have_attribute("aria-busy", "true")
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_url(re.compile(r"/d/[0-9a-f]{32}$"))
    page.wait_for_function("window.cowrite && window.cowrite.state().synced")
    expect(page.get_by_test_id("doc-title")).to_have_value("Harbour Notes")
    assert page.evaluate("window.cowrite.view.state.doc.toString()") == (
        "The **light** turns every *nine* seconds.\n"
    )
    assert len(listed(writer)) == 1


def test_a_word_file_dropped_on_the_list_is_imported(writer: Writer) -> None:
    written(writer, title="Already here")
    page = writer.page
    page.goto("/")
    expect(page.get_by_test_id("doc-row")).to_have_count(1)
    # a .docx made by the export itself, then dropped on the list as a file
    word = writer.context.request.get(f"/api/documents/{listed(writer)[0]}/export.docx").body()
    transfer = page.evaluate_handle(
        "(bytes) => { const t = new DataTransfer();"
        " t.items.add(new File([new Uint8Array(bytes)], 'From Word.docx',"
        " {type: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'})); return t; }",
        list(word),
    )
    zone = page.get_by_test_id("import-zone")
    page.locator("#documents").dispatch_event("dragenter", {"dataTransfer": transfer})
    expect(zone).to_have_attribute("data-dragging", "true")  # the zone lights up
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "import-drag.png"))
    page.locator("#documents").dispatch_event("drop", {"dataTransfer": transfer})
    page.wait_for_url(re.compile(r"/d/[0-9a-f]{32}$"))
    page.wait_for_function("window.cowrite && window.cowrite.state().synced")
    expect(page.get_by_test_id("doc-title")).to_have_value("Already here")
    text = page.evaluate("window.cowrite.view.state.doc.toString()")
    assert text.startswith("## A letter\n\nDear **Ms Lind**, I read *The Quiet Coast* twice.")
    assert "[my site](<https://example.com/me>)" in text
    assert len(listed(writer)) == 2


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("broken.docx", b"PK\x03\x04 this is no zip", "The file is not a valid .docx"),
        ("latin.txt", "caf\xe9".encode("latin-1"), "not UTF-8 text"),
        ("photo.png", b"\x89PNG\r\n", "Only Markdown (.md), plain text (.txt) and Word (.docx)"),
    ],
)
def test_a_bad_file_shows_why_and_creates_nothing(
    writer: Writer, name: str, data: bytes, message: str
) -> None:
    written(writer, title="Kept")
    before = listed(writer)
    page = writer.page
    page.goto("/")
    expect(page.get_by_test_id("doc-row")).to_have_count(1)
    page.get_by_test_id("import-input").set_input_files({"name": name, "mimeType": "", "buffer": data})
    error = page.get_by_test_id("import-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text(f"“{name}” was not imported")
    expect(error).to_contain_text(message)
    expect(page.get_by_test_id("import-progress")).to_be_hidden()
    assert page.url.endswith("/") and listed(writer) == before
    expect(page.get_by_test_id("doc-row")).to_have_count(1)
