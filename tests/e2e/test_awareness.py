"""What others put in awareness reaches this page's DOM only as the page allows: a colour that is not
`#rgb` / `#rrggbb` (CSS smuggled into y-codemirror's style attributes) becomes the default colour."""

from __future__ import annotations

from typing import Any

import pytest

from harness.yclient import YClient
from tests.e2e.conftest import open_writer
from tests.e2e.faults import LoopThread, Tracker

pytestmark = pytest.mark.timeout(120)

DEFAULT_COLOR = "#6b6f76"
# y-codemirror's anchor and head JSON for the start and the end of the text
START = {"type": None, "tname": "content", "item": None, "assoc": -1}
END = {"type": None, "tname": "content", "item": None, "assoc": 0}


async def hostile_collaborator(url: str, cookie: str, origin: str, color: str) -> YClient:
    """A pycrdt client in the document whose awareness selects all the text in `color`."""
    client = YClient(url, headers={"Cookie": cookie, "Origin": origin})
    await client.__aenter__()
    await client.synced.wait()
    state = {
        "user": {"name": "mallory", "color": color, "colorLight": color},
        "cursor": {"anchor": START, "head": END},
    }
    await client.set_awareness(state, clock=1)
    return client


def test_a_hostile_awareness_colour_never_reaches_a_style_or_the_network(browser: Any, base_url: str) -> None:
    ann = open_writer(browser, base_url, "ann", {"autoSuggest": False})
    mallory = open_writer(browser, base_url, "mallory")
    requests: list[str] = []
    try:
        doc_id = ann.api("POST", "/api/documents", {"title": "Watched"})["id"]
        # a viewer may send awareness (their cursor) like anyone else
        ann.api("POST", f"/api/documents/{doc_id}/members", {"username": "mallory", "role": "viewer"})
        page = ann.page
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"/d/{doc_id}")
        page.wait_for_function("window.cowrite && window.cowrite.state().synced")
        page.locator(".cm-content").click()
        page.keyboard.type("Everything here is selected by someone else.")
        page.wait_for_function("window.cowrite.state().saved")

        cookie = "; ".join(f"{c['name']}={c['value']}" for c in mallory.context.cookies())
        socket_url = base_url.replace("http://", "ws://") + f"/ws/doc/{doc_id}"
        with Tracker() as tracker, LoopThread() as loop:
            track = f"http://127.0.0.1:{tracker.port}/track"
            hostile = f"red;background:url({track});position:fixed;inset:0"
            client = loop.run(hostile_collaborator(socket_url, cookie, base_url, hostile))
            try:
                page.wait_for_function("window.cowrite.state().peers.some((p) => p.name === 'mallory')")
                caret = page.locator(".cm-ySelectionCaret")
                caret.wait_for()
                assert "mallory" in (page.locator(".cm-ySelectionInfo").text_content() or "")
                # the selection is drawn too (in the colour the page makes, never the one sent)
                page.locator(".cm-ySelection").first.wait_for()

                styles: list[str] = page.evaluate(
                    "[...document.querySelectorAll('[style]')].map((e) => e.getAttribute('style'))"
                )
                assert not [s for s in styles if "url(" in s or "position" in s or str(tracker.port) in s], (
                    styles
                )
                assert DEFAULT_COLOR in (caret.get_attribute("style") or "")
                peer = page.evaluate("window.cowrite.state().peers.find((p) => p.name === 'mallory')")
                assert peer["color"] == DEFAULT_COLOR
                # two frames after drawing: a background image would have been asked for by now
                page.evaluate(
                    "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
                )
                assert tracker.hits == []
                assert not [url for url in requests if str(tracker.port) in url]
            finally:
                loop.run(client.__aexit__(None, None, None))
    finally:
        ann.close()
        mallory.close()
