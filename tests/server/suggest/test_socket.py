"""The suggestion socket on the real engine: streaming, supersede, cancel, feedback, bad frames."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect
from websockets.sync.client import ClientConnection, connect

from harness.accounts import account
from server.app import create_app
from server.errors import WS_4404_DOCUMENT_NOT_FOUND
from server.settings import Settings
from server.suggest.protocol import MAX_FRAME_BYTES
from streaming.engine import Engine
from streaming.loader import LoadedModel
from tests.conftest import serve, wait_until
from tests.streaming.doubles import RecordingTokenizer

BEFORE = "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be"
pytestmark = pytest.mark.timeout(120)
# how a suggestion that was not stopped may end
ENDED = ("length", "finished", "stop", "sentence", "unsure")


def suggest(request_id: str, before: str = BEFORE, **settings: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "type": "suggest",
        "id": request_id,
        "before": before,
        "after": "",
        "settings": {"max_tokens": 12, "temperature": 0, "n": 1, **settings},
    }


@pytest.fixture
def document_id(client: TestClient) -> str:
    document = client.post("/api/documents", json={"title": "Draft"}).json()
    client.patch(f"/api/documents/{document['id']}", json={"text": BEFORE})
    return str(document["id"])


def until_done(ws: WebSocketTestSession, request_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Frames for `request_id` up to and including its `done`."""
    frames = []
    while True:
        frame = ws.receive_json()
        if frame.get("id") != request_id:
            continue
        if frame["type"] == "done":
            return frames, frame
        frames.append(frame)


def history(client: TestClient, document_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = client.get(f"/api/documents/{document_id}/suggestions").json()["suggestions"]
    return rows


def test_suggestion_streams_and_is_recorded(client: TestClient, document_id: str) -> None:
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["model"] and hello["device"]
        ws.send_json(suggest("s1"))
        deltas, done = until_done(ws, "s1")

    assert len(deltas) >= 2 and all(d["type"] == "delta" and d["index"] == 0 for d in deltas)
    text = "".join(d["text"] for d in deltas)
    assert done["reason"] in ENDED
    assert done["alternatives"][0]["text"] == text and done["ttft_ms"] > 0
    [row] = history(client, document_id)
    assert row["id"] == done["suggestion"] and row["outcome"] == "shown" and row["alternatives"] == [text]
    assert row["context_chars"] == len(BEFORE) and row["params"]["max_tokens"] == 12


def test_a_new_suggest_supersedes_the_old_one(client: TestClient, document_id: str) -> None:
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        ws.send_json(suggest("old", max_tokens=100))
        first = ws.receive_json()
        assert first["type"] == "delta" and first["id"] == "old"
        ws.send_json(suggest("new", before=BEFORE + " in"))
        _, old_done = until_done(ws, "old")
        _, new_done = until_done(ws, "new")
    assert old_done["reason"] == "superseded"
    assert new_done["reason"] in ENDED
    outcomes = {row["id"]: row["outcome"] for row in history(client, document_id)}
    assert outcomes[old_done["suggestion"]] == "superseded"


@pytest.mark.parametrize(("tab_a", "tab_b", "superseded"), [("one", "two", False), ("same", "same", True)])
def test_two_tabs_of_one_writer_do_not_supersede_each_other(
    client: TestClient, document_id: str, tab_a: str, tab_b: str, superseded: bool
) -> None:
    """Each tab is its own engine session; only the same tab's next request supersedes."""
    with (
        client.websocket_connect(f"/ws/suggest/{document_id}?tab={tab_a}") as first,
        client.websocket_connect(f"/ws/suggest/{document_id}?tab={tab_b}") as second,
    ):
        first.receive_json()
        second.receive_json()
        first.send_json(suggest("a", max_tokens=40, temperature=0))
        assert first.receive_json()["type"] == "delta"
        second.send_json(suggest("b", before=BEFORE + " in", max_tokens=4))
        _, a_done = until_done(first, "a")
        _, b_done = until_done(second, "b")
    assert (a_done["reason"] == "superseded") is superseded
    assert b_done["reason"] in ENDED


def test_cancel_ends_the_generation(client: TestClient, document_id: str) -> None:
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        ws.send_json(suggest("c1", max_tokens=100))
        assert ws.receive_json()["type"] == "delta"
        ws.send_json({"v": 1, "type": "cancel", "id": "c1"})
        _, done = until_done(ws, "c1")
    assert done["reason"] == "cancelled"
    assert len(done["alternatives"][0]["text"]) < 400
    assert history(client, document_id)[0]["outcome"] == "cancelled"


def test_feedback_is_recorded(client: TestClient, document_id: str) -> None:
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        ws.send_json(suggest("f1"))
        _, done = until_done(ws, "f1")
        ws.send_json({"v": 1, "type": "feedback", "id": "f1", "outcome": "partial", "accepted_chars": 4})
        ws.send_json(suggest("f2"))
        until_done(ws, "f2")
        ws.send_json({"v": 1, "type": "feedback", "id": "f2", "outcome": "accepted"})
        ws.send_json({"v": 1, "type": "feedback", "id": "never-sent", "outcome": "accepted"})
        error = ws.receive_json()
    assert error["type"] == "error" and error["code"] == "unknown_suggestion" and error["id"] == "never-sent"
    rows = {row["id"]: row for row in history(client, document_id)}
    assert (rows[done["suggestion"]]["outcome"], rows[done["suggestion"]]["accepted_chars"]) == ("partial", 4)
    assert sorted(row["outcome"] for row in rows.values()) == ["accepted", "partial"]


def test_leading_space_is_not_doubled_and_a_word_is_continued(client: TestClient, document_id: str) -> None:
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        ws.send_json(suggest("space", before=BEFORE + " "))
        _, after_space = until_done(ws, "space")
        ws.send_json(suggest("word", before="It is a truth universally acknowl"))
        _, mid_word = until_done(ws, "word")
    assert not after_space["alternatives"][0]["text"].startswith(" ")
    assert mid_word["alternatives"][0]["text"].startswith("edged")


def test_a_line_that_goes_on_after_the_cursor_stops_the_suggestion_at_its_end(
    client: TestClient, document_id: str
) -> None:
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        message = suggest("mid", max_tokens=60)
        message["after"] = " of a wife.\nMore."
        ws.send_json(message)
        _, done = until_done(ws, "mid")
    assert "\n" not in done["alternatives"][0]["text"]


def test_alternatives_stream_with_their_index(client: TestClient, document_id: str) -> None:
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        ws.send_json(suggest("alts", temperature=1.0, n=3))
        deltas, done = until_done(ws, "alts")
    assert {d["index"] for d in deltas} <= {0, 1, 2} and len(done["alternatives"]) == 3
    for alternative in done["alternatives"]:
        streamed = "".join(d["text"] for d in deltas if d["index"] == alternative["index"])
        assert streamed == alternative["text"]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        (json.dumps({"v": 2, "type": "suggest", "id": "x"}), "unsupported_version"),
        (json.dumps({"v": 1, "type": "explode", "id": "x"}), "unknown_type"),
        (json.dumps({"v": 1, "type": "suggest", "id": "x"}), "bad_message"),
        (json.dumps({**suggest("x"), "settings": {"n": 9}}), "bad_message"),
        (json.dumps({**suggest("x"), "before": 7}), "bad_message"),
        (json.dumps({**suggest("x"), "surprise": True}), "bad_message"),
        (json.dumps({"v": 1, "type": "feedback", "id": "x", "outcome": "loved"}), "bad_message"),
        (json.dumps({"v": 1, "type": "cancel", "id": ""}), "bad_message"),
    ],
)
def test_bad_frames_get_an_error_and_the_socket_lives_on(
    client: TestClient, document_id: str, frame: str, code: str
) -> None:
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        ws.send_text(frame)
        error = ws.receive_json()
        assert error["type"] == "error" and error["code"] == code and error["message"]
        ws.send_json(suggest("after-error", max_tokens=4))
        _, done = until_done(ws, "after-error")
    assert done["reason"] in ENDED
    assert client.get(f"/api/documents/{document_id}").json()["text"] == BEFORE


