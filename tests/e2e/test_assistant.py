"""A steadier assistant in Chromium: a taken suggestion is one undo step, type-through is the
writer's own text, empty suggestions are not listed, notes for suggestions are saved and read by
the engine, ghost text is legible in both themes and announced once to screen readers."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette

from server.suggest import socket as suggestion_socket
from streaming.params import GenerationRequest
from tests.e2e.conftest import GREEDY, Writer, open_writer
from tests.e2e.test_editor import editor_text, state

OPENING = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be "
)
# greedy, the model goes on with a new list item: at the end of "Bread", on a line that goes on,
# the suggestion stops at once, with no text
LIST = "1. Eggs\n2. Milk\n3. Bread and jam"
NOTES = "Audience: a hiring manager.\nTone: plain and warm."
MIN_CONTRAST = 4.5
pytestmark = pytest.mark.timeout(240)

# The contrast of the ghost's colour against the first opaque background behind it (WCAG 2.1).
CONTRAST_JS = """() => {
  const parse = (value) => (value.match(/[\\d.]+/g) || []).map(Number);
  const ghost = document.querySelector("[data-testid=ghost]");
  const fg = parse(getComputedStyle(ghost).color);
  let node = ghost, bg = null;
  while (node && node.nodeType === 1) {
    const colour = parse(getComputedStyle(node).backgroundColor);
    if (colour.length >= 3 && (colour.length === 3 || colour[3] > 0)) { bg = colour; break; }
    node = node.parentElement;
  }
  bg = bg || [255, 255, 255];
  const lum = ([r, g, b]) => {
    const lin = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const [a, b] = [lum(fg), lum(bg)];
  return {ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), fg, bg};
}"""


@pytest.fixture
def writer(browser: Any, base_url: str) -> Iterator[Writer]:
    opened = open_writer(browser, base_url, "writer")
    yield opened
    opened.close()


@pytest.fixture
def prompts(app: Starlette, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The prompt of every request the served app's engine is given; notes are read afresh."""
    seen: list[str] = []
    monkeypatch.setattr(suggestion_socket, "NOTES_FRESH_S", 0.0)
    original = suggestion_socket.to_request

    def spy(*args: Any, **kwargs: Any) -> GenerationRequest | None:
        request = original(*args, **kwargs)
        if request is not None and request.max_new_tokens > 1:  # not a prime
            seen.append(request.prompt)
        return request

    monkeypatch.setattr(suggestion_socket, "to_request", spy)
    return seen


def new_document(page: Any, title: str) -> str:
    page.goto("/")
    page.get_by_test_id("new-title").fill(title)
    page.get_by_test_id("create").click()
    page.wait_for_url(re.compile(r"/d/[0-9a-f]+$"))
    page.wait_for_function("window.cowrite && window.cowrite.state().connected")
    return str(page.url.rsplit("/", 1)[-1])


def type_and_wait_for_ghost(page: Any, text: str) -> str:
    page.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type(text, delay=15)
    page.wait_for_function("(window.cowrite.state().ghost || '').length > 0")
    page.wait_for_function("!window.cowrite.state().generating")
    ghost: str = state(page)["ghost"]
    assert ghost
    return ghost


