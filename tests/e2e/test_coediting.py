"""Two people in one document, in two real browser pages against the real server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS, open_writer

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def pair(browser: Any, base_url: str) -> Iterator[tuple[Any, Any]]:
    # Ann writes with suggestions; Bob, whom she invites to edit, with automatic suggestions off,
    # so only Ann's appear
    viewport = {"width": 1100, "height": 700}
    ann = open_writer(browser, base_url, "ann", {"maxTokens": 12, "temperature": 0, "n": 1}, viewport)
    bob = open_writer(browser, base_url, "bob", {"autoSuggest": False}, viewport)
    created = ann.api("POST", "/api/documents", {"title": "Together"})
    ann.api("POST", f"/api/documents/{created['id']}/members", {"username": "bob", "role": "editor"})
    for writer in (ann, bob):
        writer.page.goto(f"/d/{created['id']}")
        writer.page.wait_for_function("window.cowrite && window.cowrite.state().synced")
    yield ann.page, bob.page
    ann.close()
    bob.close()


def text(page: Any) -> str:
    value: str = page.evaluate("window.cowrite.ytext()")
    return value


def test_typing_appears_in_the_other_page_within_a_second(pair: tuple[Any, Any]) -> None:
    ann, bob = pair
    bob.evaluate("window.cowrite.state()")
    bob.locator(".cm-content").click()
    bob.keyboard.type("Bob was here. ")
    bob.wait_for_function("window.cowrite.state().saved")
    sent = time.monotonic()
    ann.wait_for_function("window.cowrite.ytext().includes('Bob was here.')", timeout=1000)
    assert time.monotonic() - sent < 1.0
    assert text(ann) == text(bob) == "Bob was here. "


def test_the_other_persons_cursor_and_name_are_visible(pair: tuple[Any, Any]) -> None:
    ann, bob = pair
    bob.locator(".cm-content").click()
    bob.keyboard.type("Hello from Bob.")
    ann.wait_for_function("window.cowrite.state().peers.some(p => p.name === 'bob')")
    caret = ann.locator(".cm-ySelectionCaret")
    caret.first.wait_for()
    assert "bob" in ann.locator(".cm-ySelectionInfo").first.text_content()
    assert ann.get_by_test_id("peer").first.inner_text().strip() == "bob"
    ARTIFACTS.mkdir(exist_ok=True)
    ann.screenshot(path=str(ARTIFACTS / "coediting-remote-cursor.png"))


def test_an_accepted_suggestion_reaches_the_other_page_marked_as_ai_text(pair: tuple[Any, Any]) -> None:
    ann, bob = pair
    ann.locator(".cm-content").click()
    ann.keyboard.type("It is a truth universally acknowledged, that a single man must be ", delay=10)
    ann.wait_for_function("(window.cowrite.state().ghost || '').length > 0")
    bob.wait_for_function("window.cowrite.state().peers.some(p => p.name === 'ann' && p.suggesting)")
    ann.wait_for_function("!window.cowrite.state().generating")
    ghost = ann.evaluate("window.cowrite.state().ghost")
    ann.keyboard.press("Tab")

    bob.wait_for_function("(t) => window.cowrite.ytext().endsWith(t)", arg=ghost)
    bob.wait_for_function("window.cowrite.aiSpans().length === 1")
    span = bob.evaluate("window.cowrite.aiSpans()[0]")
    assert span["text"] == ghost and span["user"] == "ann" and span["suggestion"]
    bob.get_by_test_id("ai-toggle").click()
    marked = bob.locator(".cm-ai")
    marked.first.wait_for()
    assert ghost.strip()[:10] in "".join(marked.all_text_contents())
    bob.screenshot(path=str(ARTIFACTS / "coediting-ai-text.png"))


def test_offline_edits_on_both_sides_merge_on_reconnect(pair: tuple[Any, Any]) -> None:
    ann, bob = pair
    bob.locator(".cm-content").click()
    bob.keyboard.type("Middle. ")
    ann.wait_for_function("window.cowrite.ytext() === 'Middle. '")

    ann.evaluate("window.cowrite.goOffline()")
    ann.wait_for_function("!window.cowrite.state().online")
    assert ann.get_by_test_id("status-connection").get_attribute("data-state") == "offline"
    ann.locator(".cm-content").click()
    ann.keyboard.press("Control+Home")
    ann.keyboard.type("Ann offline. ")
    bob.keyboard.press("Control+End")
    bob.keyboard.type("Bob online.")
    bob.wait_for_function("window.cowrite.state().saved")
    assert "Ann offline." not in text(bob)

    ann.evaluate("window.cowrite.goOnline()")
    ann.wait_for_function("window.cowrite.state().synced && window.cowrite.state().saved")
    assert ann.get_by_test_id("status-connection").get_attribute("data-state") == "synced"
    expected = "Ann offline. Middle. Bob online."
    ann.wait_for_function("(t) => window.cowrite.ytext() === t", arg=expected)
    bob.wait_for_function("(t) => window.cowrite.ytext() === t", arg=expected)


def show_ghost(ann: Any) -> str:
    ann.locator(".cm-content").click()
    ann.keyboard.press("Control+End")
    ann.keyboard.type("It is a truth universally acknowledged, that a single man must be ", delay=10)
    ann.wait_for_function("(window.cowrite.state().ghost || '').length > 0")
    ann.wait_for_function("!window.cowrite.state().generating")
    ghost: str = ann.evaluate("window.cowrite.state().ghost")
    return ghost


def test_a_remote_insert_before_the_suggestion_keeps_it_aligned(pair: tuple[Any, Any]) -> None:
    ann, bob = pair
    ghost = show_ghost(ann)
    bob.wait_for_function("window.cowrite.ytext().endsWith('must be ')")
    bob.locator(".cm-content").click()
    bob.keyboard.press("Control+Home")
    bob.keyboard.type("Preface. ")
    ann.wait_for_function("window.cowrite.ytext().startsWith('Preface. ')")
    assert ann.evaluate("window.cowrite.state().ghost") == ghost
    # the ghost still sits at Ann's cursor, right after her text
    head = ann.evaluate("window.cowrite.view.state.selection.main.head")
    assert head == len(text(ann))
    ghost_box = ann.get_by_test_id("ghost").bounding_box()
    assert ghost_box is not None


def test_a_remote_edit_at_the_anchor_dismisses_the_suggestion(pair: tuple[Any, Any]) -> None:
    ann, bob = pair
    show_ghost(ann)
    bob.wait_for_function("window.cowrite.ytext().endsWith('must be ')")
    bob.locator(".cm-content").click()
    bob.keyboard.press("Control+End")
    bob.keyboard.type("X")
    ann.wait_for_function("window.cowrite.ytext().endsWith('must be X')")
    ann.wait_for_function("window.cowrite.state().ghost === null")
