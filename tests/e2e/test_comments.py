"""Comments in real browsers: the owner shares with a commenter, who cannot change the text but
comments on a selection; the owner sees it live and replies; the anchor follows an edit before it;
resolving hides the thread behind "Show resolved", reopening brings it back; a thread whose text
was deleted shows its quote as removed; a commenter made a viewer keeps reading, read-only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, Writer, open_writer

pytestmark = pytest.mark.timeout(240)

TEXT = "Dear Sir, I am writing to apply for the keeper's post at the lighthouse."


@pytest.fixture
def ann(browser: Any, base_url: str) -> Iterator[Writer]:
    writer = open_writer(browser, base_url, "ann", {"autoSuggest": False})
    yield writer
    writer.close()


@pytest.fixture
def cora(browser: Any, base_url: str) -> Iterator[Writer]:
    writer = open_writer(browser, base_url, "cora", {"autoSuggest": False})
    yield writer
    writer.close()


def open_document(writer: Writer, doc_id: str) -> Any:
    page = writer.page
    page.goto(f"/d/{doc_id}")
    page.wait_for_function("window.cowrite && window.cowrite.state().synced")
    return page


def select(page: Any, word: str) -> None:
    """Select `word` in the text with the mouse (a double click, as a writer would)."""
    page.locator(".cm-line").get_by_text(word, exact=False).first.wait_for()
    start = page.evaluate(f"window.cowrite.view.state.doc.toString().indexOf({word!r})")
    assert start >= 0
    box = page.evaluate(
        f"""(() => {{
            const view = window.cowrite.view;
            const a = view.coordsAtPos({start}), b = view.coordsAtPos({start + len(word)}, -1);
            return {{x: (a.left + b.right) / 2, y: (a.top + a.bottom) / 2}};
        }})()"""
    )
    page.mouse.dblclick(box["x"], box["y"])
    page.wait_for_function(
        f"(() => {{ const r = window.cowrite.view.state.selection.main;"
        f" return window.cowrite.view.state.sliceDoc(r.from, r.to) === {word!r}; }})()"
    )


def highlighted(page: Any, text: str) -> None:
    """Wait until the commented spans on the page read `text` (a span may be split by others' marks)."""
    page.wait_for_function(
        "(t) => [...document.querySelectorAll('.cm-comment')].map(e => e.textContent).join('') === t",
        arg=text,
    )


def test_a_commenter_comments_and_the_owner_replies_live(ann: Writer, cora: Writer) -> None:
    doc_id = ann.api("POST", "/api/documents", {"title": "Application"})["id"]
    owner = open_document(ann, doc_id)
    owner.locator(".cm-content").click()
    owner.keyboard.type(TEXT)
    owner.wait_for_function("window.cowrite.state().saved")

    # the owner shares with cora as a commenter, through the share panel
    owner.get_by_test_id("share-button").click()
    panel = owner.get_by_test_id("share-panel")
    panel.get_by_test_id("invite-username").fill("cora")
    panel.get_by_test_id("invite-role").select_option("commenter")
    panel.get_by_test_id("invite-submit").click()
    panel.locator("[data-testid=member][data-username=cora][data-role=commenter]").wait_for()
    owner.keyboard.press("Escape")

    # cora reads, cannot type into the text, but may comment
    page = open_document(cora, doc_id)
    expect(page.get_by_test_id("role-badge")).to_have_text("Can comment")
    expect(page.locator(".cm-content")).to_have_attribute("contenteditable", "false")
    expect(page.get_by_test_id("auto-suggest")).to_be_hidden()
    page.locator(".cm-content").click()
    page.keyboard.type("Cora was here. ")
    assert page.evaluate("window.cowrite.ytext()") == TEXT

    select(page, "Sir")
    page.get_by_test_id("comment-button").click()
    composer = page.get_by_test_id("comment-composer")
    expect(composer.locator(".comment-quote")).to_have_text("Sir")
    page.get_by_test_id("comment-input").fill("Too formal? Their name is Mrs Penrose.")
    page.get_by_test_id("comment-submit").click()
    mine = page.get_by_test_id("comment-thread")
    expect(mine).to_have_count(1)
    expect(mine.get_by_test_id("comment-body")).to_have_text("Too formal? Their name is Mrs Penrose.")
    highlighted(page, "Sir")

    # the owner sees it live (no reload), highlighted, and replies
    thread = owner.get_by_test_id("comment-thread")
    expect(thread).to_have_count(1)
    expect(thread.locator(".comment-author").first).to_have_text("cora")
    expect(thread.get_by_test_id("comment-quote")).to_have_text("Sir")
    highlighted(owner, "Sir")
    thread.get_by_test_id("reply-input").fill("Good catch, changing it.")
    thread.get_by_test_id("reply-submit").click()
    expect(mine.get_by_test_id("comment-reply")).to_have_count(1)
    expect(mine.get_by_test_id("comment-reply").get_by_test_id("comment-body")).to_have_text(
        "Good catch, changing it."
    )

    # cora rewrites her comment (only hers: the owner has no Edit on it); the owner sees it live
    expect(thread.get_by_test_id("comment-first").get_by_test_id("comment-edit")).to_have_count(0)
    mine.get_by_test_id("comment-first").get_by_test_id("comment-edit").click()
    page.get_by_test_id("edit-input").fill("Too formal? Her name is Mrs Penrose.")
    page.get_by_test_id("edit-save").click()
    first = thread.get_by_test_id("comment-first")
    expect(first.get_by_test_id("comment-body")).to_have_text("Too formal? Her name is Mrs Penrose.")
    expect(first.locator(".comment-meta")).to_contain_text("(edited)")

    # the owner writes before the commented word: the anchor follows it on both pages
    owner.evaluate("window.cowrite.view.dispatch({changes: {from: 0, insert: 'Hello. '}})")
    page.wait_for_function("window.cowrite.ytext().startsWith('Hello. Dear Sir')")
    highlighted(page, "Sir")
    highlighted(owner, "Sir")
    expect(mine.get_by_test_id("comment-quote")).to_have_text("Sir")

    # clicking a thread selects its text
    thread.get_by_test_id("comment-first").click()
    owner.wait_for_function(
        "(() => { const r = window.cowrite.view.state.selection.main;"
        " return window.cowrite.view.state.sliceDoc(r.from, r.to) === 'Sir'; })()"
    )
    # the README's picture (docs/images/comments.png): the cursor away from the comment
    owner.evaluate(
        "window.cowrite.view.dispatch({selection: {anchor: window.cowrite.view.state.doc.length}})"
    )
    owner.mouse.move(0, 0)
    expect(owner.get_by_test_id("comment-button")).to_have_count(0)
    owner.screenshot(path=str(ARTIFACTS / "comments.png"))

    # cora resolves it: hidden on both pages behind "Show resolved (1)"; reopening brings it back
    mine.get_by_test_id("resolve").click()
    expect(thread).to_have_count(0)
    highlighted(owner, "")
    toggle = owner.get_by_test_id("show-resolved")
    expect(toggle).to_have_text("Show resolved (1)")
    toggle.click()
    expect(thread).to_have_count(1)
    expect(thread.locator(".comment-resolved-note")).to_have_text("Resolved by cora")
    thread.get_by_test_id("reopen").click()
    expect(owner.get_by_test_id("show-resolved")).to_have_count(0)
    expect(page.get_by_test_id("comment-thread")).to_have_count(1)
    expect(page.get_by_test_id("show-resolved")).to_have_count(0)

    # the commented word is deleted: the thread stays, with its quote marked as removed
    owner.evaluate(
        "(() => { const at = window.cowrite.view.state.doc.toString().indexOf('Sir');"
        " window.cowrite.view.dispatch({changes: {from: at, to: at + 3, insert: ''}}); })()"
    )
    expect(mine.get_by_test_id("comment-quote")).to_have_text("text removed: Sir")
    highlighted(page, "")

    # made a viewer, cora still reads the comments, and can no longer add to them
    ann.api("PATCH", f"/api/documents/{doc_id}/members/cora", {"role": "viewer"})
    expect(page.get_by_test_id("role-badge")).to_have_text("View only")
    expect(mine).to_have_count(1)
    expect(mine.get_by_test_id("reply-input")).to_have_count(0)
    expect(mine.get_by_test_id("resolve")).to_have_count(0)

    # her list says how the document was shared with her
    page.goto("/")
    expect(page.get_by_test_id("role")).to_contain_text("Shared by ann · view only")
    ann.api("PATCH", f"/api/documents/{doc_id}/members/cora", {"role": "commenter"})
    page.reload()
    expect(page.get_by_test_id("role")).to_contain_text("Shared by ann · can comment")


def test_keyboard_shortcut_and_bad_input_in_the_page(ann: Writer) -> None:
    doc_id = ann.api("POST", "/api/documents", {"title": "Shortcut"})["id"]
    page = open_document(ann, doc_id)
    page.locator(".cm-content").click()
    page.keyboard.type("One lighthouse.")
    page.keyboard.press("Shift+Home")
    page.keyboard.press("Control+Alt+m")
    page.get_by_test_id("comment-input").fill("   ")
    page.get_by_test_id("comment-submit").click()
    expect(page.get_by_test_id("status-notice")).to_contain_text("Write something first")
    assert ann.api("GET", f"/api/documents/{doc_id}/comments")["threads"] == []
    page.get_by_test_id("comment-input").fill("Which one?")
    page.get_by_test_id("comment-input").press("Control+Enter")
    expect(page.get_by_test_id("comment-thread")).to_have_count(1)
    [thread] = ann.api("GET", f"/api/documents/{doc_id}/comments")["threads"]
    assert (thread["author"], thread["quote"], thread["body"]) == ("ann", "One lighthouse.", "Which one?")
    # on a narrow screen the threads sit below the text, full width
    page.set_viewport_size({"width": 600, "height": 800})
    margin = page.get_by_test_id("comments").bounding_box()
    text = page.locator(".cm-editor").bounding_box()
    assert margin is not None and text is not None
    assert margin["y"] >= text["y"] + text["height"] - 1 and margin["width"] >= 590
    # the owner deletes her thread
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("comment-delete").click()
    expect(page.get_by_test_id("comment-thread")).to_have_count(0)
    assert ann.api("GET", f"/api/documents/{doc_id}/comments")["threads"] == []
