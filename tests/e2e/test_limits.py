"""The page under the server's limits: closed sign-up, idle sockets, too many open sockets."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from playwright.sync_api import expect

from server.settings import Settings
from tests.e2e.conftest import Writer, open_writer

pytestmark = pytest.mark.timeout(120)
IDLE_S = 2


@pytest.fixture
def server_settings(settings: Settings) -> Settings:
    return replace(settings, signup="closed", idle_timeout_s=IDLE_S, sockets_per_user=2)


def open_document(writer: Writer, doc_id: str) -> Any:
    writer.page.goto(f"/d/{doc_id}")
    writer.page.wait_for_function("window.cowrite && window.cowrite.state().synced")
    return writer.page


def test_closed_sign_up_tells_visitors_to_ask_an_admin(browser: Any, base_url: str) -> None:
    # the first account is always allowed: it is the admin who adds the others
    admin = open_writer(browser, base_url, "admin")
    admin.close()
    visitor = open_writer(browser, base_url, None)
    try:
        page = visitor.page
        page.goto("/signup")
        expect(page.get_by_test_id("auth-heading")).to_have_text("Sign-up is closed")
        expect(page.get_by_test_id("auth-note")).to_contain_text("Ask an admin")
        expect(page.get_by_test_id("auth-form")).to_be_hidden()
        page.get_by_test_id("auth-switch").get_by_role("link", name="Sign in").click()
        expect(page.get_by_test_id("auth-heading")).to_have_text("Sign in")
        expect(page.get_by_test_id("auth-switch")).to_have_text(re.compile(r"^No account\? Ask an admin"))
    finally:
        visitor.close()


def test_an_idle_suggestion_socket_comes_back_when_the_writer_types(browser: Any, base_url: str) -> None:
    ann = open_writer(browser, base_url, "ann")
    try:
        doc_id = ann.api("POST", "/api/documents", {"title": "Idle"})["id"]
        page = open_document(ann, doc_id)
        page.wait_for_function("window.cowrite.state().connected")
        # the server closes it after IDLE_S quiet seconds, and the page does not reopen it by itself
        page.wait_for_function("!window.cowrite.state().connected", timeout=(IDLE_S + 10) * 1000)
        expect(page.get_by_test_id("access-notice")).to_be_hidden()
        page.locator(".cm-content").click()
        page.keyboard.type("It is a truth universally acknowledged, that a single man must be ", delay=10)
        page.wait_for_function("(window.cowrite.state().ghost || '').length > 0")
    finally:
        ann.close()


def test_too_many_open_sockets_stop_the_page_with_a_reason(browser: Any, base_url: str) -> None:
    ann = open_writer(browser, base_url, "ann", {"autoSuggest": False})
    try:
        doc_id = ann.api("POST", "/api/documents", {"title": "Busy"})["id"]
        first = open_document(ann, doc_id)
        first.wait_for_function("window.cowrite.state().connected")  # two sockets: the limit
        second = ann.context.new_page()
        second.goto(f"/d/{doc_id}")
        expect(second.get_by_test_id("load-error")).to_contain_text("Too many Cowrite tabs are open")
    finally:
        ann.close()
