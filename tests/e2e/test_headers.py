"""Every page works in Chromium under the server's Content-Security-Policy, with no violation
reported: sign-in, the document list, the editor (co-edited, with a suggestion), a share link's
page and the not-found page. Another page cannot frame any of them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import GREEDY, Writer, open_writer

pytestmark = pytest.mark.timeout(240)

# Chromium reports a violation both as a console error and as a `securitypolicyviolation` event
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
"""


def wait_for(page: Any, expression: str, timeout_s: float = 30.0) -> None:
    """`page.wait_for_function` without its `eval`, which the policy forbids: the expression is
    evaluated through the browser's debugging protocol, which the policy does not govern."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(20)


class Watched:
    """A writer whose page's CSP violations are collected from the console and from events."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.page = writer.page
        self.console: list[str] = []
        writer.context.add_init_script(RECORD_VIOLATIONS)
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.console.append(message.text)

    def visit(self, path: str) -> Any:
        """Open `path`; the response must carry the policy."""
        response = self.page.goto(path)
        assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", ""), path
        return response

    def wait_for(self, expression: str) -> None:
        wait_for(self.page, expression)

    def violations(self) -> list[str]:
        events: list[str] = self.page.evaluate("window.__violations || []")
        return self.console + events


@pytest.fixture
def ann(browser: Any, base_url: str) -> Iterator[Watched]:
    writer = open_writer(browser, base_url, "ann", {**GREEDY, "maxTokens": 8}, enforce_csp=True)
    yield Watched(writer)
    writer.close()


@pytest.fixture
def bob(browser: Any, base_url: str, ann: Watched) -> Iterator[Watched]:
    writer = open_writer(browser, base_url, "bob", {"autoSuggest": False}, enforce_csp=True)
    yield Watched(writer)
    writer.close()


def test_every_page_works_under_the_policy(browser: Any, base_url: str, ann: Watched, bob: Watched) -> None:
    # the document list: create a document through its form
    ann.visit("/")
    ann.page.get_by_test_id("new-title").fill("Under policy")
    ann.page.get_by_test_id("create").click()
    ann.page.wait_for_url("**/d/*")
    doc_id = ann.page.url.rsplit("/", 1)[1]
    assert ann.violations() == []

    # the editor, co-edited: the socket connects (connect-src), the other's cursor is drawn with
    # style attributes, and a suggestion streams in as ghost text
    link = ann.writer.api("POST", f"/api/documents/{doc_id}/links", {"role": "editor"})
    bob.visit(link["url"])  # the share link's page
    bob.page.get_by_test_id("join").click()
    bob.page.wait_for_url(f"**/d/{doc_id}")
    for watched in (ann, bob):
        watched.wait_for("window.cowrite && window.cowrite.state().synced")
    bob.page.locator(".cm-content").click()
    bob.page.keyboard.type("Bob's line. ")
    ann.page.locator(".cm-ySelectionCaret").first.wait_for()
    ann.page.locator(".cm-content").click()
    ann.page.keyboard.press("Control+End")
    ann.page.keyboard.type("Once upon a time")
    ann.wait_for("(window.cowrite.state().ghost || '').length > 0")
    ann.wait_for("window.cowrite.state().saved")
    assert ann.violations() == [] and bob.violations() == []

    # the not-found page, and the sign-in page after signing out
    bob.visit("/d/does-not-exist")
    bob.page.get_by_test_id("not-found").wait_for()
    stranger = Watched(open_writer(browser, base_url, None, enforce_csp=True))
    try:
        stranger.visit("/signin")
        stranger.page.get_by_test_id("auth-form").wait_for()
        stranger.wait_for("document.body.dataset.state === 'ready'")
        assert stranger.violations() == []
    finally:
        stranger.writer.close()
    assert bob.violations() == []


def test_another_page_cannot_frame_the_editor(browser: Any, base_url: str, ann: Watched) -> None:
    doc_id = ann.writer.api("POST", "/api/documents", {"title": "Not in a frame"})["id"]
    page = ann.page
    with page.expect_console_message(lambda message: "frame-ancestors" in message.text):
        page.set_content(f'<iframe src="{base_url}/d/{doc_id}" width="800" height="600"></iframe>')
    framed = page.frames[-1]
    assert framed is not page.main_frame
    assert framed.evaluate("document.querySelector('.cm-content')") is None
