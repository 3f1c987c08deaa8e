"""A real browser (Debian's Chromium through Playwright) against a real uvicorn on the real model."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

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
def base_url(settings: Settings, loaded_model: LoadedModel, tmp_path: Path) -> Iterator[str]:
    app = create_app(replace(settings, data_dir=tmp_path, database_url=None), loaded_model)
    with serve(app) as url:
        yield url


@pytest.fixture
def page(browser: Any, base_url: str) -> Iterator[Any]:
    context = browser.new_context(base_url=base_url, viewport={"width": 1200, "height": 800})
    # greedy, short suggestions keep the tests quick and repeatable
    context.add_init_script(
        "localStorage.setItem('cowrite.settings', JSON.stringify({maxTokens: 16, temperature: 0, n: 1}))"
    )
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    yield opened
    context.close()