def wait_for(page: Any, condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Wait for something Playwright's event handlers record: they run only while Playwright
    waits, so wait in the page rather than in a sleep."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        page.wait_for_timeout(50)


def history_outcomes(page: Any) -> list[str]:
    page.get_by_test_id("history-button").click()
    page.wait_for_function("!document.getElementById('history-list').hasAttribute('aria-busy')")
    outcomes: list[str] = page.locator("[data-testid=history-item]").evaluate_all(
        "items => items.map(item => item.dataset.outcome)"
    )
    page.keyboard.press("Escape")
    return outcomes


def test_tab_then_ctrl_z_removes_only_the_suggestion(writer: Writer) -> None:
    page = writer.page
    new_document(page, "Undo")
    ghost = type_and_wait_for_ghost(page, OPENING)
    assert len(ghost) >= 4
    # type two characters of it and take the rest at once: all within Yjs' capture window, which
    # without a step boundary would make one undo step of the typing and the take
    page.keyboard.type(ghost[:2])
    page.keyboard.press("Tab")
    assert editor_text(page) == OPENING + ghost
    # only the taken part is the model's: the two characters typed through are the writer's
    page.wait_for_function("window.cowrite.aiSpans().length === 1")
    assert page.evaluate("window.cowrite.aiSpans()[0].text") == ghost[2:]
    page.keyboard.press("Control+z")
    assert editor_text(page) == OPENING + ghost[:2]
    page.keyboard.press("Control+z")
    assert editor_text(page) == OPENING  # the typing before is a step of its own
    page.keyboard.press("Control+y")
    page.keyboard.press("Control+y")
    assert editor_text(page) == OPENING + ghost


def test_each_word_accept_is_its_own_undo_step(writer: Writer) -> None:
    page = writer.page
    new_document(page, "Undo words")
    ghost = type_and_wait_for_ghost(page, OPENING)
    page.keyboard.press("Control+ArrowRight")
    first = editor_text(page)
    page.keyboard.press("Control+ArrowRight")
    second = editor_text(page)
    assert len(OPENING) < len(first) < len(second) <= len(OPENING + ghost)
    page.keyboard.press("Control+z")
    assert editor_text(page) == first
    page.keyboard.press("Control+z")
    assert editor_text(page) == OPENING


def test_typing_through_is_not_an_acceptance(writer: Writer) -> None:
    page = writer.page
    sent: list[dict[str, Any]] = []

    def watch(socket: Any) -> None:
        if "/ws/suggest/" in socket.url:
            socket.on("framesent", lambda payload: sent.append(json.loads(payload)))

    page.on("websocket", watch)
    new_document(page, "Type-through")
    ghost = type_and_wait_for_ghost(page, OPENING)
    asked = [f["id"] for f in sent if f["type"] == "suggest"][-1]
    page.keyboard.type(ghost, delay=20)  # the writer types exactly what was suggested
    assert editor_text(page) == OPENING + ghost
    wait_for(page, lambda: any(f["type"] == "feedback" and f["id"] == asked for f in sent), "the feedback")
    [report] = [f for f in sent if f["type"] == "feedback" and f["id"] == asked]
    assert (report["outcome"], report["accepted_chars"]) == ("typed", 0)
    assert page.evaluate("window.cowrite.aiSpans()") == []
    page.keyboard.press("Escape")  # a new suggestion may be showing; dismiss it
    outcomes = history_outcomes(page)
    assert "typed" in outcomes and not {"accepted", "partial"} & set(outcomes)
    page.get_by_test_id("history-button").click()
    assert "typed by you" in page.locator("[data-testid=history-item][data-outcome=typed]").first.inner_text()


def test_an_empty_suggestion_is_not_listed(browser: Any, base_url: str) -> None:
    writer = open_writer(browser, base_url, "writer", {**GREEDY, "autoSuggest": False})
    page = writer.page
    done: list[dict[str, Any]] = []

    def watch(socket: Any) -> None:
        if "/ws/suggest/" in socket.url:
            socket.on("framereceived", lambda payload: done.append(json.loads(payload)))

    page.on("websocket", watch)
    new_document(page, "Shopping")
    page.locator(".cm-content").click()
    page.keyboard.type(LIST, delay=5)
    for _ in " and jam":
        page.keyboard.press("ArrowLeft")
    page.keyboard.press("Control+Space")
    wait_for(page, lambda: any(f["type"] == "done" for f in done), "the suggestion to end")
    [frame] = [f for f in done if f["type"] == "done"]
    assert [a["text"] for a in frame["alternatives"]] == [""]
    assert state(page)["ghost"] is None
    assert history_outcomes(page) == []
    page.get_by_test_id("history-button").click()
    assert "No suggestions yet" in page.get_by_test_id("history-panel").inner_text()
    writer.close()


def test_notes_are_saved_shared_with_editors_and_read_by_the_engine(
    browser: Any, base_url: str, writer: Writer, prompts: list[str]
) -> None:
    page = writer.page
    doc_id = new_document(page, "Cover letter")
    page.locator(".cm-content").click()
    page.keyboard.type("Dear hiring manager,", delay=5)
    page.get_by_test_id("settings-button").click()
    notes = page.get_by_test_id("notes")
    notes.fill(NOTES)
    page.wait_for_function("document.querySelector('[data-testid=notes-state]').dataset.state === 'saved'")
    assert page.get_by_test_id("notes-state").inner_text() == "Saved"
    assert writer.api("GET", f"/api/documents/{doc_id}")["notes"] == NOTES

    # the engine reads them before the text
    page.keyboard.press("Escape")
    page.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.press("Control+Space")
    wait_for(page, lambda: bool(prompts), "a suggestion request")
    header, separator = suggestion_socket.NOTES_HEADER, suggestion_socket.NOTES_SEPARATOR
    assert prompts[-1] == f"{header}{NOTES}{separator}Dear hiring manager,"

    # a co-editor sees them; bad notes say why and change nothing
    bob = open_writer(browser, base_url, "bob")
    writer.api("POST", f"/api/documents/{doc_id}/members", {"username": "bob", "role": "editor"})
    bob.page.goto(f"/d/{doc_id}")
    bob.page.wait_for_function("window.cowrite && window.cowrite.state().synced")
    bob.page.get_by_test_id("settings-button").click()
    assert bob.page.get_by_test_id("notes").input_value() == NOTES
    bob.page.get_by_test_id("notes").evaluate(
        "(area) => { area.value = 'Tone: \\u0007loud'; area.dispatchEvent(new Event('input')); }"
    )
    bob.page.wait_for_function(
        "document.querySelector('[data-testid=notes-state]').dataset.state === 'failed'"
    )
    assert "control characters" in bob.page.get_by_test_id("notes-state").inner_text()
    assert writer.api("GET", f"/api/documents/{doc_id}")["notes"] == NOTES
    bob.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_ghost_text_contrast_is_at_least_4_5(writer: Writer, theme: str) -> None:
    page = writer.page
    new_document(page, f"Contrast {theme}")
    page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
    type_and_wait_for_ghost(page, OPENING)
    measured = page.evaluate(CONTRAST_JS)
    assert measured["ratio"] >= MIN_CONTRAST, measured
    # the background really is the theme's (dark is dark), not a default white
    assert (sum(measured["bg"][:3]) < 200) == (theme == "dark"), measured


def test_a_finished_suggestion_is_announced_once(writer: Writer) -> None:
    page = writer.page
    new_document(page, "Announce")
    region = page.get_by_test_id("ghost-announcer")
    assert region.get_attribute("aria-live") == "polite"
    page.evaluate(
        """() => {
          window.announced = [];
          const region = document.querySelector('[data-testid=ghost-announcer]');
          new MutationObserver(() => region.textContent && window.announced.push(region.textContent))
            .observe(region, {childList: true, characterData: true, subtree: true});
        }"""
    )
    ghost = type_and_wait_for_ghost(page, OPENING)
    page.wait_for_function("window.announced.length > 0")
    said = page.evaluate("window.announced")
    assert said == [f"Suggestion: {ghost.strip()}. Tab to accept, Escape to dismiss."]
    page.keyboard.press("Escape")
    page.wait_for_function("document.querySelector('[data-testid=ghost-announcer]').textContent === ''")
    assert page.evaluate("window.announced.length") == 1
