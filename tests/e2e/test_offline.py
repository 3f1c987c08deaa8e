"""Edits made offline survive a closed tab (the local IndexedDB copy), and signing out deletes it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import wait_until
from tests.e2e.conftest import Writer, open_writer

pytestmark = pytest.mark.timeout(240)

QUIET = {"autoSuggest": False}


def databases(page: Any) -> list[str]:
    names: list[str] = page.evaluate("async () => (await indexedDB.databases()).map((d) => d.name)")
    return names


def stored_text(writer: Writer, doc_id: str) -> str:
    text: str = writer.api("GET", f"/api/documents/{doc_id}")["text"]
    return text


def open_document(page: Any, doc_id: str) -> None:
    page.goto(f"/d/{doc_id}")
    page.wait_for_function("window.cowrite && window.cowrite.state().synced")


def test_edits_made_offline_reach_the_server_after_the_tab_was_closed(browser: Any, base_url: str) -> None:
    ann = open_writer(browser, base_url, "ann", QUIET)
    bob = open_writer(browser, base_url, "bob", QUIET)
    try:
        doc_id = ann.api("POST", "/api/documents", {"title": "Train ride"})["id"]
        ann.api("POST", f"/api/documents/{doc_id}/members", {"username": "bob", "role": "editor"})
        page = ann.page
        open_document(page, doc_id)
        assert page.evaluate("window.cowrite.state().local")
        assert f"cowrite:ann:{doc_id}" in databases(page)
        page.locator(".cm-content").click()
        page.keyboard.type("Online. ")
        page.wait_for_function("window.cowrite.state().saved")
        wait_until(lambda: stored_text(ann, doc_id) == "Online. ", "the online text to be stored")

        page.evaluate("window.cowrite.goOffline()")
        page.wait_for_function("!window.cowrite.state().online")
        page.keyboard.type("Written offline.")
        save = page.get_by_test_id("status-save")
        assert save.get_attribute("data-state") == "offline"
        assert (save.text_content() or "").strip() == "Offline — edits kept"
        assert not page.evaluate("window.cowrite.state().saved")
        # the keystrokes are in IndexedDB (not on the server) before the tab goes
        assert page.evaluate("window.cowrite.storedLocally()")
        page.close()
        assert stored_text(ann, doc_id) == "Online. "

        again = ann.context.new_page()
        again.set_default_timeout(30_000)
        open_document(again, doc_id)
        again.wait_for_function("window.cowrite.state().saved")
        assert again.evaluate("window.cowrite.ytext()") == "Online. Written offline."
        assert again.get_by_test_id("status-save").get_attribute("data-state") == "saved"
        wait_until(
            lambda: stored_text(ann, doc_id) == "Online. Written offline.", "the offline edits to be stored"
        )

        open_document(bob.page, doc_id)
        bob.page.wait_for_function("window.cowrite.ytext() === 'Online. Written offline.'")
    finally:
        ann.close()
        bob.close()


def test_a_viewer_keeps_no_local_copy(browser: Any, base_url: str) -> None:
    ann = open_writer(browser, base_url, "ann", QUIET)
    bob = open_writer(browser, base_url, "bob", QUIET)
    try:
        doc_id = ann.api("POST", "/api/documents", {"title": "Look only"})["id"]
        ann.api("POST", f"/api/documents/{doc_id}/members", {"username": "bob", "role": "viewer"})
        open_document(bob.page, doc_id)
        state = bob.page.evaluate("window.cowrite.state()")
        assert state["readOnly"] and not state["local"]
        assert not [name for name in databases(bob.page) if name.startswith("cowrite:")]
    finally:
        ann.close()
        bob.close()


def test_signing_out_deletes_the_accounts_local_copies(browser: Any, base_url: str) -> None:
    ann = open_writer(browser, base_url, "ann", QUIET)
    try:
        first = ann.api("POST", "/api/documents", {"title": "One"})["id"]
        second = ann.api("POST", "/api/documents", {"title": "Two"})["id"]
        page = ann.page
        for doc_id in (first, second):
            open_document(page, doc_id)
            page.locator(".cm-content").click()
            page.keyboard.type(f"Text of {doc_id}.")
            page.wait_for_function("window.cowrite.state().saved")
            assert page.evaluate("window.cowrite.storedLocally()")
        # another account's copy in the same browser, whose name merely starts alike, stays
        page.evaluate(
            """() => new Promise((resolve, reject) => {
                const request = indexedDB.open('cowrite:annie:elsewhere');
                request.onsuccess = () => { request.result.close(); resolve(); };
                request.onerror = () => reject(request.error);
            })"""
        )
        names = databases(page)
        assert {f"cowrite:ann:{first}", f"cowrite:ann:{second}", "cowrite:annie:elsewhere"} <= set(names)

        page.get_by_test_id("sign-out").click()
        page.wait_for_url("**/signin**")
        names = databases(page)
        assert not [name for name in names if name.startswith("cowrite:ann:")], names
        assert "cowrite:annie:elsewhere" in names
    finally:
        ann.close()
