"""Notes for suggestions: stored through the document API (editors and up, bounded, no control
characters), read by the suggestion socket before the text without a read per request, and kept in
the engine's prefix cache from one request to the next (the real model)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketTestSession

from harness.accounts import account
from server.suggest import socket as suggestion_socket
from server.suggest.policy import (
    ALTERNATIVES_TEMPERATURE,
    NOTES_HEADER,
    NOTES_SEPARATOR,
    prompt_with_notes,
    to_request,
)
from server.suggest.protocol import Suggest
from server.suggest.socket import SuggestionSocket
from storage import notes as storage_notes
from storage.models import NOTES_MAX
from streaming.loader import LoadedModel
from streaming.params import Completion, GenerationRequest

BEFORE = "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be"
ELSEWHERE = "The village of Longbourn lay a mile from Meryton, where the sisters walked most mornings to"
NOTES = "Audience: a hiring manager at a bank.\nTone: plain, warm, no jargon. Facts: ten years in audit."
pytestmark = pytest.mark.timeout(120)


def suggest_frame(request_id: str, before: str = BEFORE, **settings: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "type": "suggest",
        "id": request_id,
        "before": before,
        "after": "",
        "settings": {"max_tokens": 4, "temperature": 0, "n": 1, **settings},
    }


def until_done(ws: WebSocketTestSession, request_id: str) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = ws.receive_json()
        if frame.get("id") == request_id and frame["type"] in ("done", "error"):
            return frame


@pytest.fixture
def document_id(client: TestClient) -> str:
    document = client.post("/api/documents", json={"title": "Cover letter"}).json()
    client.patch(f"/api/documents/{document['id']}", json={"text": BEFORE})
    return str(document["id"])


@pytest.fixture
def prompts(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The prompt of every request the engine is given (the real engine, spied on)."""
    engine = client.app.state.services.engine  # type: ignore[attr-defined]
    submit = engine.submit
    seen: list[str] = []

    async def spy(request: GenerationRequest) -> Any:
        seen.append(request.prompt)
        return await submit(request)

    monkeypatch.setattr(engine, "submit", spy)
    return seen


def test_an_editor_sets_notes_and_every_reader_sees_them(client: TestClient, document_id: str) -> None:
    path = f"/api/documents/{document_id}"
    changed = client.patch(path, json={"notes": f"  {NOTES}\r\n"})
    assert changed.status_code == 200 and changed.json()["notes"] == NOTES  # ends trimmed, \r\n unified
    viewer = account(client, "vera")
    client.post(f"{path}/members", json={"username": "vera", "role": "viewer"})
    assert client.get(path, headers=viewer).json()["notes"] == NOTES
    assert client.patch(path, json={"notes": ""}).json()["notes"] == ""


@pytest.mark.parametrize("role", ["viewer", "commenter"])
def test_readers_cannot_set_notes(client: TestClient, document_id: str, role: str) -> None:
    path = f"/api/documents/{document_id}"
    client.patch(path, json={"notes": NOTES})
    reader = account(client, f"{role}1")
    assert client.post(f"{path}/members", json={"username": f"{role}1", "role": role}).status_code == 201
    refused = client.patch(path, json={"notes": "Tone: rude."}, headers=reader)
    assert refused.status_code == 403
    assert client.get(path).json()["notes"] == NOTES


@pytest.mark.parametrize(
    ("notes", "message"),
    [
        ("x" * (NOTES_MAX + 1), "notes"),
        ("Tone: calm\x00", "control characters"),
        ("Tone: \x1b[31mred", "control characters"),
        (17, "notes"),
    ],
)
def test_bad_notes_are_refused_and_change_nothing(
    client: TestClient, document_id: str, notes: Any, message: str
) -> None:
    path = f"/api/documents/{document_id}"
    client.patch(path, json={"notes": NOTES})
    before = client.get(path).json()
    refused = client.patch(path, json={"notes": notes, "title": "Renamed", "text": "Gone"})
    assert refused.status_code == 400 and message in refused.json()["error"]["message"]
    after = client.get(path).json()
    assert (after["notes"], after["title"], after["text"]) == (NOTES, before["title"], before["text"])


