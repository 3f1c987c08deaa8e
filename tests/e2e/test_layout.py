"""A phone's width: the header's controls, the popovers and the editor all fit the screen."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, open_writer

pytestmark = pytest.mark.timeout(120)

PHONE = {"width": 390, "height": 800}
LONG_TITLE = "A rather long title for a document, far too long for the header of a phone"
# the editor's header: shown in line, or folded into the "More" menu on a narrow screen
EDITOR_HEADER = ["doc-title", "role-badge", "share-button", "account-button", "sign-out"]
MORE_MENU = ["ai-toggle", "auto-suggest", "history-button", "settings-button", "theme-toggle", "help-button"]


def assert_inside(page: Any, locator: Any, what: str) -> None:
    """The element is shown and its whole box lies inside the viewport."""
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box is not None, f"{what} has no box"
    view = page.viewport_size
    assert box["x"] >= 0 and box["y"] >= 0, f"{what} at {box} starts outside the viewport"
    assert box["x"] + box["width"] <= view["width"] + 0.5, f"{what} at {box} runs off the right edge"
    assert box["y"] + box["height"] <= view["height"] + 0.5, f"{what} at {box} runs off the bottom"


def assert_header_fits(page: Any) -> None:
    """Every control shown in the header lies inside the viewport, and nothing scrolls sideways."""
    controls = page.locator("header.topbar").locator("a, button, input, [data-testid=role-badge]")
    for index in range(controls.count()):
        control = controls.nth(index)
        if control.is_visible():
            name = control.get_attribute("data-testid") or control.get_attribute("class") or f"#{index}"
            assert_inside(page, control, f"header control {name}")
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


def test_a_phone_reaches_every_control_and_writes(browser: Any, base_url: str) -> None:
    ann = open_writer(browser, base_url, "margaret_longname", {"autoSuggest": False}, PHONE)
    bob = open_writer(browser, base_url, "bob", {"autoSuggest": False})
    try:
        page = ann.page
        ARTIFACTS.mkdir(exist_ok=True)

        # the list page
        page.goto("/")
        expect(page.get_by_test_id("account-button")).to_be_visible()
        expect(page.get_by_test_id("empty")).to_be_visible()
        assert_header_fits(page)
        for testid in ("theme-toggle", "account-button", "sign-out", "new-title", "create"):
            assert_inside(page, page.get_by_test_id(testid), testid)
        page.screenshot(path=str(ARTIFACTS / "narrow-list.png"))

        page.get_by_test_id("new-title").fill(LONG_TITLE)
        page.get_by_test_id("create").click()
        page.wait_for_url(re.compile(r"/d/[0-9a-f]+$"))
        doc_id = page.url.rsplit("/", 1)[-1]
        page.wait_for_function("window.cowrite && window.cowrite.state().synced")
        # someone else in the document puts a presence chip in the header
        ann.api("POST", f"/api/documents/{doc_id}/members", {"username": "bob", "role": "editor"})
        bob.page.goto(f"/d/{doc_id}")
        expect(page.get_by_test_id("peer")).to_have_count(1)

        # the editor's header: the controls in line fit, and the title ends in an ellipsis
        assert_header_fits(page)
        for testid in EDITOR_HEADER:
            assert_inside(page, page.get_by_test_id(testid), testid)
        title = page.get_by_test_id("doc-title")
        expect(title).to_have_value(LONG_TITLE)
        expect(title).to_have_css("text-overflow", "ellipsis")
        assert title.evaluate("input => input.scrollWidth > input.clientWidth"), "the long title is cut short"
        # icon-only buttons keep their names for assistive technology
        expect(page.get_by_role("button", name="Share")).to_be_visible()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        expect(page.get_by_role("button", name="Account: margaret_longname")).to_be_visible()

        # the rest is in the "More" menu
        more, menu = page.get_by_test_id("more-button"), page.get_by_test_id("more-menu")
        for testid in MORE_MENU:
            expect(page.get_by_test_id(testid)).to_be_hidden()
        more.click()
        expect(more).to_have_attribute("aria-expanded", "true")
        assert_inside(page, menu, "the More menu")
        for testid in MORE_MENU:
            assert_inside(page, page.get_by_test_id(testid), f"{testid} in the More menu")
        page.get_by_test_id("ai-toggle").click()  # a switch keeps the menu open
        expect(page.get_by_test_id("ai-toggle")).to_be_checked()
        expect(menu).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "narrow-more-menu.png"))

        # each of its panels opens inside the screen, closing the menu; Escape goes back to "More"
        for button, panel in (
            ("history-button", "history-panel"),
            ("settings-button", "settings-panel"),
            ("help-button", "help-panel"),
        ):
            if not menu.is_visible():
                more.click()
            page.get_by_test_id(button).click()
            expect(menu).to_be_hidden()
            assert_inside(page, page.get_by_test_id(panel), panel)
            page.keyboard.press("Escape")
            expect(page.get_by_test_id(panel)).to_be_hidden()
        expect(more).to_be_focused()

        # the share panel
        page.get_by_test_id("share-button").click()
        share = page.get_by_test_id("share-panel")
        expect(share.get_by_test_id("member")).to_have_count(2)
        assert_inside(page, share, "the share panel")
        for testid in (
            "invite-username",
            "invite-role",
            "invite-submit",
            "link-role",
            "link-expiry",
            "link-create",
        ):
            assert_inside(page, share.get_by_test_id(testid), testid)
        assert share.evaluate("panel => panel.scrollWidth <= panel.clientWidth"), (
            "the share panel scrolls sideways"
        )
        page.screenshot(path=str(ARTIFACTS / "narrow-share.png"))
        page.keyboard.press("Escape")
        expect(share).to_be_hidden()

        # the account panel
        page.get_by_test_id("account-button").click()
        account = page.get_by_test_id("password-panel")
        assert_inside(page, account, "the account panel")
        for testid in (
            "password-current",
            "password-new",
            "password-repeat",
            "password-cancel",
            "password-save",
        ):
            assert_inside(page, account.get_by_test_id(testid), testid)
        page.screenshot(path=str(ARTIFACTS / "narrow-account.png"))
        page.get_by_test_id("password-cancel").click()
        expect(account).to_be_hidden()

        # typing works
        page.locator(".cm-content").click()
        page.keyboard.type("Typed on a phone.")
        page.wait_for_function("window.cowrite.ytext().includes('Typed on a phone.')")
        expect(page.get_by_test_id("status-save")).to_have_attribute("data-state", "saved")
        assert_inside(page, page.get_by_test_id("status-save"), "the save status")
        page.screenshot(path=str(ARTIFACTS / "narrow-editor.png"))

        # dark, from the menu
        more.click()
        page.get_by_test_id("theme-toggle").click()
        expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        page.keyboard.press("Escape")
        expect(menu).to_be_hidden()
        assert_header_fits(page)
        page.screenshot(path=str(ARTIFACTS / "narrow-editor-dark.png"))

        # at the tests' usual width everything is in line again, without the menu
        page.set_viewport_size({"width": 1200, "height": 800})
        expect(more).to_be_hidden()
        for testid in EDITOR_HEADER + MORE_MENU:
            assert_inside(page, page.get_by_test_id(testid), f"{testid} at 1200 px")
    finally:
        ann.close()
        bob.close()
