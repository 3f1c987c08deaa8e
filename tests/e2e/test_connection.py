"""The page tells the truth about its connection: a stalled network or a browser gone offline reads
"offline" within seconds, the server's "try again later" and "too large" closes are handled and
shown, and nothing typed meanwhile is lost."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect
from starlette.applications import Starlette

from tests.conftest import serve, wait_until
from tests.e2e.conftest import GREEDY, PASSWORD, Writer, open_writer
from tests.e2e.faults import ClosingMiddleware, LoopThread, SocketCloser, StallingProxy

pytestmark = pytest.mark.timeout(180)

QUIET = {"autoSuggest": False}
# y-websocket alone notices a silent socket after 30 s; the page's probe must within a few
# (3 s of quiet, then 4 s without an answer): this bound only leaves room for a loaded machine
STALL_NOTICED_MS = 15_000
# the browser's own "offline" event needs no probe
OFFLINE_NOTICED_MS = 3_000
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_DOCUMENT_TOO_LARGE = 4413
CLOSE_UNAUTHENTICATED = 4401


@pytest.fixture
def closer(app: Starlette) -> SocketCloser:
    control = SocketCloser()
    app.add_middleware(ClosingMiddleware, closer=control)
    return control


@pytest.fixture
def base_url(app: Starlette, closer: SocketCloser) -> Iterator[str]:
    # the middleware goes in before the server starts (Starlette builds its stack at start-up)
    with serve(app) as url:
        yield url


@pytest.fixture
def proxy(base_url: str) -> Iterator[StallingProxy]:
    port = urlsplit(base_url).port
    assert port is not None
    with LoopThread() as loop, StallingProxy(loop, port) as stalling:
        yield stalling
        stalling.resume()


def state(page: Any) -> dict[str, Any]:
    value: dict[str, Any] = page.evaluate("window.cowrite.state()")
    return value


def stored_text(writer: Writer, doc_id: str) -> str:
    text: str = writer.api("GET", f"/api/documents/{doc_id}")["text"]
    return text


def open_typed_document(writer: Writer, title: str, text: str) -> tuple[Any, str]:
    """A new document holding `text`, typed in the writer's page and saved; (page, id)."""
    doc_id: str = writer.api("POST", "/api/documents", {"title": title})["id"]
    page = writer.page
    page.goto(f"/d/{doc_id}")
    page.wait_for_function("window.cowrite && window.cowrite.state().synced")
    page.locator(".cm-content").click()
    page.keyboard.type(text)
    page.wait_for_function("window.cowrite.state().saved")
    return page, doc_id


def record_save_states(page: Any) -> None:
    """From now on, window.saveStates lists every state and label the save indicator shows."""
    page.evaluate(
        """() => {
            const save = document.querySelector('[data-testid=status-save]');
            window.saveStates = [];
            new MutationObserver(() => window.saveStates.push([save.dataset.state, save.textContent]))
                .observe(save, {attributes: true, childList: true, characterData: true, subtree: true});
        }"""
    )


def test_a_stalled_connection_reads_offline_within_seconds_and_loses_nothing(
    browser: Any, proxy: StallingProxy
) -> None:
    ann = open_writer(browser, proxy.url, "ann", QUIET)
    try:
        page, doc_id = open_typed_document(ann, "Stalled", "Before. ")
        connection = page.get_by_test_id("status-connection")
        expect(connection).to_have_attribute("data-state", "synced")
        assert state(page)["connected"]

        # the network goes silent: nothing is forwarded, nothing is closed
        proxy.stall()
        expect(connection).to_have_attribute("data-state", "offline", timeout=STALL_NOTICED_MS)
        expect(connection).to_have_text("offline")
        # the suggestion socket, to the same server, does not pretend either
        page.wait_for_function("!window.cowrite.state().connected")
        page.keyboard.type("During.")
        expect(page.get_by_test_id("status-save")).to_have_attribute("data-state", "offline")
        assert not state(page)["saved"]

        proxy.resume()
        page.wait_for_function(
            "window.cowrite.state().synced && window.cowrite.state().saved", timeout=60_000
        )
        expect(connection).to_have_attribute("data-state", "synced")
        wait_until(
            lambda: stored_text(ann, doc_id) == "Before. During.",
            "the edits typed while stalled to be stored",
        )
        page.wait_for_function("window.cowrite.state().connected", timeout=60_000)
    finally:
        ann.close()


def test_going_offline_in_the_browser_reads_offline_at_once(browser: Any, base_url: str) -> None:
    ann = open_writer(browser, base_url, "ann", QUIET)
    try:
        page, doc_id = open_typed_document(ann, "Train", "Online. ")
        page.wait_for_function("window.cowrite.state().connected")
        connection, save = page.get_by_test_id("status-connection"), page.get_by_test_id("status-save")

        ann.context.set_offline(True)
        expect(connection).to_have_attribute("data-state", "offline", timeout=OFFLINE_NOTICED_MS)
        page.wait_for_function("!window.cowrite.state().connected", timeout=OFFLINE_NOTICED_MS)
        page.keyboard.type("Offline.")
        expect(save).to_have_attribute("data-state", "offline")
        expect(save).to_have_text("Offline — edits kept")

        ann.context.set_offline(False)
        page.wait_for_function("window.cowrite.state().synced && window.cowrite.state().saved")
        expect(save).to_have_text("Saved")
        wait_until(lambda: stored_text(ann, doc_id) == "Online. Offline.", "the offline edits to be stored")
    finally:
        ann.close()