def test_notes_of_the_longest_length_with_line_breaks_and_tabs_are_kept(
    client: TestClient, document_id: str
) -> None:
    notes = ("Tone:\tplain.\n" * 200)[: NOTES_MAX - 1] + "."
    answer = client.patch(f"/api/documents/{document_id}", json={"notes": notes})
    assert answer.status_code == 200 and answer.json()["notes"] == notes


def test_the_engine_reads_the_notes_before_the_text(
    client: TestClient, document_id: str, prompts: list[str]
) -> None:
    client.patch(f"/api/documents/{document_id}", json={"notes": NOTES})
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()  # hello
        ws.send_json(suggest_frame("s1"))
        assert until_done(ws, "s1")["type"] == "done"
    assert prompts == [f"{NOTES_HEADER}{NOTES}{NOTES_SEPARATOR}{BEFORE}"]


def test_without_notes_the_prompt_is_the_text_alone(
    client: TestClient, document_id: str, prompts: list[str]
) -> None:
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        ws.send_json(suggest_frame("s1"))
        until_done(ws, "s1")
    assert prompts == [BEFORE]


def test_notes_are_read_once_per_interval_not_per_request(
    client: TestClient, document_id: str, prompts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    read = storage_notes.notes_of

    def counting(session: Any, doc: str) -> str:
        reads.append(doc)
        return read(session, doc)

    monkeypatch.setattr(storage_notes, "notes_of", counting)
    monkeypatch.setattr(suggestion_socket, "NOTES_FRESH_S", 3600.0)
    client.patch(f"/api/documents/{document_id}", json={"notes": NOTES})
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        for k in range(4):
            ws.send_json(suggest_frame(f"s{k}"))
            until_done(ws, f"s{k}")
        assert reads == [document_id]
        # changed notes reach an open socket once its copy is older than NOTES_FRESH_S
        client.patch(f"/api/documents/{document_id}", json={"notes": "Tone: brisk."})
        monkeypatch.setattr(suggestion_socket, "NOTES_FRESH_S", 0.0)
        ws.send_json(suggest_frame("later"))
        until_done(ws, "later")
    assert all(p.startswith(f"{NOTES_HEADER}{NOTES}{NOTES_SEPARATOR}") for p in prompts[:4])
    assert prompts[-1] == f"{NOTES_HEADER}Tone: brisk.{NOTES_SEPARATOR}{BEFORE}"


def test_alternatives_are_sampled_even_when_the_writer_chose_greedy() -> None:
    one = to_request(Suggest.model_validate(suggest_frame("a")), "s")
    many = to_request(Suggest.model_validate(suggest_frame("b", n=3)), "s")
    assert one is not None and many is not None
    assert (one.temperature, one.top_k) == (0.0, 0)
    assert many.temperature == ALTERNATIVES_TEMPERATURE
    assert many.top_k > 0 and many.top_p < 1.0
    warm = to_request(Suggest.model_validate(suggest_frame("c", n=2, temperature=1.2)), "s")
    assert warm is not None and warm.temperature == 1.2


def test_the_real_engine_reuses_the_notes_prefix_across_requests(
    client: TestClient, document_id: str, loaded_model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer jumps elsewhere in the text: only the notes are shared, and they are not prefilled
    again (the engine's per-session prefix cache holds them)."""
    completions: list[Completion] = []
    finish = SuggestionSocket._finish

    async def spy(self: SuggestionSocket, message: Any, completion: Completion, *rest: Any) -> None:
        completions.append(completion)
        await finish(self, message, completion, *rest)

    monkeypatch.setattr(SuggestionSocket, "_finish", spy)
    notes = NOTES * 6  # about 150 tokens
    client.patch(f"/api/documents/{document_id}", json={"notes": notes})
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        ws.send_json(suggest_frame("first"))
        until_done(ws, "first")
        ws.send_json(suggest_frame("second", before=ELSEWHERE))
        until_done(ws, "second")
    block = prompt_with_notes(notes, "")
    block_tokens = len(loaded_model.tokenizer.encode(block, add_special_tokens=False))
    first, second = completions
    assert block_tokens > 100
    assert first.reused_tokens < block_tokens
    # everything of the notes block but, at most, its last token (which may merge with the text)
    assert second.reused_tokens >= block_tokens - 1
    assert second.reused_tokens < second.prompt_tokens
