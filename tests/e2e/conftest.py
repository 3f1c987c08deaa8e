"""A real browser (Debian's Chromium through Playwright) against a real uvicorn on the real model."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from server.app import create_app
from server.settings import Settings
from streaming.loader import LoadedModel
from tests.conftest import ROOT, serve

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per module; Playwright's sync API holds an event loop only while it runs."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip(
            f"end-to-end tests need Chromium at {CHROMIUM}; `make test` installs it as root "
            "(apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def server_settings(settings: Settings) -> Settings:
    """The served app's settings; a test module overrides this fixture to try other limits."""
    return settings


@pytest.fixture
def app(server_settings: Settings, loaded_model: LoadedModel, tmp_path: Path) -> Starlette:
    """The served app; a test module may wrap it (add middleware) before `base_url` serves it."""
    return create_app(replace(server_settings, data_dir=tmp_path, database_url=None), loaded_model)


@pytest.fixture
def base_url(app: Starlette) -> Iterator[str]:
    with serve(app) as url:
        yield url


# greedy, short suggestions keep the tests quick and repeatable
GREEDY = {"maxTokens": 16, "temperature": 0, "n": 1}
PASSWORD = "correct horse battery staple"


@dataclass
class Writer:
    """One person: a browser context (its own cookies, so its own session) and a page in it."""

    username: str
    context: Any
    page: Any
    base_url: str

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the JSON API with this writer's session; the parsed answer, None for 204."""
        # context.request shares the context's cookies; the server wants its own Origin on changes
        answer = self.context.request.fetch(path, method=method, data=body, headers={"Origin": self.base_url})
        assert answer.ok, f"{method} {path}: {answer.status} {answer.text()}"
        return None if answer.status == 204 else answer.json()

    def close(self) -> None:
        self.context.close()


def open_writer(
    browser: Any,
    base_url: str,
    username: str | None,
    settings: dict[str, Any] | None = None,
    viewport: dict[str, int] | None = None,
    enforce_csp: bool = False,
) -> Writer:
    """A fresh context; with a username, that account is signed up (the first one is the admin).

    Playwright's `wait_for_function` evaluates its predicate with `eval`, which the server's
    Content-Security-Policy forbids, so the policy is bypassed unless `enforce_csp` (the test of
    the policy itself, tests/e2e/test_headers.py, waits without `eval`)."""
    context = browser.new_context(
        base_url=base_url, viewport=viewport or {"width": 1200, "height": 800}, bypass_csp=not enforce_csp
    )
    context.add_init_script(
        f"localStorage.setItem('cowrite.settings', {json.dumps(json.dumps(settings or GREEDY))})"
    )
    if username is not None:
        # the server refuses a state-changing request without its own Origin, as browsers send it
        answer = context.request.post(
            "/api/auth/signup",
            data={"username": username, "password": PASSWORD},
            headers={"Origin": base_url},
        )
        assert answer.status == 201, answer.text()
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    return Writer(username or "", context, opened, base_url)


@pytest.fixture
def page(browser: Any, base_url: str) -> Iterator[Any]:
    """A page signed in as "writer", the server's first (and only) account."""
    writer = open_writer(browser, base_url, "writer")
    yield writer.page
    writer.close()
