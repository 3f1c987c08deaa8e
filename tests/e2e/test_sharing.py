"""Sharing in real browsers: the share panel, a viewer's read-only page, share links, strangers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_until
from tests.e2e.conftest import ARTIFACTS, Writer, open_writer

pytestmark = pytest.mark.timeout(180)
SignUp = Callable[[str], Writer]

# y-protocols: a sync message (0) of type "update" (2) carries edits
SYNC_UPDATE = bytes([0, 2])


@pytest.fixture
def ann(browser: Any, base_url: str) -> Iterator[Writer]:
    """The owner, with automatic suggestions on; her ghost text must never reach the others."""
    writer = open_writer(browser, base_url, "ann", {"maxTokens": 8, "temperature": 0, "n": 1})
    yield writer
    writer.close()


@pytest.fixture
def person(browser: Any, base_url: str) -> Iterator[SignUp]:
    """Signs up one more person (with automatic suggestions off) and opens a browser for them."""
    opened: list[Writer] = []

    def sign_up(name: str) -> Writer:
        opened.append(open_writer(browser, base_url, name, {"autoSuggest": False}))
        return opened[-1]

    yield sign_up
    for writer in opened:
        writer.close()


def open_document(writer: Writer, doc_id: str) -> Any:
    page = writer.page
    page.goto(f"/d/{doc_id}")
    page.wait_for_function("window.cowrite && window.cowrite.state().synced")
    return page


def ytext(page: Any) -> str:
    value: str = page.evaluate("window.cowrite.ytext()")
    return value


def open_share_panel(page: Any) -> Any:
    page.get_by_test_id("share-button").click()
    panel = page.get_by_test_id("share-panel")
    panel.get_by_test_id("member").first.wait_for()
    return panel


def test_a_viewer_watches_live_but_cannot_change_anything(ann: Writer, person: SignUp) -> None:
    bob = person("bob")
    doc_id = ann.api("POST", "/api/documents", {"title": "Read me"})["id"]
    owner = open_document(ann, doc_id)
    owner.locator(".cm-content").click()
    owner.keyboard.type("Ann's first line.")
    owner.keyboard.press("Escape")  # no ghost text of hers is part of the document
    owner.wait_for_function("window.cowrite.state().saved")
    before = ytext(owner)

    panel = open_share_panel(owner)
    expect(owner.get_by_test_id("role-badge")).to_have_text("Owner")
    panel.get_by_test_id("invite-username").fill("bob")
    panel.get_by_test_id("invite-role").select_option("viewer")
    panel.get_by_test_id("invite-submit").click()
    panel.locator("[data-testid=member][data-username=bob][data-role=viewer]").wait_for()
    expect(panel.get_by_test_id("share-error")).to_be_hidden()

    sockets: list[str] = []
    sent_updates: list[bytes] = []

    def keep_update(payload: str | bytes) -> None:
        if isinstance(payload, bytes) and payload.startswith(SYNC_UPDATE):
            sent_updates.append(payload)

    def watch(socket: Any) -> None:
        sockets.append(socket.url)
        if "/ws/doc/" in socket.url:
            socket.on("framesent", keep_update)

    bob.page.on("websocket", watch)
    viewer = open_document(bob, doc_id)
    expect(viewer.get_by_test_id("role-badge")).to_have_text("View only")
    assert viewer.evaluate("window.cowrite.state()")["role"] == "viewer"
    assert viewer.evaluate("window.cowrite.state().readOnly") is True
    expect(viewer.locator(".cm-content")).to_have_attribute("contenteditable", "false")
    expect(viewer.get_by_test_id("doc-title")).to_have_attribute("readonly", "")
    expect(viewer.get_by_test_id("auto-suggest")).to_be_hidden()

    viewer.locator(".cm-content").click()
    viewer.keyboard.type("Bob was here. ")
    viewer.keyboard.press("Control+z")
    viewer.get_by_test_id("doc-title").press_sequentially("x")
    assert ytext(viewer) == before

    # the owner writes on: the viewer sees it live, and her cursor and name
    owner.locator(".cm-content").click()
    owner.keyboard.press("Control+End")
    owner.keyboard.type(" Second line.")
    owner.keyboard.press("Escape")
    viewer.wait_for_function("window.cowrite.ytext().endsWith(' Second line.')")
    viewer.wait_for_function("window.cowrite.state().peers.some(p => p.name === 'ann')")
    viewer.locator(".cm-ySelectionInfo").filter(has_text="ann").wait_for(state="attached")
    owner.wait_for_function("window.cowrite.state().saved")

    after = before + " Second line."
    assert ytext(owner) == ytext(viewer) == after
    # the text column follows the live document within about a second
    wait_until(lambda: ann.api("GET", f"/api/documents/{doc_id}")["text"] == after, "the text to be stored")
    assert ann.api("GET", f"/api/documents/{doc_id}")["title"] == "Read me"
    assert not sent_updates, "a viewer sends no edits"
    assert not [url for url in sockets if "/ws/suggest/" in url], "a viewer asks for no suggestions"
    assert viewer.evaluate("window.cowrite.state().ghost") is None
    assert viewer.get_by_test_id("ghost").count() == 0

    # a viewer sees who has access, and cannot change it
    panel = open_share_panel(viewer)
    expect(panel.get_by_test_id("member")).to_have_count(2)
    expect(panel.locator("[data-testid=member][data-username=ann]")).to_have_attribute("data-role", "owner")
    expect(panel.get_by_test_id("invite-username")).to_be_hidden()
    expect(panel.get_by_test_id("link-create")).to_be_hidden()
    assert panel.get_by_test_id("member-role").count() == 0


def test_a_share_link_lets_someone_join_until_it_is_revoked(ann: Writer, person: SignUp) -> None:
    ann.context.grant_permissions(["clipboard-read", "clipboard-write"])
    person("bob")
    doc_id = ann.api("POST", "/api/documents", {"title": "Open house"})["id"]
    ann.api("POST", f"/api/documents/{doc_id}/members", {"username": "bob", "role": "viewer"})
    owner = open_document(ann, doc_id)
    owner.locator(".cm-content").click()
    owner.keyboard.type("Welcome, whoever has the link.")
    owner.keyboard.press("Escape")

    panel = open_share_panel(owner)
    panel.get_by_test_id("link-role").select_option("editor")
    panel.get_by_test_id("link-expiry").select_option("7")
    panel.get_by_test_id("link-create").click()
    url_field = panel.get_by_test_id("link-url")
    expect(url_field).to_have_value(re.compile(rf"^{re.escape(ann.base_url)}/s/\S+$"))
    link = url_field.input_value()
    expect(panel.get_by_test_id("new-link")).to_contain_text("shown only once")
    panel.get_by_test_id("link-copy").click()
    expect(panel.get_by_test_id("link-copy")).to_have_text("Copied")
    assert owner.evaluate("navigator.clipboard.readText()") == link
    row = panel.get_by_test_id("link-row")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-state", "active")
    expect(row).to_contain_text("Can edit")
    expect(row).to_contain_text("expires in 7 days")
    ARTIFACTS.mkdir(exist_ok=True)
    owner.screenshot(path=str(ARTIFACTS / "share-panel.png"))

    cat = person("cat")
    cat.page.goto(link)
    cat.page.get_by_test_id("link-page").wait_for()
    cat.page.get_by_test_id("join").click()
    cat.page.wait_for_url(f"{ann.base_url}/d/{doc_id}")
    joined = open_document(cat, doc_id)
    expect(joined.get_by_test_id("role-badge")).to_have_text("Can edit")
    joined.locator(".cm-content").click()
    joined.keyboard.press("Control+End")
    joined.keyboard.type(" Cat joined.")
    owner.wait_for_function("window.cowrite.ytext().endsWith(' Cat joined.')")

    # the owner's panel lists her as an editor now, and takes the link back
    owner.get_by_test_id("share-button").click()  # close
    panel = open_share_panel(owner)
    panel.locator("[data-testid=member][data-username=cat][data-role=editor]").wait_for()
    panel.get_by_test_id("link-revoke").click()
    expect(panel.get_by_test_id("link-row")).to_have_attribute("data-state", "revoked")
    expect(panel.get_by_test_id("link-revoke")).to_have_count(0)

    eve = person("eve")
    eve.page.goto(link)
    eve.page.get_by_test_id("link-invalid").wait_for()
    expect(eve.page.locator("h1")).to_contain_text("no longer works")


def test_the_owner_changes_roles_and_removes_people_while_they_write(ann: Writer, person: SignUp) -> None:
    bob = person("bob")
    doc_id = ann.api("POST", "/api/documents", {"title": "Team"})["id"]
    owner = open_document(ann, doc_id)
    panel = open_share_panel(owner)
    error = panel.get_by_test_id("share-error")

    panel.get_by_test_id("invite-username").fill("nobody")
    panel.get_by_test_id("invite-submit").click()
    expect(error).to_have_text("No account is called “nobody”.")

    panel.get_by_test_id("invite-username").fill("Bob")
    panel.get_by_test_id("invite-submit").click()
    bob_row = panel.locator("[data-testid=member][data-username=bob]")
    expect(bob_row).to_have_attribute("data-role", "editor")
    expect(error).to_be_hidden()

    writer = open_document(bob, doc_id)
    writer.wait_for_function("window.cowrite.state().connected")
    expect(writer.get_by_test_id("role-badge")).to_have_text("Can edit")
    writer.locator(".cm-content").click()
    writer.keyboard.type("Bob's draft.")
    owner.wait_for_function('window.cowrite.ytext() === "Bob\'s draft."')

    # made a viewer while the page is open: it turns read-only without a reload
    bob_row.get_by_test_id("member-role").select_option("viewer")
    expect(bob_row).to_have_attribute("data-role", "viewer")
    writer.wait_for_function("window.cowrite.state().readOnly")
    expect(writer.get_by_test_id("role-badge")).to_have_text("View only")
    expect(writer.get_by_test_id("access-notice")).to_contain_text("you can only view this document now")
    expect(writer.locator(".cm-content")).to_have_attribute("contenteditable", "false")
    writer.keyboard.type(" More.")
    assert writer.evaluate("window.cowrite.ytext()") == "Bob's draft."

    # removed: the page says so, and the document is gone from his list
    bob_row.get_by_test_id("member-remove").click()
    expect(bob_row).to_have_count(0)
    expect(writer.get_by_test_id("access-notice")).to_contain_text("no longer have access")
    assert [m["username"] for m in ann.api("GET", f"/api/documents/{doc_id}/members")["members"]] == ["ann"]
    assert bob.api("GET", "/api/documents")["documents"] == []


def test_the_list_marks_shared_documents_and_leaving_drops_one(ann: Writer, person: SignUp) -> None:
    bob = person("bob")
    own = bob.api("POST", "/api/documents", {"title": "Bob's own"})["id"]
    shared = ann.api("POST", "/api/documents", {"title": "From Ann"})["id"]
    ann.api("POST", f"/api/documents/{shared}/members", {"username": "bob", "role": "viewer"})

    page = bob.page
    page.goto("/")
    shared_row = page.locator(f"[data-testid=doc-row][data-id='{shared}']")
    own_row = page.locator(f"[data-testid=doc-row][data-id='{own}']")
    expect(shared_row.get_by_test_id("role")).to_have_text("Shared by ann · view only")
    expect(shared_row.get_by_test_id("rename")).to_have_count(0)
    expect(shared_row.get_by_test_id("delete")).to_have_count(0)
    expect(own_row.get_by_test_id("role")).to_have_count(0)
    expect(own_row.get_by_test_id("delete")).to_have_count(1)

    shared_row.get_by_test_id("leave").click()
    page.get_by_test_id("confirm-leave").click()
    expect(shared_row).to_have_count(0)
    assert [d["id"] for d in bob.api("GET", "/api/documents")["documents"]] == [own]


def test_someone_not_invited_finds_no_document(ann: Writer, person: SignUp) -> None:
    doc_id = ann.api("POST", "/api/documents", {"title": "Private"})["id"]
    eve = person("eve")
    answer = eve.page.goto(f"/d/{doc_id}")
    assert answer is not None and answer.status == 404
    eve.page.get_by_test_id("not-found").wait_for()
    assert "Private" not in eve.page.content()
    assert eve.context.request.get(f"/api/documents/{doc_id}").status == 404
