"""Accounts in a real browser: the first visit, signing up, in and out, and the errors on the way."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORD, Writer, open_writer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def visitor(browser: Any, base_url: str) -> Iterator[Writer]:
    """A browser without a session."""
    writer = open_writer(browser, base_url, None)
    yield writer
    writer.close()


def sign_in(page: Any, username: str, password: str) -> None:
    page.get_by_test_id("auth-username").fill(username)
    page.get_by_test_id("auth-password").fill(password)
    with page.expect_response(re.compile(r"/api/auth/sign(in|up)$")):
        page.get_by_test_id("auth-submit").click()


def test_the_first_visit_creates_the_admin_account_then_signs_out_and_in(visitor: Writer) -> None:
    page, base_url = visitor.page, visitor.base_url
    page.goto("/")
    page.wait_for_url(f"{base_url}/signup?next=/")
    heading = page.get_by_test_id("auth-heading")
    heading.filter(has_text="Create the first account").wait_for()
    assert "administrator" in page.get_by_test_id("auth-note").inner_text()
    assert page.get_by_test_id("auth-switch").is_hidden(), "nobody to sign in as yet"

    # the server lowercases usernames; the page says so by showing the stored one
    sign_in(page, "Ada", PASSWORD)
    page.wait_for_url(f"{base_url}/")
    page.get_by_test_id("empty").wait_for()
    expect(page.get_by_test_id("account-name")).to_have_text("ada")  # filled once the page asks who

    page.get_by_test_id("sign-out").click()
    page.wait_for_url(f"{base_url}/signin")
    heading.filter(has_text="Sign in").wait_for()
    assert page.context.request.get("/api/auth/status").json()["user"] is None
    # the server redirects, or (should the browser reuse its copy of the page) the page's API call
    page.goto("/")
    page.wait_for_url(re.compile(rf"^{re.escape(base_url)}/signin(\?next=/)?$"))

    sign_in(page, "ada", "not the password")
    expect(page.get_by_test_id("auth-error")).to_have_text("Wrong username or password.")
    sign_in(page, "ada", PASSWORD)
    page.wait_for_url(f"{base_url}/")
    expect(page.get_by_test_id("account-name")).to_have_text("ada")  # filled once the page asks who


def test_sign_in_returns_to_the_page_asked_for(browser: Any, base_url: str) -> None:
    owner = open_writer(browser, base_url, "owner")
    created = owner.api("POST", "/api/documents", {"title": "Deep link"})
    owner.api("POST", "/api/auth/signout")
    try:
        owner.page.goto(f"/d/{created['id']}")
        owner.page.wait_for_url(f"{base_url}/signin?next=/d/{created['id']}")
        sign_in(owner.page, "owner", PASSWORD)
        owner.page.wait_for_url(f"{base_url}/d/{created['id']}")
        owner.page.wait_for_function("window.cowrite && window.cowrite.state().synced")
        assert owner.page.get_by_test_id("doc-title").input_value() == "Deep link"
        assert owner.page.get_by_test_id("account-name").inner_text() == "owner"
    finally:
        owner.close()


def test_sign_up_errors_are_explained(browser: Any, base_url: str, visitor: Writer) -> None:
    first = open_writer(browser, base_url, "taken")
    first.close()
    page = visitor.page
    page.goto("/signup")
    page.get_by_test_id("auth-heading").filter(has_text="Create an account").wait_for()
    error = page.get_by_test_id("auth-error")

    # the page checks what it can before asking
    page.get_by_test_id("auth-username").fill("x")
    page.get_by_test_id("auth-password").fill(PASSWORD)
    page.get_by_test_id("auth-submit").click()
    expect(error).to_contain_text("2–32 characters")
    page.get_by_test_id("auth-username").fill("newcomer")
    page.get_by_test_id("auth-password").fill("short")
    page.get_by_test_id("auth-submit").click()
    expect(error).to_have_text("Passwords need at least 8 characters.")

    sign_in(page, "taken", PASSWORD)
    expect(error).to_contain_text("“taken” is taken")
    page.get_by_test_id("auth-switch").get_by_role("link", name="Sign in").click()
    page.wait_for_url(f"{visitor.base_url}/signin")


def test_too_many_wrong_passwords_say_how_long_to_wait(browser: Any, base_url: str, visitor: Writer) -> None:
    open_writer(browser, base_url, "target").close()
    page = visitor.page
    page.goto("/signin")
    error = page.get_by_test_id("auth-error")
    for _ in range(10):
        sign_in(page, "target", "wrong password")
        error.wait_for()  # each attempt clears the last answer first
        if "Too many attempts" in error.inner_text():
            break
        assert error.inner_text() == "Wrong username or password."
    expect(error).to_have_text(re.compile(r"^Too many attempts, try again in \d+ s\.$"))
    expect(page.get_by_test_id("auth-submit")).to_be_disabled()


def test_changing_the_password_from_the_header(browser: Any, base_url: str) -> None:
    new_password = "a brand new passphrase"
    writer = open_writer(browser, base_url, "mover")
    # another device of the same account, signed in before the change
    laptop = open_writer(browser, base_url, None)
    try:
        answer = laptop.context.request.post(
            "/api/auth/signin", data={"username": "mover", "password": PASSWORD}, headers={"Origin": base_url}
        )
        assert answer.ok, answer.text()
        page = writer.page
        page.goto("/")
        page.get_by_test_id("empty").wait_for()
        button, panel = page.get_by_test_id("account-button"), page.get_by_test_id("password-panel")
        current, new = page.get_by_test_id("password-current"), page.get_by_test_id("password-new")
        repeat = page.get_by_test_id("password-repeat")
        error, done = page.get_by_test_id("password-error"), page.get_by_test_id("password-done")
        expect(current).to_have_attribute("autocomplete", "current-password")
        expect(new).to_have_attribute("autocomplete", "new-password")
        expect(repeat).to_have_attribute("autocomplete", "new-password")

        # the username opens the panel, Escape closes it and gives the focus back
        button.click()
        expect(panel).to_be_visible()
        expect(button).to_have_attribute("aria-expanded", "true")
        expect(current).to_be_focused()
        page.keyboard.press("Escape")
        expect(panel).to_be_hidden()
        expect(button).to_be_focused()

        # the page checks what it can before asking; Enter submits
        button.click()
        current.fill("not the password")
        new.fill("short")
        repeat.fill("short")
        repeat.press("Enter")
        expect(error).to_have_text("The new password needs at least 8 characters.")
        expect(new).to_be_focused()
        new.fill(new_password)
        repeat.fill(new_password + "!")
        repeat.press("Enter")
        expect(error).to_have_text("The repeated password does not match the new one.")

        # a wrong current password is the server's answer, shown in the panel
        repeat.fill(new_password)
        with page.expect_response(re.compile(r"/api/auth/password$")) as refused:
            page.get_by_test_id("password-save").click()
        assert refused.value.status == 403
        expect(error).to_have_text("The current password is wrong.")
        expect(current).to_be_focused()
        expect(panel).to_be_visible()
        expect(done).to_be_hidden()

        current.fill(PASSWORD)
        with page.expect_response(re.compile(r"/api/auth/password$")) as changed:
            current.press("Enter")
        assert changed.value.status == 204
        expect(panel).to_be_hidden()
        expect(done).to_have_text("Password changed. Other devices were signed out.")
        # this browser stays signed in; the other device does not
        assert laptop.context.request.get("/api/auth/status").json()["user"] is None
        page.reload()
        page.get_by_test_id("empty").wait_for()
        assert page.get_by_test_id("account-name").inner_text() == "mover"
        # a reopened panel starts empty
        button.click()
        expect(current).to_have_value("")
        expect(error).to_be_hidden()
        page.get_by_test_id("password-cancel").click()
        expect(panel).to_be_hidden()

        page.get_by_test_id("sign-out").click()
        page.wait_for_url(f"{base_url}/signin")
        page.get_by_test_id("auth-heading").filter(has_text="Sign in").wait_for()
        sign_in(page, "mover", PASSWORD)
        expect(page.get_by_test_id("auth-error")).to_have_text("Wrong username or password.")
        sign_in(page, "mover", new_password)
        page.wait_for_url(f"{base_url}/")
        page.get_by_test_id("empty").wait_for()
        assert page.get_by_test_id("account-name").inner_text() == "mover"
    finally:
        laptop.close()
        writer.close()
