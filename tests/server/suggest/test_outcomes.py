"""A steadier assistant on the suggestion socket: a suggestion that produced no text is not listed
in the history, and text the writer typed through is reported (and recorded) as "typed"."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketTestSession

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
