"""Every response carries the headers that confine the pages to this site: a Content Security
Policy, X-Frame-Options, nosniff and a Referrer-Policy. Through a real uvicorn; tests/e2e checks
that every page still works under the policy in Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.accounts import account
from server.app import create_app
from server.settings import Settings
from streaming.loader import LoadedModel
from tests.conftest import serve

REQUIRED_POLICY = [
    "default-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
]


@pytest.fixture
def live(app_settings: Settings, loaded_model: LoadedModel) -> Iterator[str]:
    with serve(create_app(app_settings, loaded_model)) as url:
        yield url


def test_every_kind_of_response_carries_the_security_headers(live: str) -> None:
    with httpx.Client(base_url=live) as http:
        alice = account(http, "alice")
        document = http.post("/api/documents", json={"title": "Headers"}, headers=alice).json()
        link = http.post(f"/api/documents/{document['id']}/links", json={}, headers=alice).json()
        answers = {
            "sign-in page": http.get("/signin"),
            "redirect to sign-in": http.get("/"),
            "document list": http.get("/", headers=alice),
            "editor": http.get(f"/d/{document['id']}", headers=alice),
            "not-found page": http.get("/d/missing", headers=alice),
            "share link page": http.get(link["url"], headers=alice),
            "static file": http.get("/static/app.css"),
            "missing static file": http.get("/static/nothing.js"),
            "JSON API": http.get("/api/documents", headers=alice),
            "401": http.get("/api/documents"),
            "403 csrf": http.post("/api/documents", json={}, headers={"cookie": alice["cookie"]}),
            "400 bad host": http.get("/signin", headers={"host": "evil.example"}),
            "health": http.get("/healthz"),
        }
    for what, answer in answers.items():
        policy = answer.headers.get("content-security-policy", "")
        directives = {part.strip() for part in policy.split(";")}
        assert set(REQUIRED_POLICY) <= directives, what
        assert answer.headers.get("x-frame-options") == "DENY", what
        assert answer.headers.get("x-content-type-options") == "nosniff", what
        assert answer.headers.get("referrer-policy") == "same-origin", what
    statuses = {what: answer.status_code for what, answer in answers.items()}
    assert statuses == {
        "sign-in page": 200,
        "redirect to sign-in": 303,
        "document list": 200,
        "editor": 200,
        "not-found page": 404,
        "share link page": 200,
        "static file": 200,
        "missing static file": 404,
        "JSON API": 200,
        "401": 401,
        "403 csrf": 403,
        "400 bad host": 400,
        "health": 200,
    }


def test_the_pages_have_no_inline_scripts() -> None:
    """`script-src 'self'` runs only files: an inline script would silently not run."""
    from server.pages import NOT_FOUND_PAGE, STATIC

    pages = [NOT_FOUND_PAGE, *(page.read_text() for page in STATIC.glob("*.html"))]
    assert len(pages) == 4
    for page in pages:
        assert "<script>" not in page and " on" + "load=" not in page
