"""A steadier assistant in Chromium: a taken suggestion is one undo step, type-through is the
writer's own text, a Tab while it streams is an acceptance, empty suggestions show nothing and are
not listed, the server's final text is the suggestion, a shortened one says the server is busy,
notes for suggestions are saved and read by the engine, ghost text is legible in both themes and
announced once to screen readers."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette

from server.suggest import policy as suggestion_policy
from server.suggest import socket as suggestion_socket
from streaming.params import GenerationRequest
from streaming.runner import ModelRunner
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
# How much longer the slowed model takes for each step: long enough to press Tab between tokens.
SLOW_STEP_S = 0.15
# A distinctive time to give a `done` frame, to tell whether the status bar showed it.
MARKED_TTFT_MS = 987_654
BUSY_LABEL = "busy: shorter suggestions"
NOTHING_HERE = "No suggestion here."
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
    original = suggestion_policy.to_request

    def spy(*args: Any, **kwargs: Any) -> GenerationRequest | None:
        request = original(*args, **kwargs)
        if request is not None and request.max_new_tokens > 1:  # not a prime
            seen.append(request.prompt)
        return request

    monkeypatch.setattr(suggestion_socket, "to_request", spy)
    return seen


@pytest.fixture
def slow_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The served model takes SLOW_STEP_S longer for every step, so its suggestion is still
    streaming when the writer presses Tab. The pause is on the engine's executor thread, where a
    step runs, never on the server's event loop."""
    original = ModelRunner.forward

    def forward(self: ModelRunner, inputs: Any) -> Any:
        time.sleep(SLOW_STEP_S)
        return original(self, inputs)

    monkeypatch.setattr(ModelRunner, "forward", forward)


