"""`/v1/completions`, `/healthz` and `/` through Starlette's TestClient and a real uvicorn."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from streaming.engine import Engine
from streaming.loader import LoadedModel
from streaming.params import Status
from tests.accounts import account, sign_in_client
from tests.conftest import serve, wait_until

PROMPT = "It is a truth universally acknowledged, that a single man in possession of a good fortune"
pytestmark = pytest.mark.timeout(180)


def events(body: str) -> list[Any]:
    """The `data:` payloads of an SSE body, JSON-decoded except the final [DONE]."""
    out: list[Any] = []
    for block in body.split("\n\n"):
        if block.startswith("data: "):
            data = block.removeprefix("data: ")
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_healthz_names_model_device_dtype_and_queue(client: TestClient, loaded_model: LoadedModel) -> None:
    health = client.get("/healthz").json()
    assert health["model"] == loaded_model.name
    assert health["device"] == str(loaded_model.device)
    assert health["dtype"] == str(loaded_model.dtype).removeprefix("torch.")
    assert health["queue_depth"] == 0


def test_index_page_is_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "Cowrite" in page.text


def test_unstreamed_completion_is_openai_shaped(client: TestClient) -> None:
    response = client.post(
        "/v1/completions", json={"prompt": PROMPT, "max_tokens": 12, "temperature": 0, "n": 2, "seed": 1}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "text_completion"
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert body["choices"][0]["text"] and body["choices"][0]["finish_reason"] in ("length", "stop")
    assert body["choices"][0]["text"] == body["choices"][1]["text"], "greedy alternatives agree"
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0


def test_streamed_text_equals_unstreamed_text(client: TestClient) -> None:
    request = {"prompt": PROMPT, "max_tokens": 16, "temperature": 0}
    whole = client.post("/v1/completions", json=request).json()["choices"][0]["text"]
    with client.stream("POST", "/v1/completions", json={**request, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        received = events(response.read().decode())
    assert received[-1] == "[DONE]"
    chunks = received[:-1]
    assert len(chunks) > 2, "text arrives in several chunks"
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole
    assert chunks[-1]["choices"][0]["finish_reason"] in ("length", "stop")


def test_user_field_is_the_session_key_for_prefix_reuse(client: TestClient) -> None:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    first = {"prompt": PROMPT, "max_tokens": 4, "temperature": 0, "user": "alice"}
    client.post("/v1/completions", json=first)
    client.post("/v1/completions", json={**first, "prompt": PROMPT + " must be"})
    assert engine.recent[-1].reused > 10


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": PROMPT, "max_tokens": 0}, "max_tokens"),
        ({"prompt": PROMPT, "temperature": -1}, "temperature"),
        ({"prompt": PROMPT, "top_p": 1.5}, "top_p"),
        ({"prompt": PROMPT, "n": 5}, "n"),
        ({"prompt": PROMPT, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": ["one", "two"]}, "prompt"),
        ({"max_tokens": 4}, "prompt"),
        ({"prompt": PROMPT, "max_tokens": "lots"}, "max_tokens"),
    ],
)
def test_invalid_parameters_are_rejected_naming_the_field(
    client: TestClient, body: dict[str, Any], param: str
) -> None:
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and param in error["message"]


def test_a_body_that_is_not_json_is_rejected(client: TestClient) -> None:
    response = client.post(
        "/v1/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_full_queue_answers_503(app_settings: Settings, loaded_model: LoadedModel) -> None:
    tight = replace(app_settings, max_queue=0)
    with TestClient(create_app(tight, loaded_model)) as client:
        sign_in_client(client, "alice")
        response = client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 4})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["type"] == "server_busy"


@pytest.fixture
def live_server(app_settings: Settings, loaded_model: LoadedModel) -> Iterator[tuple[str, Any]]:
    app = create_app(app_settings, loaded_model)
    with serve(app) as url, httpx.Client(base_url=url) as http:
        yield url, app, account(http, "alice")


def test_a_streaming_client_that_disconnects_cancels_its_generation(live_server: Any) -> None:
    url, app, alice = live_server
    engine: Engine = app.state.engine
    body = {"prompt": PROMPT, "max_tokens": 500, "temperature": 0, "stream": True}
    with httpx.Client(base_url=url, timeout=30, headers=alice) as http:
        with http.stream("POST", "/v1/completions", json=body) as response:
            next(response.iter_lines())  # the first token has arrived
        # leaving the block closes the connection mid-generation
    assert_cancelled_mid_generation(url, engine)


def test_a_waiting_client_that_disconnects_cancels_its_generation(live_server: tuple[str, Any, Any]) -> None:
    url, app, alice = live_server
    engine: Engine = app.state.engine
    body = json.dumps({"prompt": PROMPT, "max_tokens": 500, "temperature": 0}).encode()
    port = int(url.rsplit(":", 1)[1])
    # a raw socket: an HTTP client library would block until the whole answer's headers arrive
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall(
            f"POST /v1/completions HTTP/1.1\r\nHost: {url.removeprefix('http://')}\r\n".encode()
            + f"Cookie: {alice['cookie']}\r\nOrigin: {alice['origin']}\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        wait_until(lambda: engine.steps >= 3, "the request is decoding")
    assert_cancelled_mid_generation(url, engine)


def assert_cancelled_mid_generation(url: str, engine: Engine) -> None:
    wait_until(lambda: bool(engine.recent), "the generation ended")
    job = engine.recent[-1]
    assert job.completion.status is Status.CANCELLED
    assert len(job.alts[0].tokens) < 500
    assert job.last_step <= job.ended_at_step
    health = httpx.get(f"{url}/healthz").json()
    assert health["active_requests"] == 0 and health["queue_depth"] == 0
