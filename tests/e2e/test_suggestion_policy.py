"""Where the editor asks for suggestions, in Chromium (editor_ui/src/suggestionpolicy.js): never
with the cursor in a link's target, a web address or code, and as usual in prose."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import GREEDY, Writer, open_writer
from tests.e2e.test_assistant import new_document, wait_for, wait_for_status
from tests.e2e.test_editor import editor_text, state

pytestmark = pytest.mark.timeout(240)

LINK_TEXT = "Read the docs"
ADDRESS = "https://example.org/guide"
# Each spot, with `|` for the cursor, and what Ctrl+Space says there; prose (None) last, so that
# its request, once seen, comes after anything the others might have sent.
SPOTS: list[tuple[str, str | None]] = [
    ("Read [the guide](https://example.org/gu|ide) today.", "No suggestions in a link's address."),
    ("Write to <https://example.org/conta|ct> first.", "No suggestions in a web address."),
    ("Download it from https://example.org/fi|", "No suggestions in a web address."),
    ("Call `format_doc|ument()` first.", "No suggestions in code."),
    ("```python\nprint('hel|lo')\n```\n\nAnd then", "No suggestions in code."),
    ("Right after the link [here](https://example.org)| the prose goes on", None),
]

# Replace the whole text and put the cursor at `pos`, as one change (not a typed one: it schedules
# no suggestion by itself).
SET_TEXT_JS = """([text, pos]) => {
  const view = window.cowrite.view;
  view.dispatch({changes: {from: 0, to: view.state.doc.length, insert: text}, selection: {anchor: pos}});
  view.focus();
  document.querySelector('[data-testid=status-notice]').textContent = '';
}"""


def watch_sent(page: Any) -> list[dict[str, Any]]:
    """Every frame the page sends on its suggestion socket, in order."""
    sent: list[dict[str, Any]] = []

    def watch(socket: Any) -> None:
        if "/ws/suggest/" in socket.url:
            socket.on("framesent", lambda payload: sent.append(json.loads(payload)))

    page.on("websocket", watch)
    return sent


def suggests(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [frame for frame in sent if frame["type"] == "suggest"]


@pytest.fixture
def writer(browser: Any, base_url: str) -> Iterator[Writer]:
    opened = open_writer(browser, base_url, "writer")
    yield opened
    opened.close()


def test_no_request_while_typing_a_link_target(writer: Writer) -> None:
    page = writer.page
    sent = watch_sent(page)
    new_document(page, "Links")
    page.locator(".cm-content").click()
    page.keyboard.type(LINK_TEXT, delay=15)
    # in prose, the pause asks
    wait_for(page, lambda: bool(suggests(sent)), "a suggestion request in prose")
    asked = len(suggests(sent))

    # Ctrl+K makes "docs" a link with `url` selected; the writer types the address over it
    page.keyboard.press("Control+k")
    page.keyboard.type(ADDRESS, delay=15)
    assert editor_text(page) == f"Read the [docs]({ADDRESS})"
    # the pause comes, and is declined for the spot rather than asking
    page.wait_for_function("window.cowrite.state().declined === 'link'")
    assert len(suggests(sent)) == asked
    page.keyboard.press("Control+Space")
    wait_for_status(page, "status-notice", "No suggestions in a link's address.")

    # past the `)` it is prose again: the next pause asks
    page.keyboard.press("End")
    page.keyboard.type(" first", delay=15)
    after_link = f"Read the [docs]({ADDRESS}) first"
    wait_for(page, lambda: suggests(sent)[-1]["before"] == after_link, "a suggestion request after the link")
    assert state(page)["declined"] is None
    # nothing was asked with the cursor in the address: every request is seen by now, since the
    # last one went out after
    assert [frame["before"] for frame in suggests(sent) if "](" in frame["before"]] == [after_link]


def test_ctrl_space_says_why_nothing_is_asked(browser: Any, base_url: str) -> None:
    writer = open_writer(browser, base_url, "writer", {**GREEDY, "autoSuggest": False})
    page = writer.page
    sent = watch_sent(page)
    new_document(page, "Spots")
    for spot, said in SPOTS:
        pos = spot.index("|")
        text = spot.replace("|", "", 1)
        page.evaluate(SET_TEXT_JS, [text, pos])
        page.keyboard.press("Control+Space")
        if said is not None:
            wait_for_status(page, "status-notice", said)
            continue
        wait_for(page, lambda: bool(suggests(sent)), "a suggestion request in prose")
    # one request went out, the one in prose
    assert [frame["before"] for frame in suggests(sent)] == [SPOTS[-1][0].split("|", 1)[0]]
    writer.close()