def watch_socket(page: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The frames the page sends on its suggestion socket, and those it receives, in order."""
    sent: list[dict[str, Any]] = []
    received: list[dict[str, Any]] = []

    def watch(socket: Any) -> None:
        if "/ws/suggest/" in socket.url:
            socket.on("framesent", lambda payload: sent.append(json.loads(payload)))
            socket.on("framereceived", lambda payload: received.append(json.loads(payload)))

    page.on("websocket", watch)
    return sent, received


def rewrite_dones(page: Any, rewrites: list[Callable[[dict[str, Any]], None]]) -> list[dict[str, Any]]:
    """Stand between the page and its suggestion socket: the server's `done` frames are changed
    by `rewrites`, one each in turn (the rest pass as they are), on their way to the page. Returns
    the frames the page sends, in order."""
    sent: list[dict[str, Any]] = []

    def route(page_side: Any) -> None:
        server = page_side.connect_to_server()

        def to_server(message: str | bytes) -> None:
            sent.append(json.loads(message))
            server.send(message)

        def to_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "done" and rewrites:
                rewrites.pop(0)(frame)
            page_side.send(json.dumps(frame))

        page_side.on_message(to_server)
        server.on_message(to_page)

    page.route_web_socket(re.compile(r"/ws/suggest/"), route)
    return sent


def wait_for_status(page: Any, item: str, text: str) -> None:
    """Wait until the status bar's item (its test id) reads `text`."""
    page.wait_for_function(
        "([item, text]) => document.querySelector(`[data-testid=${item}]`).textContent === text",
        arg=[item, text],
    )


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


def test_an_empty_suggestion_shows_nothing_and_is_not_listed(browser: Any, base_url: str) -> None:
    writer = open_writer(browser, base_url, "writer", {**GREEDY, "autoSuggest": False})
    page = writer.page
    done: list[dict[str, Any]] = []

    def timed(frame: dict[str, Any]) -> None:
        # as the server did before it left the time out of an empty suggestion: the page must
        # not take a time for a suggestion
        done.append(json.loads(json.dumps(frame)))
        frame["ttft_ms"] = MARKED_TTFT_MS

    sent = rewrite_dones(page, [timed])
    new_document(page, "Shopping")
    page.locator(".cm-content").click()
    page.keyboard.type(LIST, delay=5)
    for _ in " and jam":
        page.keyboard.press("ArrowLeft")
    page.keyboard.press("Control+Space")
    wait_for(page, lambda: bool(done), "the suggestion to end")
    [frame] = done
    assert [a["text"] for a in frame["alternatives"]] == [""]
    # the writer asked, so the page says there was nothing; it claims no suggestion came
    wait_for_status(page, "status-notice", NOTHING_HERE)
    assert page.get_by_test_id("status-ttft").inner_text() == ""
    assert state(page)["ghost"] is None
    assert [f["type"] for f in sent if f["type"] in ("suggest", "feedback")] == ["suggest"]
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
    # the prompt as docs/protocol.md writes it: the notes, a rule, then the text
    assert prompts[-1] == f"Notes for this text:\n{NOTES}\n\n---\n\nDear hiring manager,"

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


def test_tab_during_streaming_is_recorded_as_accepted(browser: Any, base_url: str, slow_model: None) -> None:
    settings = {"maxTokens": 48, "temperature": 0, "n": 1, "autoSuggest": False}
    writer = open_writer(browser, base_url, "writer", settings)
    page = writer.page
    sent, received = watch_socket(page)
    doc_id = new_document(page, "Streaming")
    page.locator(".cm-content").click()
    page.keyboard.type(OPENING, delay=5)
    page.keyboard.press("Control+Space")
    page.wait_for_function("() => Boolean(window.cowrite.state().ghost) && window.cowrite.state().generating")
    page.keyboard.press("Tab")
    taken = editor_text(page)[len(OPENING) :]
    assert taken
    asked = [f["id"] for f in sent if f["type"] == "suggest"][-1]
    wait_for(page, lambda: any(f["type"] == "feedback" and f["id"] == asked for f in sent), "the feedback")
    # still streaming: the rest is cancelled, and what was taken is reported as accepted
    assert [f["type"] for f in sent if f.get("id") == asked] == ["suggest", "cancel", "feedback"]
    [report] = [f for f in sent if f["type"] == "feedback" and f["id"] == asked]
    assert (report["outcome"], report["accepted_chars"]) == ("accepted", len(taken))
    wait_for(page, lambda: any(f["type"] == "done" and f["id"] == asked for f in received), "the done")
    [done] = [f for f in received if f["type"] == "done" and f["id"] == asked]
    assert done["reason"] == "cancelled", "it ended before the Tab: the test did not take it mid-stream"

    def recorded() -> str | None:
        rows = writer.api("GET", f"/api/documents/{doc_id}/suggestions")["suggestions"]
        return next((row["outcome"] for row in rows if row["id"] == done["suggestion"]), None)

    # the server stores the generation's end and the feedback in either order; the writer's Tab wins
    wait_for(page, lambda: recorded() not in (None, "pending"), "the suggestion to be recorded")
    assert recorded() == "accepted", "the generation's end (cancelled) was stored over the writer's Tab"
    assert history_outcomes(page) == ["accepted"]
    page.get_by_test_id("history-button").click()
    assert page.locator("[data-testid=history-item][data-outcome=accepted] .badge").inner_text() == "accepted"
    writer.close()


def test_the_final_text_is_the_suggestion(browser: Any, base_url: str) -> None:
    writer = open_writer(browser, base_url, "writer", {**GREEDY, "autoSuggest": False})
    page = writer.page
    shortened: list[str] = []

    def cut_in_half(frame: dict[str, Any]) -> None:
        for alternative in frame["alternatives"]:
            alternative["text"] = alternative["text"][: len(alternative["text"]) // 2]
            shortened.append(alternative["text"])

    def empty(frame: dict[str, Any]) -> None:
        for alternative in frame["alternatives"]:
            alternative["text"] = ""
        frame["ttft_ms"] = MARKED_TTFT_MS

    sent = rewrite_dones(page, [cut_in_half, empty])
    new_document(page, "Final text")
    page.locator(".cm-content").click()
    page.keyboard.type(OPENING, delay=5)

    # the server ends the suggestion shorter than it streamed: the ghost is cut to its final text
    page.keyboard.press("Control+Space")
    page.wait_for_function("!window.cowrite.state().generating")
    [final] = shortened
    assert final and state(page)["ghost"] == final
    page.keyboard.press("Tab")
    assert editor_text(page) == OPENING + final
    first = [f["id"] for f in sent if f["type"] == "suggest"][-1]
    wait_for(page, lambda: any(f["type"] == "feedback" and f["id"] == first for f in sent), "the feedback")
    [report] = [f for f in sent if f["type"] == "feedback" and f["id"] == first]
    assert (report["outcome"], report["accepted_chars"]) == ("accepted", len(final))
    timing = page.get_by_test_id("status-ttft").inner_text()
    assert timing.startswith("last suggestion: ")

    # the server empties it: what streamed goes, and nothing claims a suggestion came
    page.keyboard.type(" She", delay=5)
    page.keyboard.press("Control+Space")
    page.wait_for_function("!window.cowrite.state().generating")
    assert state(page)["ghost"] is None
    assert page.get_by_test_id("status-ttft").inner_text() == timing
    second = [f["id"] for f in sent if f["type"] == "suggest"][-1]
    # a third request: once it is seen, so would any feedback on the second be
    page.keyboard.press("Control+Space")
    wait_for(page, lambda: [f["type"] for f in sent][-1] == "suggest", "the next request")
    assert not [f for f in sent if f["type"] == "feedback" and f["id"] == second]
    writer.close()


def test_a_shortened_suggestion_says_the_server_is_busy(browser: Any, base_url: str) -> None:
    writer = open_writer(browser, base_url, "writer", {**GREEDY, "autoSuggest": False})
    page = writer.page

    def shortened_at_a_sentence(frame: dict[str, Any]) -> None:
        frame.update(shortened=True, reason="sentence")

    def unsure(frame: dict[str, Any]) -> None:
        frame.pop("shortened", None)
        frame["reason"] = "unsure"

    rewrite_dones(page, [shortened_at_a_sentence, unsure])
    new_document(page, "Busy")
    page.locator(".cm-content").click()
    page.keyboard.type(OPENING, delay=5)
    busy = page.get_by_test_id("status-shortened")
    notice = page.get_by_test_id("status-notice")

    page.keyboard.press("Control+Space")
    wait_for_status(page, "status-shortened", BUSY_LABEL)
    assert busy.is_visible()
    # `sentence` is an ordinary ending: no error notice
    assert notice.inner_text() in ("", NOTHING_HERE)

    # the next suggestion, not shortened, clears it; `unsure` is an ordinary ending too
    page.keyboard.press("Escape")
    page.keyboard.type(" She", delay=5)
    page.keyboard.press("Control+Space")
    wait_for_status(page, "status-shortened", "")
    assert not busy.is_visible()
    assert notice.inner_text() in ("", NOTHING_HERE)
    writer.close()


def test_history_leaves_out_suggestions_without_text(writer: Writer) -> None:
    def record(number: int, alternatives: list[str], outcome: str) -> dict[str, Any]:
        at = f"2030-01-01T00:00:0{number}Z"
        return {
            "id": number,
            "requested_at": at,
            "alternatives": alternatives,
            "outcome": outcome,
            "accepted_chars": 0,
            "alternative": 0,
            "ttft_ms": 50.0,
            "total_ms": 90.0,
            "tokens": 3,
        }

    # what an older server lists: rows without text beside those with some
    records = [
        record(1, [""], "cancelled"),
        record(2, ["a single man"], "accepted"),
        record(3, ["", "  "], "rejected"),
        record(4, ["", "in want of a wife"], "rejected"),
    ]
    page = writer.page
    page.route(
        re.compile(r"/api/documents/[^/]+/suggestions$"),
        lambda route: route.fulfill(json={"suggestions": records}),
    )
    new_document(page, "History")
    assert history_outcomes(page) == ["rejected", "accepted"]
    page.get_by_test_id("history-button").click()
    texts = page.locator("[data-testid=history-item] .history-text").all_inner_texts()
    assert texts == ["in want of a wife", "a single man"]
