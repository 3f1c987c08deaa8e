"""A writer in a real browser: create a document, type, take suggestions, reload, read the history."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.e2e.conftest import ARTIFACTS

OPENING = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be "
)
pytestmark = pytest.mark.timeout(240)


def state(page: Any) -> dict[str, Any]:
    value: dict[str, Any] = page.evaluate("window.cowrite.state()")
    return value


def editor_text(page: Any) -> str:
    text: str = page.evaluate("window.cowrite.view.state.doc.toString()")
    return text


def new_document(page: Any, title: str) -> str:
    page.goto("/")
    page.get_by_test_id("new-title").fill(title)
    page.get_by_test_id("create").click()
    page.wait_for_url(re.compile(r"/d/[0-9a-f]+$"))
    page.wait_for_function("window.cowrite && window.cowrite.state().connected")
    url: str = page.url
    return url


def type_and_wait_for_ghost(page: Any, text: str) -> str:
    """Type `text` at the end, pause, and wait for a whole suggestion; returns the ghost text."""
    page.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type(text, delay=15)
    page.wait_for_function("(window.cowrite.state().ghost || '').length > 0")
    page.wait_for_function("!window.cowrite.state().generating")
    ghost: str = state(page)["ghost"]
    assert ghost, "a suggestion was shown"
    return ghost


def test_ghost_text_grows_and_tab_accepts_it_with_correct_spacing(page: Any) -> None:
    url = new_document(page, "Tab accepts")
    page.locator(".cm-content").click()
    page.keyboard.type(OPENING, delay=15)

    page.wait_for_function("(window.cowrite.state().ghost || '').length > 0")
    first_seen = len(state(page)["ghost"])
    page.wait_for_function(f"(window.cowrite.state().ghost || '').length > {first_seen}")
    page.wait_for_function("!window.cowrite.state().generating")
    ghost = state(page)["ghost"]
    assert page.get_by_test_id("ghost").inner_text() == ghost
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "editor-ghost-text.png"))

    page.keyboard.press("Tab")
    assert state(page)["ghost"] is None
    text = editor_text(page)
    assert text == OPENING + ghost
    assert "  " not in text and not ghost.startswith(" ")

    page.wait_for_function("window.cowrite.state().saved")
    page.goto(url)
    page.wait_for_function("window.cowrite && window.cowrite.state().connected")
    assert editor_text(page) == OPENING + ghost
    page.get_by_test_id("history-button").click()
    # after the accept, a new pause may already have asked for the next suggestion
    accepted = page.locator("[data-testid=history-item][data-outcome=accepted]")
    accepted.first.wait_for()
    assert accepted.count() == 1 and ghost[:20] in accepted.first.inner_text()


def test_escape_dismisses_and_records_a_rejection(page: Any) -> None:
    new_document(page, "Escape")
    type_and_wait_for_ghost(page, OPENING)
    page.keyboard.press("Escape")
    assert state(page)["ghost"] is None
    assert editor_text(page) == OPENING
    page.get_by_test_id("history-button").click()
    page.locator("[data-testid=history-item][data-outcome=rejected]").first.wait_for()


def test_typing_the_ghost_text_consumes_it_without_a_new_request(page: Any) -> None:
    sockets: list[Any] = []
    sent: list[dict[str, Any]] = []

    def watch(socket: Any) -> None:
        if "/ws/suggest/" in socket.url:
            sockets.append(socket)
            socket.on("framesent", lambda payload: sent.append(json.loads(payload)))

    page.on("websocket", watch)
    new_document(page, "Type-through")
    ghost = type_and_wait_for_ghost(page, OPENING)
    assert len(ghost) >= 4
    asked = [f["id"] for f in sent if f["type"] == "suggest"]

    page.keyboard.type(ghost[:3], delay=30)
    assert state(page)["ghost"] == ghost[3:]
    assert editor_text(page) == OPENING + ghost[:3]

    # a character that differs throws the rest away; what was typed through is the writer's own
    # text, not an acceptance (a steadier assistant: tests/e2e/test_assistant.py)
    with sockets[-1].expect_event("framesent", lambda payload: '"feedback"' in payload) as feedback:
        page.keyboard.type("#")
    report = json.loads(feedback.value)
    assert (report["id"], report["outcome"], report["accepted_chars"]) == (asked[-1], "typed", 0)
    assert [f["id"] for f in sent if f["type"] == "suggest"] == asked, "typing through asked for nothing"
    assert state(page)["ghost"] is None
    assert editor_text(page) == OPENING + ghost[:3] + "#"


def test_control_right_accepts_the_next_word(page: Any) -> None:
    new_document(page, "Word accept")
    ghost = type_and_wait_for_ghost(page, OPENING)
    first_word = re.match(r"\s*\S+", ghost)
    assert first_word is not None
    page.keyboard.press("Control+ArrowRight")
    taken = editor_text(page)[len(OPENING) :]
    assert ghost.startswith(taken) and taken.startswith(first_word.group(0))
    assert state(page)["ghost"] == ghost[len(taken) :]


def test_the_list_page_creates_renames_and_deletes(page: Any) -> None:
    new_document(page, "First draft")
    page.goto("/")
    row = page.get_by_test_id("doc-row").first
    assert "First draft" in row.inner_text()
    row.get_by_test_id("rename").click()
    rename = page.get_by_test_id("rename-input")
    rename.fill("Second draft")
    rename.press("Enter")
    page.get_by_text("Second draft").wait_for()
    page.get_by_test_id("doc-row").first.get_by_test_id("delete").click()  # to the trash, with Undo
    page.get_by_test_id("empty").wait_for()


def test_alt_brackets_cycle_through_alternatives(page: Any) -> None:
    page.add_init_script(
        "localStorage.setItem('cowrite.settings', JSON.stringify({maxTokens: 12, temperature: 1.0, n: 3}))"
    )
    new_document(page, "Alternatives")
    type_and_wait_for_ghost(page, OPENING)
    counter = page.get_by_test_id("alt-counter")
    assert counter.inner_text().strip() == "1/3"
    page.keyboard.press("Alt+BracketRight")
    assert counter.inner_text().strip() == "2/3" and state(page)["alternative"] == 1
    page.keyboard.press("Alt+BracketLeft")
    page.keyboard.press("Alt+BracketLeft")
    assert counter.inner_text().strip() == "3/3" and state(page)["alternative"] == 2


def focused_in_editor(page: Any) -> bool:
    inside: bool = page.evaluate("window.cowrite.view.contentDOM.contains(document.activeElement)")
    return inside


@pytest.mark.parametrize("key", ["Tab", "Shift+Tab"])
def test_tab_before_any_suggestion_keeps_the_focus_and_the_typing(page: Any, key: str) -> None:
    url = new_document(page, "Hasty Tab")
    doc_id = url.rsplit("/", 1)[1]
    page.locator(".cm-content").click()
    # the key comes at once, long before the pause after which a suggestion is asked for
    page.keyboard.type("Thank you for")
    page.keyboard.press(key)
    assert not state(page)["ghost"], "a suggestion was already on screen"
    assert focused_in_editor(page), "the key moved the focus out of the editor"
    page.keyboard.type(" your time.")
    assert focused_in_editor(page)
    assert editor_text(page) == "Thank you for your time."
    page.wait_for_function("window.cowrite.state().saved")

    def stored() -> str:
        text: str = page.context.request.get(f"/api/documents/{doc_id}").json()["text"]
        return text

    # the server writes the plain text beside the CRDT a moment after the edits
    wait_until(lambda: stored() == "Thank you for your time.", "the typed words to be stored")
