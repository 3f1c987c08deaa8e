"""A steadier assistant on the suggestion socket: a suggestion that produced no text is not listed
in the history, and text the writer typed through is reported (and recorded) as "typed"."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketTestSession

from harness.accounts import sign_in_client
from server.app import create_app
from server.settings import Settings
from storage.models import Suggestion
from streaming.loader import LoadedModel

# greedy, the model goes on with a new list item, and a line that goes on stops at the line break:
# no text at all
LIST = "1. Eggs\n2. Milk\n3. Bread"
BEFORE = "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be"
pytestmark = pytest.mark.timeout(120)


def ask(ws: WebSocketTestSession, request_id: str, before: str, after: str = "") -> dict[str, Any]:
    settings = {"max_tokens": 8, "temperature": 0, "n": 1}
    ws.send_json(
        {"v": 1, "type": "suggest", "id": request_id, "before": before, "after": after, "settings": settings}
    )
    while True:
        frame: dict[str, Any] = ws.receive_json()
        if frame.get("id") == request_id and frame["type"] == "done":
            return frame


def test_an_empty_suggestion_is_not_listed_and_typed_through_is_typed(client: TestClient) -> None:
    document_id = client.post("/api/documents", json={"title": "Lists"}).json()["id"]
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        empty = ask(ws, "empty", LIST, " and jam")
        shown = ask(ws, "shown", BEFORE)
        ws.send_json({"v": 1, "type": "feedback", "id": "shown", "outcome": "typed"})
        ask(ws, "barrier", BEFORE + " a")  # feedback is recorded before the next frame is read
    assert [a["text"] for a in empty["alternatives"]] == [""]
    assert shown["alternatives"][0]["text"]
    rows = client.get(f"/api/documents/{document_id}/suggestions").json()["suggestions"]
    outcomes = {row["id"]: (row["outcome"], row["accepted_chars"]) for row in rows}
    assert empty["suggestion"] not in outcomes
    assert outcomes[shown["suggestion"]] == ("typed", 0)


def test_tab_while_the_ghost_streams_stays_accepted(client: TestClient) -> None:
    """The editor sends `cancel` then `feedback` when Tab takes a suggestion still streaming: the
    cancelled generation's end, recorded after, must not overwrite the acceptance."""
    document_id = client.post("/api/documents", json={"title": "Race"}).json()["id"]
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        settings = {"max_tokens": 64, "temperature": 0, "n": 1}
        ws.send_json({"v": 1, "type": "suggest", "id": "tab", "before": BEFORE, "settings": settings})
        while (frame := ws.receive_json())["type"] != "delta":
            pass
        ws.send_json({"v": 1, "type": "cancel", "id": "tab"})
        accepted = len(frame["text"])
        ws.send_json(
            {"v": 1, "type": "feedback", "id": "tab", "outcome": "accepted", "accepted_chars": accepted}
        )
        while (done := ws.receive_json())["type"] != "done":
            pass
        ask(ws, "barrier", BEFORE + " a")
    rows = client.get(f"/api/documents/{document_id}/suggestions").json()["suggestions"]
    row = next(r for r in rows if r["id"] == done["suggestion"])
    assert (row["outcome"], row["accepted_chars"]) == ("accepted", accepted)


def test_an_empty_suggestion_has_no_timings(client: TestClient) -> None:
    document_id = client.post("/api/documents", json={"title": "Lists"}).json()["id"]
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        empty = ask(ws, "empty", LIST, " and jam")
    assert [a["text"] for a in empty["alternatives"]] == [""]
    assert empty["ttft_ms"] is None
    store = client.app.state.services.store  # type: ignore[attr-defined]
    row = store.call(lambda session: session.get(Suggestion, empty["suggestion"]))
    assert (row.outcome, row.ttft_ms, row.total_ms) == ("empty", None, None)


@pytest.mark.parametrize(
    "before",
    [
        "The notes are at https://example.org/fie",
        "See [the notes](https://exam",
        "Run `make te",
        "```\nfor line in lines:\n    pri",
    ],
)
def test_no_suggestion_inside_a_url_or_code(client: TestClient, before: str) -> None:
    document_id = client.post("/api/documents", json={"title": "Links"}).json()["id"]
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        done = ask(ws, "quiet", before)
        prose = ask(ws, "prose", BEFORE)
    assert (done["suggestion"], done["alternatives"]) == (None, [])
    assert prose["suggestion"] is not None  # the same socket does suggest in prose


def test_a_suggestion_ends_with_its_sentence_and_says_so(client: TestClient) -> None:
    document_id = client.post("/api/documents", json={"title": "Span"}).json()["id"]
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        settings = {"max_tokens": 48, "temperature": 0, "n": 1}
        ws.send_json({"v": 1, "type": "suggest", "id": "s", "before": BEFORE, "settings": settings})
        while (done := ws.receive_json())["type"] != "done":
            pass
    assert done["reason"] == "sentence"
    assert done["alternatives"][0]["text"].rstrip().endswith(".")
    assert done["shortened"] is False


def test_the_default_policy_shows_only_what_the_model_is_sure_of(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    """With the shipped COWRITE_SUGGEST_RUN_CONFIDENCE: an unsure continuation shows nothing and is
    not timed; a sure one is shown, up to where the model stops being sure."""
    defaults = replace(app_settings, suggest_run_confidence=Settings().suggest_run_confidence)
    assert defaults.suggest_run_confidence > 0
    with TestClient(create_app(defaults, loaded_model)) as client:
        sign_in_client(client, "alice")
        document_id = client.post("/api/documents", json={"title": "Sure"}).json()["id"]
        with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
            ws.receive_json()
            unsure = ask(ws, "unsure", "The weather today")
            sure = ask(ws, "sure", "Once upon a time, there")
    assert unsure["reason"] == "unsure" and unsure["alternatives"][0]["text"] == ""
    assert unsure["ttft_ms"] is None
    assert sure["alternatives"][0]["text"].startswith(" was")
    assert sure["reason"] in ("unsure", "sentence", "length")
