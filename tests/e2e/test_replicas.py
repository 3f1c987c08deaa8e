"""Two people in one document in real Chromium pages, each on a different replica (two real
uvicorns sharing PostgreSQL and Redis): text, cursors and names cross between the replicas."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.settings import Settings
from streaming.loader import LoadedModel
from tests.conftest import serve
from tests.e2e.conftest import ARTIFACTS, Writer, open_writer

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def replicas(
    settings: Settings, loaded_model: LoadedModel, tmp_path: Path, postgres_url: str, redis_url: str
) -> Iterator[tuple[str, str]]:
    shared = replace(
        settings,
        database_url=postgres_url,
        redis_url=redis_url,
        secret_key="one cookie key for both replicas",
    )
    app_a = create_app(replace(shared, data_dir=tmp_path / "a"), loaded_model)
    app_b = create_app(replace(shared, data_dir=tmp_path / "b"), loaded_model)
    with serve(app_a) as a, serve(app_b) as b:
        yield a, b


@pytest.fixture
def pair(browser: Any, replicas: tuple[str, str]) -> Iterator[tuple[Writer, Writer]]:
    a, b = replicas
    viewport = {"width": 1100, "height": 700}
    ann = open_writer(browser, a, "ann", {"autoSuggest": False}, viewport)
    bob = open_writer(browser, b, "bob", {"autoSuggest": False}, viewport)  # signed up through B
    created = ann.api("POST", "/api/documents", {"title": "Across"})
    ann.api("POST", f"/api/documents/{created['id']}/members", {"username": "bob", "role": "editor"})
    for writer in (ann, bob):
        writer.page.goto(f"/d/{created['id']}")
        writer.page.wait_for_function("window.cowrite && window.cowrite.state().synced")
    yield ann, bob
    ann.close()
    bob.close()


def test_pages_on_two_replicas_edit_one_document(pair: tuple[Writer, Writer]) -> None:
    ann, bob = pair
    bob.page.locator(".cm-content").click()
    bob.page.keyboard.type("Bob writes on replica B. ")
    bob.page.wait_for_function("window.cowrite.state().saved")
    ann.page.wait_for_function("window.cowrite.ytext().includes('Bob writes on replica B.')")
    # presence crosses too: Ann sees Bob's name and caret while he is in the text
    ann.page.wait_for_function("window.cowrite.state().peers.some(p => p.name === 'bob')")
    ann.page.locator(".cm-ySelectionCaret").first.wait_for()
    assert "bob" in ann.page.locator(".cm-ySelectionInfo").first.text_content()
    ARTIFACTS.mkdir(exist_ok=True)
    ann.page.screenshot(path=str(ARTIFACTS / "replicas-ann-on-a.png"))

    ann.page.locator(".cm-content").click()
    ann.page.keyboard.press("End")
    ann.page.keyboard.type("Ann answers from A.")
    ann.page.wait_for_function("window.cowrite.state().saved")
    bob.page.wait_for_function("window.cowrite.ytext().includes('Ann answers from A.')")
    assert ann.page.evaluate("window.cowrite.ytext()") == bob.page.evaluate("window.cowrite.ytext()")
    bob.page.wait_for_function("window.cowrite.state().peers.some(p => p.name === 'ann')")

    # what both typed is stored: a fresh page on either replica shows it
    bob.page.reload()
    bob.page.wait_for_function("window.cowrite && window.cowrite.state().synced")
    stored = bob.page.evaluate("window.cowrite.ytext()")
    assert "Bob writes on replica B." in stored and "Ann answers from A." in stored
