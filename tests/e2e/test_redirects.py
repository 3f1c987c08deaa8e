"""After signing in, the page goes on to `?next=` only when that is a path of this site."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.e2e.conftest import PASSWORD, Writer, open_writer

pytestmark = pytest.mark.timeout(180)

# each is read by the browser's URL parser as another host (tabs and newlines are dropped,
# backslashes are slashes, leading spaces are trimmed, "https:x" is absolute against an http page)
OFF_SITE = [
    "/\t/evil.example/x",
    "/\n/evil.example/x",
    "/\r/evil.example/x",
    "/\t\\evil.example/x",
    "//evil.example/x",
    "/\\evil.example/x",
    "\\\\evil.example/x",
    "\\/evil.example/x",
    "https:evil.example/x",
    "https://evil.example/x",
    "  //evil.example/x",
    "\t//evil.example/x",
    "//evil.example@127.0.0.1/x",
    "javascript:location='https://evil.example/x'",
]


def signin_url(next_path: str) -> str:
    return "/signin?next=" + quote(next_path, safe="")


@pytest.fixture
def guarded(browser: Any, base_url: str) -> Iterator[tuple[Writer, list[str]]]:
    """A signed-in writer whose browser answers every request to another site itself, and records it."""
    signed_in = open_writer(browser, base_url, "writer")
    off_site: list[str] = []

    def answer(route: Any) -> None:
        off_site.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>not Cowrite</h1>")

    own = re.escape(base_url)
    signed_in.context.route(re.compile(rf"^(?!{own}(/|$)).*"), answer)
    yield signed_in, off_site
    signed_in.close()


def landed_on(page: Any) -> str:
    """Wait until the page has left /signin; where it went."""
    page.wait_for_url(lambda url: urlsplit(url).path != "/signin")
    page.wait_for_load_state()
    url: str = page.url
    return url


@pytest.mark.parametrize("payload", OFF_SITE)
def test_a_signed_in_visitor_is_never_sent_off_site(guarded: tuple[Writer, list[str]], payload: str) -> None:
    writer, off_site = guarded
    page = writer.page
    page.goto(signin_url(payload))
    url = landed_on(page)
    assert url.startswith(writer.base_url + "/"), f"{payload!r} sent the page to {url}"
    assert off_site == []
    assert page.evaluate("location.origin") == writer.base_url


def test_signing_in_goes_on_only_to_this_sites_paths(guarded: tuple[Writer, list[str]]) -> None:
    writer, off_site = guarded
    page = writer.page
    doc_id = writer.api("POST", "/api/documents", {"title": "Back here"})["id"]
    writer.api("POST", "/api/auth/signout")
    for payload, expected in [
        ("/\t/evil.example/x", "/"),
        ("/\\evil.example/x", "/"),
        ("https:evil.example/x", "/"),
        # a path of this site, even one the parser has to tidy, is where the writer comes back to
        (f"/d/{doc_id}", f"/d/{doc_id}"),
        (f"/x/..//d/{doc_id}", f"/d/{doc_id}"),
    ]:
        page.goto(signin_url(payload))
        page.get_by_test_id("auth-heading").filter(has_text="Sign in").wait_for()
        page.get_by_test_id("auth-username").fill("writer")
        page.get_by_test_id("auth-password").fill(PASSWORD)
        page.get_by_test_id("auth-submit").click()
        url = landed_on(page)
        assert url == writer.base_url + expected, f"{payload!r} sent the page to {url}"
        assert off_site == []
        writer.api("POST", "/api/auth/signout")