def test_an_oversized_frame_closes_with_1009(client: TestClient, document_id: str) -> None:
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        ws.send_text(json.dumps(suggest("big", before="x" * MAX_FRAME_BYTES)))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1009


def test_a_socket_to_a_missing_document_is_closed(client: TestClient) -> None:
    with client.websocket_connect("/ws/suggest/nope") as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == WS_4404_DOCUMENT_NOT_FOUND


def test_a_cursor_after_many_spaces_still_gets_a_suggestion(client: TestClient, document_id: str) -> None:
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        ws.send_json(suggest("spaces", before=BEFORE + " " * 200 + "and"))
        _, done = until_done(ws, "spaces")
        ws.send_json(suggest("after", max_tokens=4))
        _, after = until_done(ws, "after")
    assert done["reason"] in ENDED and after["reason"] in ENDED


@contextlib.contextmanager
def live(
    settings: Settings, loaded_model: LoadedModel, **changes: Any
) -> Iterator[tuple[str, Any, dict[str, str], str]]:
    """A real uvicorn; yields its URL, the app, alice's headers and the id of a document of hers."""
    app = create_app(replace(settings, **changes), loaded_model)
    with serve(app) as url, httpx.Client(base_url=url) as http:
        alice = account(http, "alice")
        document = http.post("/api/documents", json={"title": "Draft"}, headers=alice).json()["id"]
        yield url, app, alice, str(document)


@contextlib.contextmanager
def socket_to(url: str, who: dict[str, str], document_id: str, tab: str = "") -> Iterator[ClientConnection]:
    """A suggestion socket, past its `hello`."""
    address = f"{url.replace('http', 'ws', 1)}/ws/suggest/{document_id}?tab={tab}"
    with connect(address, additional_headers=who) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "hello"
        yield ws