def test_try_again_later_shows_retrying_then_sends_the_edit_again(
    browser: Any, base_url: str, closer: SocketCloser
) -> None:
    ann = open_writer(browser, base_url, "ann", QUIET)
    try:
        page, doc_id = open_typed_document(ann, "Busy database", "First. ")
        record_save_states(page)
        opened = closer.opened

        # the server cannot store the update (a database outage): it keeps nothing of it
        closer.close_next_update(CLOSE_TRY_AGAIN_LATER)
        page.keyboard.type("Second.")
        page.wait_for_function("window.cowrite.state().synced && window.cowrite.state().saved")
        assert closer.closed == [CLOSE_TRY_AGAIN_LATER]
        assert closer.opened > opened, "the page reconnected"
        shown = page.evaluate("window.saveStates")
        assert ["retrying", "Not saved yet — retrying…"] in shown, shown
        assert shown[-1] == ["saved", "Saved"], shown
        wait_until(lambda: stored_text(ann, doc_id) == "First. Second.", "the refused edit to be sent again")
        assert state(page)["ending"] is None
    finally:
        ann.close()


def test_a_change_too_large_to_save_stops_the_socket_and_offers_the_saved_version(
    browser: Any, base_url: str, closer: SocketCloser
) -> None:
    ann = open_writer(browser, base_url, "ann", QUIET)
    try:
        page, doc_id = open_typed_document(ann, "Too large", "Kept. ")
        opened = closer.opened

        # the server refuses the update: too large to store, so nothing of it was kept
        closer.close_next_update(CLOSE_DOCUMENT_TOO_LARGE)
        page.keyboard.type("An enormous paste.")
        notice = page.get_by_test_id("access-notice")
        expect(notice).to_contain_text("Your last change was too large to save")
        save = page.get_by_test_id("status-save")
        expect(save).to_have_attribute("data-state", "unsaved")
        expect(save).to_have_text("Not saved")
        current = state(page)
        assert current["ending"] == "too_large" and not current["online"], current
        # this browser's copy holds the change; reloading as is would send it again
        assert page.evaluate("window.cowrite.storedLocally()")

        page.get_by_test_id("reload-saved").click()
        page.wait_for_function(
            "window.cowrite && window.cowrite.state().synced && window.cowrite.state().saved"
        )
        assert page.evaluate("window.cowrite.ytext()") == "Kept. "
        expect(page.get_by_test_id("access-notice")).to_be_hidden()
        # only the reloaded page opened a document socket: the refused one never came back
        assert closer.opened == opened + 1
        assert closer.closed == [CLOSE_DOCUMENT_TOO_LARGE]
        wait_until(lambda: stored_text(ann, doc_id) == "Kept. ", "the saved text to be stored")
    finally:
        ann.close()


def test_a_document_socket_closed_for_an_ended_session_goes_to_sign_in(
    browser: Any, base_url: str, closer: SocketCloser
) -> None:
    ann = open_writer(browser, base_url, "ann", QUIET)
    try:
        page, doc_id = open_typed_document(ann, "Signed out", "Hello. ")
        # the session ends elsewhere; the server closes the open socket with 4401
        ann.api("POST", "/api/auth/signout")
        closer.close_next_update(CLOSE_UNAUTHENTICATED)
        page.keyboard.type("x")
        page.wait_for_url(f"{base_url}/signin?next=%2Fd%2F{doc_id}")
        page.get_by_test_id("auth-heading").filter(has_text="Sign in").wait_for()
    finally:
        ann.close()


def test_changing_the_password_in_the_editor_keeps_writing_under_the_new_session(
    browser: Any, base_url: str
) -> None:
    ann = open_writer(browser, base_url, "ann", {**GREEDY, "autoSuggest": False})
    try:
        page, doc_id = open_typed_document(ann, "Rotated", "Before. ")
        page.wait_for_function("window.cowrite.state().connected")
        page.get_by_test_id("account-button").click()
        page.get_by_test_id("password-current").fill(PASSWORD)
        page.get_by_test_id("password-new").fill("a brand new passphrase")
        page.get_by_test_id("password-repeat").fill("a brand new passphrase")
        # the old session's sockets are closed (4401); the page carries on under the new cookie
        with page.expect_response(re.compile(r"/api/auth/password$")) as changed:
            page.get_by_test_id("password-save").click()
        assert changed.value.status == 204
        expect(page.get_by_test_id("password-done")).to_be_visible()
        page.wait_for_function("window.cowrite.state().synced && window.cowrite.state().connected")
        page.locator(".cm-content").click()
        page.keyboard.press("End")
        page.keyboard.type("After.")
        page.wait_for_function("window.cowrite.state().saved")
        wait_until(
            lambda: stored_text(ann, doc_id) == "Before. After.", "the edit after the change to be stored"
        )
        assert page.url == f"{base_url}/d/{doc_id}"
    finally:
        ann.close()
