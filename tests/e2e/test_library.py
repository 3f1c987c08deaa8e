"""Finding and organising in Chromium: search with highlighted snippets, sort, tags, and the trash."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, Writer, open_writer

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def writer(browser: Any, base_url: str) -> Iterator[Writer]:
    opened = open_writer(browser, base_url, "writer")
    yield opened
    opened.close()


def make(writer: Writer, title: str, text: str = "") -> str:
    created = writer.api("POST", "/api/documents", {"title": title})
    if text:
        writer.api("PATCH", f"/api/documents/{created['id']}", {"text": text})
    return str(created["id"])


def row(page: Any, document_id: str) -> Any:
    return page.locator(f"[data-testid=doc-row][data-id='{document_id}']")


def test_search_finds_a_word_in_the_body_with_a_highlighted_snippet(writer: Writer) -> None:
    letter = make(
        writer, "Cover letter", "I would bring <b>patience</b> and curiosity to the lighthouse team."
    )
    make(writer, "Story", "The keeper climbed the stairs at dusk.")
    page = writer.page
    page.goto("/")
    row(page, letter).wait_for()

    page.get_by_test_id("search-input").type("lightho", delay=20)  # typing searches, debounced
    hit = page.get_by_test_id("search-hit")
    expect(hit).to_have_count(1)
    assert hit.get_attribute("data-id") == letter
    expect(hit.locator(".doc-title")).to_have_text("Cover letter")
    mark = hit.get_by_test_id("search-snippet").locator("mark")
    expect(mark).to_have_text("lighthouse")
    # the document's own markup is text, never HTML
    snippet = hit.get_by_test_id("search-snippet")
    assert "<b>patience</b>" in snippet.inner_text() and snippet.locator("b").count() == 0
    expect(page.locator("#documents")).to_be_hidden()  # the list gives way to the results
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "search.png"))

    search = page.get_by_test_id("search-input")
    search.fill('zebra "NEAR -*')
    search.press("Enter")
    expect(page.get_by_test_id("search-status")).to_have_text('No documents match “zebra "NEAR -*”.')
    expect(page.get_by_test_id("search-hit")).to_have_count(0)

    search.press("Escape")  # back to the list
    expect(page.get_by_test_id("doc-row")).to_have_count(2)
    expect(page.locator("#documents")).to_be_visible()
    hit_link = page.get_by_test_id("search-input")
    hit_link.fill("keeper")
    hit_link.press("Enter")
    page.get_by_test_id("search-hit").locator(".doc-title").click()
    page.wait_for_url("**/d/*")


def test_sort_by_title_or_last_change(writer: Writer) -> None:
    make(writer, "banana")
    make(writer, "Apple")
    page = writer.page
    page.goto("/")
    titles = page.get_by_test_id("doc-row").locator(".doc-title")
    expect(titles).to_have_text(["Apple", "banana"])
    page.get_by_test_id("sort-select").select_option("title")
    expect(titles).to_have_text(["Apple", "banana"])
    make(writer, "Cherry")
    page.reload()  # the choice is kept
    expect(page.get_by_test_id("sort-select")).to_have_value("title")
    expect(titles).to_have_text(["Apple", "banana", "Cherry"])
    page.get_by_test_id("sort-select").select_option("updated")
    expect(titles).to_have_text(["Cherry", "Apple", "banana"])


def test_tag_a_document_and_filter_by_tag(writer: Writer) -> None:
    letter = make(writer, "Cover letter", "Dear team")
    story = make(writer, "Story", "Once")
    page = writer.page
    page.goto("/")
    row(page, letter).get_by_test_id("edit-tags").click()
    tags = page.get_by_test_id("tags-input")
    # a bad tag is refused with the reason, and nothing is saved
    tags.fill("draft, <oops>")
    page.get_by_test_id("save-tags").click()
    expect(page.get_by_test_id("tags-error")).to_contain_text("letters, digits, spaces")
    assert writer.api("GET", "/api/tags")["tags"] == []
    tags.fill("Draft,  to send ")
    tags.press("Enter")
    expect(row(page, letter).get_by_test_id("tag-chip")).to_have_text(["draft", "to send"])
    expect(row(page, story).get_by_test_id("tag-chip")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "tags.png"))

    # the filter lists each tag with its count; choosing one shows only its documents
    chips = page.get_by_test_id("tag-filter-chip")
    expect(chips).to_have_text(["All", "draft (1)", "to send (1)"])
    page.locator("[data-testid=tag-filter-chip][data-tag='to send']").click()
    expect(page.get_by_test_id("doc-row")).to_have_count(1)
    assert page.get_by_test_id("doc-row").get_attribute("data-id") == letter
    page.locator("[data-testid=tag-filter-chip][data-tag='']").click()
    expect(page.get_by_test_id("doc-row")).to_have_count(2)
    # a row's chip filters too
    row(page, letter).get_by_test_id("tag-chip").first.click()
    expect(page.get_by_test_id("doc-row")).to_have_count(1)
    expect(page.locator("[data-testid=tag-filter-chip][data-tag='draft']")).to_have_attribute(
        "aria-pressed", "true"
    )


def test_delete_moves_to_the_trash_which_restores_and_undo_brings_it_back(writer: Writer) -> None:
    doomed = make(writer, "Doomed draft", "Words")
    kept = make(writer, "Kept")
    page = writer.page
    page.goto("/")
    row(page, doomed).get_by_test_id("delete").click()
    toast = page.get_by_test_id("undo-toast")
    expect(toast).to_contain_text("Moved “Doomed draft” to the trash. It is kept for 30 days.")
    expect(row(page, doomed)).to_have_count(0)
    # Undo puts it back
    toast.get_by_test_id("undo").click()
    expect(row(page, doomed)).to_have_count(1)
    expect(toast).to_be_hidden()

    row(page, doomed).get_by_test_id("delete").click()
    expect(row(page, doomed)).to_have_count(0)
    assert page.request.get(f"/api/documents/{doomed}").status == 404
    page.get_by_test_id("trash-toggle").click()
    trashed = page.get_by_test_id("trash-row")
    expect(trashed).to_have_count(1)
    expect(trashed.locator(".doc-title")).to_have_text("Doomed draft")
    expect(trashed.get_by_test_id("days-left")).to_have_text("30 days left")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "trash.png"))
    expect(row(page, kept)).to_be_hidden()
    trashed.get_by_test_id("restore").click()
    expect(trashed).to_have_count(0)
    expect(page.get_by_test_id("trash-empty")).to_be_visible()
    page.get_by_test_id("trash-toggle").click()  # back to the documents
    expect(row(page, doomed)).to_be_visible()
    expect(row(page, kept)).to_be_visible()
    assert writer.api("GET", f"/api/documents/{doomed}")["text"] == "Words"


def test_delete_for_ever_from_the_trash_asks_first(writer: Writer) -> None:
    doomed = make(writer, "Gone for good")
    page = writer.page
    page.goto("/")
    row(page, doomed).get_by_test_id("delete").click()
    expect(row(page, doomed)).to_have_count(0)
    page.get_by_test_id("trash-toggle").click()
    trashed = page.get_by_test_id("trash-row")
    trashed.get_by_test_id("delete-forever").click()
    dialog = page.locator("#forever-dialog")
    expect(dialog).to_contain_text("Delete “Gone for good” for ever?")
    dialog.get_by_role("button", name="Cancel").click()  # changing one's mind keeps it
    expect(trashed).to_have_count(1)
    trashed.get_by_test_id("delete-forever").click()
    page.get_by_test_id("confirm-forever").click()
    expect(trashed).to_have_count(0)
    expect(page.get_by_test_id("trash-empty")).to_be_visible()
    assert writer.api("GET", "/api/trash")["documents"] == []
    assert (
        page.request.post(f"/api/trash/{doomed}/restore", headers={"Origin": writer.base_url}).status == 404
    )
