"""`/v1/completions`, `/healthz` and `/` through Starlette's TestClient and a real uvicorn."""

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
from starlette.testclient import TestClient

from harness.accounts import account, sign_in_client
from server.app import create_app
from server.settings import Settings
from streaming.engine import Engine
from streaming.loader import LoadedModel
from streaming.params import Status
from tests.conftest import serve, wait_until
from tests.streaming.doubles import PHASES, STOP, RecordingTokenizer, inject

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
    engine: Engine = client.app.state.services.engine  # type: ignore[attr-defined]
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
    engine: Engine = app.state.services.engine
    body = {"prompt": PROMPT, "max_tokens": 500, "temperature": 0, "stream": True}
    with httpx.Client(base_url=url, timeout=30, headers=alice) as http:
        with http.stream("POST", "/v1/completions", json=body) as response:
            next(response.iter_lines())  # the first token has arrived
        # leaving the block closes the connection mid-generation
    assert_cancelled_mid_generation(url, engine)


def test_a_waiting_client_that_disconnects_cancels_its_generation(live_server: tuple[str, Any, Any]) -> None:
    url, app, alice = live_server
    engine: Engine = app.state.services.engine
    body = json.dumps({"prompt": PROMPT, "max_tokens": 500, "temperature": 0}).encode()
    port = int(url.rsplit(":", 1)[1])
    warm_up_steps = engine.steps
    # a raw socket: an HTTP client library would block until the whole answer's headers arrive
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall(
            f"POST /v1/completions HTTP/1.1\r\nHost: {url.removeprefix('http://')}\r\n".encode()
            + f"Cookie: {alice['cookie']}\r\nOrigin: {alice['origin']}\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        wait_until(lambda: engine.steps >= warm_up_steps + 3, "the request is decoding")
    assert_cancelled_mid_generation(url, engine)


def assert_cancelled_mid_generation(url: str, engine: Engine) -> None:
    wait_until(lambda: bool(engine.recent), "the generation ended")
    job = engine.recent[-1]
    assert job.completion.status is Status.CANCELLED
    assert len(job.alts[0].tokens) < 500
    assert job.last_step <= job.ended_at_step
    health = httpx.get(f"{url}/healthz").json()
    assert health["active_requests"] == 0 and health["queue_depth"] == 0


@contextlib.contextmanager
def running(settings: Settings, loaded_model: LoadedModel, **changes: Any) -> Iterator[tuple[str, Any]]:
    """A real uvicorn serving an app with these setting changes; yields its URL and app."""
    app = create_app(replace(settings, **changes), loaded_model)
    with serve(app) as url:
        yield url, app


def post(url: str, who: dict[str, str], body: dict[str, Any], timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{url}/v1/completions", json=body, headers=who, timeout=timeout)


def test_the_model_is_warm_before_healthz_first_answers(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    with running(app_settings, loaded_model) as (url, app):
        health = httpx.get(f"{url}/healthz").json()
        engine: Engine = app.state.services.engine
    assert health["warm"] is True and health["steps"] >= 2, "the warm-up ran before the app took requests"
    assert health["sessions"] == 0 and health["kv_bytes"] == 0
    assert not engine.recent


@pytest.mark.parametrize(
    "hostile",
    [{"temperature": 1e-45}, {"top_p": 1e-50}, {"temperature": 1e-45, "top_p": 1e-50, "top_k": 1}],
)
def test_extreme_sampling_values_get_an_answer_and_the_model_serves_on(
    live_server: tuple[str, Any, Any], hostile: dict[str, Any]
) -> None:
    url, _, alice = live_server
    extreme = post(url, alice, {"prompt": PROMPT, "max_tokens": 8, **hostile}, timeout=30)
    assert extreme.status_code == 200 and extreme.json()["choices"][0]["text"]
    normal = post(url, alice, {"prompt": PROMPT, "max_tokens": 8, "temperature": 0.8}, timeout=30)
    assert normal.status_code == 200 and normal.json()["choices"][0]["text"]
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"


@pytest.mark.parametrize("phase", PHASES)
def test_a_fault_in_any_phase_of_a_step_fails_only_that_request(
    live_server: tuple[str, Any, Any], monkeypatch: pytest.MonkeyPatch, phase: str
) -> None:
    url, app, alice = live_server
    message = inject(app.state.services.engine, monkeypatch, phase, "openai:alice:target")
    faulty = {"prompt": PROMPT, "max_tokens": 12, "temperature": 0, "user": "target", "stop": STOP}
    running = {"prompt": PROMPT + " must be", "max_tokens": 60, "temperature": 0, "stream": True}
    with httpx.Client(base_url=url, headers=alice, timeout=60) as http:
        with http.stream("POST", "/v1/completions", json=running) as stream:
            lines = stream.iter_lines()
            next(lines)  # decoding: the faulty request's steps will include this one's row
            failed = post(url, alice, faulty)
            rest = events("\n\n".join(lines) + "\n\n")
    assert failed.status_code == 500 and message in failed.json()["error"]["message"]
    assert rest[-1] == "[DONE]" and rest[-2]["choices"][0]["finish_reason"] == "length"
    monkeypatch.undo()
    assert post(url, alice, faulty).status_code == 200
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"


def break_the_loop(engine: Engine, monkeypatch: pytest.MonkeyPatch, times: int) -> None:
    """The loop's own bookkeeping (not one request's part of it) fails the next `times` steps."""
    original = engine._plan
    failures = [times]

    def plan() -> Any:
        if failures[0] > 0:
            failures[0] -= 1
            raise RuntimeError("injected: the loop's bookkeeping broke")
        return original()

    monkeypatch.setattr(engine, "_plan", plan)


def test_a_dead_decode_loop_makes_healthz_answer_503_with_the_reason(
    app_settings: Settings,
    loaded_model: LoadedModel,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with running(app_settings, loaded_model) as (url, app), httpx.Client(base_url=url) as http:
        alice = account(http, "alice")
        engine: Engine = app.state.services.engine
        engine.limits = replace(engine.limits, restart_delay_s=600)  # it stays down for the test
        break_the_loop(engine, monkeypatch, times=1_000)
        waiting = post(url, alice, {"prompt": PROMPT, "max_tokens": 50}, timeout=30)
        health = http.get("/healthz")
        later = post(url, alice, {"prompt": PROMPT, "max_tokens": 4}, timeout=30)
    assert waiting.status_code == 500 and "the engine failed" in waiting.json()["error"]["message"]
    assert health.status_code == 503
    assert health.json()["status"] == "failed" and "bookkeeping broke" in health.json()["reason"]
    assert later.status_code == 503 and "restarting" in later.json()["error"]["message"]
    assert any(
        r.levelno == logging.ERROR and "bookkeeping broke" in r.getMessage() for r in caplog.records
    ), "the failure is logged with its reason"


def test_a_dead_decode_loop_restarts_and_serves_again(
    live_server: tuple[str, Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, app, alice = live_server
    engine: Engine = app.state.services.engine
    engine.limits = replace(engine.limits, restart_delay_s=0)
    break_the_loop(engine, monkeypatch, times=1)
    assert post(url, alice, {"prompt": PROMPT, "max_tokens": 50}).status_code == 500
    wait_until(lambda: engine.restarts == 1 and engine.failure is None, "the loop to restart")
    again = post(url, alice, {"prompt": PROMPT, "max_tokens": 4})
    health = httpx.get(f"{url}/healthz").json()
    assert again.status_code == 200
    assert health["status"] == "ok" and health["restarts"] == 1 and "bookkeeping" in health["last_failure"]


def test_one_account_cannot_take_the_model_from_the_others(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    with running(app_settings, loaded_model, requests_per_user=2, rows_per_user=4) as (url, app):
        with httpx.Client(base_url=url) as http:
            alice, bob = account(http, "alice"), account(http, "bob")
        hog = {"prompt": PROMPT, "max_tokens": 500, "n": 4, "temperature": 0, "stream": True}
        with httpx.Client(base_url=url, headers=alice, timeout=60) as http:
            with http.stream("POST", "/v1/completions", json=hog) as holding:
                lines = holding.iter_lines()  # kept: a dropped iterator would close the stream
                next(lines)  # alice's four rows are decoding
                refused = [post(url, alice, {"prompt": PROMPT, "max_tokens": 4, "n": n}) for n in (1, 4)]
                served = post(url, bob, {"prompt": PROMPT, "max_tokens": 4, "n": 4})
    for response in refused:
        assert response.status_code == 429 and response.headers["retry-after"] == "1"
        assert response.json()["error"]["type"] == "rate_limit_exceeded"
        assert "in progress" in response.json()["error"]["message"]
    assert served.status_code == 200 and len(served.json()["choices"]) == 4


@pytest.mark.parametrize(
    ("changes", "body", "param"),
    [
        ({}, {"prompt": "word " * 20_001}, "prompt"),  # 100,005 characters: refused untokenized
        ({"prompt_limit_tokens": 10}, {"prompt": PROMPT}, "prompt"),
        ({}, {"prompt": PROMPT, "user": "u" * 129}, "user"),
    ],
)
def test_oversized_inputs_are_refused_naming_the_field(
    app_settings: Settings,
    loaded_model: LoadedModel,
    changes: dict[str, Any],
    body: dict[str, Any],
    param: str,
) -> None:
    with running(app_settings, loaded_model, **changes) as (url, app):
        with httpx.Client(base_url=url) as http:
            alice = account(http, "alice")
        response = post(url, alice, {"max_tokens": 4, **body})
        assert app.state.services.engine.stats().open_requests == 0
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["message"].startswith(f"{param}:")


def test_prompts_are_tokenized_off_the_event_loop(live_server: tuple[str, Any, Any]) -> None:
    url, app, alice = live_server
    engine: Engine = app.state.services.engine
    tokenizer = RecordingTokenizer(engine.tokenizer)
    engine.tokenizer = tokenizer
    assert post(url, alice, {"prompt": PROMPT, "max_tokens": 4}).status_code == 200
    assert tokenizer.threads and all(t.startswith("cowrite-tokenizer") for t in tokenizer.threads)


def test_an_idle_user_session_expires(app_settings: Settings, loaded_model: LoadedModel) -> None:
    with running(app_settings, loaded_model, session_idle_s=1) as (url, app):
        with httpx.Client(base_url=url) as http:
            alice = account(http, "alice")
            assert post(url, alice, {"prompt": PROMPT, "max_tokens": 4, "user": "keep"}).status_code == 200
            assert http.get("/healthz").json()["sessions"] == 1
            wait_until(lambda: http.get("/healthz").json()["sessions"] == 0, "the idle session to expire", 20)
            assert http.get("/healthz").json()["kv_bytes"] == 0