def frames_until_done(ws: ClientConnection, request_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    frames = []
    while True:
        frame = json.loads(ws.recv(timeout=60))
        if frame.get("id") != request_id:
            continue
        if frame["type"] == "done":
            return frames, frame
        frames.append(frame)


def first_delta(ws: ClientConnection, request_id: str) -> None:
    while True:
        frame = json.loads(ws.recv(timeout=60))
        if frame.get("id") == request_id:
            assert frame["type"] == "delta", frame
            return


@pytest.mark.parametrize("how", ["close", "drop"])
def test_a_client_leaving_mid_stream_is_not_an_application_error(
    app_settings: Settings, loaded_model: LoadedModel, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    with live(app_settings, loaded_model) as (url, app, alice, document_id):
        uvicorn_error = logging.getLogger("uvicorn.error")
        uvicorn_error.addHandler(caplog.handler)
        try:
            for attempt in range(6):
                with socket_to(url, alice, document_id, tab=f"t{attempt}") as ws:
                    ws.send(json.dumps(suggest(f"s{attempt}", max_tokens=128, temperature=1.0, n=4)))
                    first_delta(ws, f"s{attempt}")
                    if how == "drop":  # the connection just ends, with no closing handshake
                        ws.socket.shutdown(socket.SHUT_RDWR)
                # leaving the block closes the socket while frames are still coming
                wait_until(
                    lambda: app.state.services.engine.stats().open_requests == 0, "its generation to end"
                )
            sockets = app.state.services.sockets
            wait_until(lambda: not sockets._by_user, "the server to notice every socket closed")
        finally:
            uvicorn_error.removeHandler(caplog.handler)
    # the test's own client may log that the stream it cut short ended: that is the test, not the server
    server_side = [r for r in caplog.records if not r.name.startswith("websockets.client")]
    errors = [r.getMessage() for r in server_side if r.levelno >= logging.ERROR]
    assert not errors, errors


def test_a_closed_socket_frees_its_cached_context(app_settings: Settings, loaded_model: LoadedModel) -> None:
    with live(app_settings, loaded_model) as (url, app, alice, document_id):
        engine: Engine = app.state.services.engine
        with socket_to(url, alice, document_id, tab="one") as ws:
            ws.send(json.dumps(suggest("s1")))
            frames_until_done(ws, "s1")
            wait_until(lambda: engine.stats().sessions == 1, "the suggestion's context to be cached")
            assert engine.stats().kv_bytes > 0
        wait_until(lambda: engine.stats().sessions == 0, "the closed socket's context to be freed", 20)
        assert engine.stats().kv_bytes == 0


def test_past_the_users_share_of_the_model_a_suggest_ends_busy(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    with live(app_settings, loaded_model, requests_per_user=1) as (url, app, alice, document_id):
        with (
            socket_to(url, alice, document_id, tab="one") as one,
            socket_to(url, alice, document_id, "two") as two,
        ):
            one.send(json.dumps(suggest("long", max_tokens=128)))
            first_delta(one, "long")
            two.send(json.dumps(suggest("refused")))
            _, refused = frames_until_done(two, "refused")
            one.send(json.dumps({"v": 1, "type": "cancel", "id": "long"}))
            frames_until_done(one, "long")
            two.send(json.dumps(suggest("later", max_tokens=4)))
            _, later = frames_until_done(two, "later")
    assert refused["reason"] == "busy" and refused["alternatives"][0]["reason"] == "busy"
    assert later["reason"] in ENDED


def test_an_extreme_temperature_gets_a_suggestion_and_the_model_serves_on(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    with live(app_settings, loaded_model) as (url, app, alice, document_id):
        with socket_to(url, alice, document_id) as ws:
            ws.send(json.dumps(suggest("tiny", temperature=1e-45)))
            _, tiny = frames_until_done(ws, "tiny")
            ws.send(json.dumps(suggest("normal", before=BEFORE + " in", temperature=0.7)))
            _, normal = frames_until_done(ws, "normal")
    assert tiny["reason"] in ENDED and tiny["alternatives"][0]["text"]
    assert normal["reason"] in ENDED


def test_suggestions_are_tokenized_off_the_event_loop(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    with live(app_settings, loaded_model) as (url, app, alice, document_id):
        engine: Engine = app.state.services.engine
        tokenizer = RecordingTokenizer(engine.tokenizer)
        engine.tokenizer = tokenizer
        with socket_to(url, alice, document_id) as ws:
            ws.send(json.dumps({"v": 1, "type": "prime", "before": BEFORE}))
            ws.send(json.dumps(suggest("s1", before=BEFORE + " in")))
            frames_until_done(ws, "s1")
    assert len(tokenizer.threads) == 2
    assert all(name.startswith("cowrite-tokenizer") for name in tokenizer.threads), tokenizer.threads
