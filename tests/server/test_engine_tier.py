"""A web replica with `COWRITE_ENGINE_URL`: suggestions from a real `serve-engine` process through
the real suggestion socket, cancels that reach the engine within a step, /healthz, the token."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient
from websockets.sync.client import ClientConnection, connect

from harness.accounts import account
from harness.engine_tier import TOKEN, EngineProcess, engine_process
from harness.processes import ROOT, free_port
from server.app import create_app
from server.settings import Settings
from tests.conftest import serve, wait_until
from tests.server.suggest.test_socket import BEFORE, first_delta, frames_until_done, suggest

PROMPT = "It is a truth universally acknowledged, that a single man in possession of a good fortune"
pytestmark = pytest.mark.timeout(240)
Replica = tuple[str, Any, dict[str, str], str]


METRICS_TOKEN = "engine-tier-metrics-token"
METRICS_PORT = free_port()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    env = {
        # two requests in progress per user on the engine; the replicas below allow more of their own
        "COWRITE_REQUESTS_PER_USER": "2",
        "COWRITE_METRICS_PORT": str(METRICS_PORT),
        "COWRITE_METRICS_TOKEN": METRICS_TOKEN,
    }
    with engine_process(tmp_path_factory.mktemp("engine"), env) as process:
        yield process


@pytest.fixture(autouse=True)
def no_model_in_the_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("a web replica with COWRITE_ENGINE_URL loaded a model")

    monkeypatch.setattr("server.app.load_model", refuse)


@contextlib.contextmanager
def replica(
    settings: Settings, engine_url: str, token: str | None = TOKEN, **changes: Any
) -> Iterator[Replica]:
    """A real uvicorn serving the web app in front of `engine_url`; yields its URL, the app, alice's
    headers and a document of hers."""
    app = create_app(replace(settings, engine_url=engine_url, engine_token=token, **changes))
    with serve(app) as url, httpx.Client(base_url=url) as http:
        alice = account(http, "alice")
        document = http.post("/api/documents", json={"title": "Draft"}, headers=alice).json()["id"]
        yield url, app, alice, str(document)


@contextlib.contextmanager
def suggestion_socket(
    url: str, who: dict[str, str], document_id: str, tab: str = ""
) -> Iterator[tuple[dict[str, Any], ClientConnection]]:
    """A suggestion socket and its `hello`."""
    address = f"{url.replace('http', 'ws', 1)}/ws/suggest/{document_id}?tab={tab}"
    with connect(address, additional_headers=who) as ws:
        hello = json.loads(ws.recv(timeout=30))
        assert hello["type"] == "hello"
        yield hello, ws


def health(url: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{url}/healthz", timeout=10).json()
    return answer


def settled(engine: EngineProcess) -> dict[str, Any]:
    """The engine's /healthz once it has no request left."""
    wait_until(lambda: health(engine.url)["open_requests"] == 0, "the engine to end its requests")
    return health(engine.url)


def test_a_replica_streams_suggestions_from_the_engine_process(
    app_settings: Settings, engine: EngineProcess
) -> None:
    before = health(engine.url)
    with replica(app_settings, engine.url) as (url, app, alice, document_id):
        with suggestion_socket(url, alice, document_id) as (hello, ws):
            ws.send(json.dumps(suggest("s1")))
            deltas, done = frames_until_done(ws, "s1")
            ws.send(json.dumps(suggest("word", before="It is a truth universally acknowl")))
            _, mid_word = frames_until_done(ws, "word")
        history = httpx.get(f"{url}/api/documents/{document_id}/suggestions", headers=alice).json()
    text = "".join(d["text"] for d in deltas)
    assert (hello["model"], hello["device"], hello["dtype"]) == (
        before["model"],
        before["device"],
        before["dtype"],
    )
    assert len(deltas) >= 2 and done["reason"] in ("length", "finished", "stop", "sentence", "unsure")
    assert done["alternatives"][0]["text"] == text and [d["tokens"] for d in deltas][-1] <= 12
    assert mid_word["alternatives"][0]["text"].startswith("edged"), "token healing works across the hop"
    row = next(r for r in history["suggestions"] if r["id"] == done["suggestion"])
    assert row["outcome"] == "shown" and row["alternatives"] == [text] and row["tokens"] > 0
    assert row["model"] == before["model"]
    assert settled(engine)["steps"] > before["steps"], "the engine process did the work"
    assert app.state.services.model.where == engine.url


@pytest.mark.parametrize(
    ("how", "reason", "steps"),
    [
        # the step running as the stream closed, and at most one more before the engine saw it
        ("cancel", "cancelled", 2),
        ("close", None, 2),
        # ... and the newer request's own step or two (a one-token suggestion on a cached prefix)
        ("typing", "superseded", 4),
    ],
)
def test_a_cancel_reaches_the_engine_within_one_step(
    app_settings: Settings, engine: EngineProcess, how: str, reason: str | None, steps: int
) -> None:
    with replica(app_settings, engine.url) as (url, app, alice, document_id):
        with suggestion_socket(url, alice, document_id) as (_, ws):
            ws.send(json.dumps(suggest("long", max_tokens=128)))
            first_delta(ws, "long")
            before = health(engine.url)
            assert before["open_requests"] == 1
            if how == "cancel":
                ws.send(json.dumps({"v": 1, "type": "cancel", "id": "long"}))
            elif how == "typing":
                ws.send(json.dumps(suggest("next", before=BEFORE + " in", max_tokens=1)))
            if reason is not None:
                _, done = frames_until_done(ws, "long")
                assert done["reason"] == reason
        # leaving the block closed the socket
        after = settled(engine)
    assert after["steps"] - before["steps"] <= steps, (how, before["steps"], after["steps"])


def test_a_closed_socket_frees_its_context_on_the_engine(
    app_settings: Settings, engine: EngineProcess
) -> None:
    with replica(app_settings, engine.url) as (url, app, alice, document_id):
        with suggestion_socket(url, alice, document_id, tab="one") as (_, ws):
            ws.send(json.dumps(suggest("s1", max_tokens=4)))
            frames_until_done(ws, "s1")
            cached = settled(engine)["sessions"]
        wait_until(lambda: health(engine.url)["sessions"] == cached - 1, "the engine to free the session")


def test_each_users_share_is_kept_by_the_engine(app_settings: Settings, engine: EngineProcess) -> None:
    """The engine allows two requests per user here; the replica would allow eight."""
    with replica(app_settings, engine.url, requests_per_user=8, rows_per_user=8) as (url, _, alice, doc):
        with (
            suggestion_socket(url, alice, doc, tab="one") as (_, one),
            suggestion_socket(url, alice, doc, tab="two") as (_, two),
            suggestion_socket(url, alice, doc, tab="three") as (_, three),
        ):
            for ws, name in ((one, "a"), (two, "b")):
                ws.send(json.dumps(suggest(name, max_tokens=128)))
                first_delta(ws, name)
            three.send(json.dumps(suggest("c")))
            _, refused = frames_until_done(three, "c")
    assert refused["reason"] == "busy"
    settled(engine)


def test_openai_completions_through_the_replica_reuse_the_prefix_on_the_engine(
    app_settings: Settings, engine: EngineProcess
) -> None:
    with replica(app_settings, engine.url) as (url, _, alice, _document):
        body = {"prompt": PROMPT, "max_tokens": 4, "temperature": 0, "user": "mine"}
        first = httpx.post(f"{url}/v1/completions", json=body, headers=alice, timeout=60)
        body["prompt"] = PROMPT + " must be"
        second = httpx.post(f"{url}/v1/completions", json=body, headers=alice, timeout=60)
        listed = httpx.get(f"{url}/v1/models", headers=alice).json()
    assert first.status_code == second.status_code == 200
    assert first.json()["usage"]["completion_tokens"] == 4
    assert second.json()["usage"]["prompt_tokens_details"]["cached_tokens"] > 10
    assert listed["data"][0]["id"] == health(engine.url)["model"]


def test_healthz_says_where_the_model_is_and_whether_it_answers(
    app_settings: Settings, engine: EngineProcess
) -> None:
    with replica(app_settings, engine.url) as (url, _, _alice, _document):
        up = httpx.get(f"{url}/healthz")
    nowhere = f"http://127.0.0.1:{free_port()}"
    with replica(app_settings, nowhere) as (url, _, alice, document_id):
        down = httpx.get(f"{url}/healthz")
        ready = httpx.get(f"{url}/readyz")  # readiness: documents are served, engine or not
        documents = httpx.get(f"{url}/api/documents", headers=alice)
        with suggestion_socket(url, alice, document_id) as (hello, ws):
            ws.send(json.dumps(suggest("s1")))
            _, busy = frames_until_done(ws, "s1")
    assert up.status_code == 200
    assert {k: up.json()[k] for k in ("status", "engine", "engine_url", "answers")} == {
        "status": "ok",
        "engine": "remote",
        "engine_url": engine.url,
        "answers": True,
    }
    assert up.json()["latency_ms"] > 0 and up.json()["model"] == health(engine.url)["model"]
    assert down.status_code == 503
    assert down.json()["answers"] is False and "cannot be reached" in down.json()["reason"]
    assert documents.status_code == 200, "the replica serves documents while the engine is away"
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "problems": {}}
    assert busy["reason"] == "busy" and hello["device"] == "remote"


def test_a_wrong_token_gets_401_and_nothing_is_generated(
    app_settings: Settings, engine: EngineProcess
) -> None:
    steps = settled(engine)["steps"]
    wrong = "not-the-token-of-this-engine"
    direct = httpx.post(
        f"{engine.url}/v1/completions",
        json={"prompt": PROMPT, "max_tokens": 4},
        headers={"authorization": f"Bearer {wrong}"},
    )
    missing = httpx.post(f"{engine.url}/v1/completions", json={"prompt": PROMPT, "max_tokens": 4})
    app = create_app(replace(app_settings, engine_url=engine.url, engine_token=wrong))
    with pytest.raises(RuntimeError, match="COWRITE_ENGINE_TOKEN"), TestClient(app):
        pass  # the replica does not start with a token the engine refuses
    assert direct.status_code == missing.status_code == 401
    assert health(engine.url)["steps"] == steps


def metric(text: str, name: str) -> float:
    """A sample's value in a Prometheus text page (the first line that starts with `name`)."""
    line = next(line for line in text.splitlines() if line.startswith(name))
    return float(line.rsplit(" ", 1)[1])


def test_the_engine_and_the_replica_count_their_own_metrics(
    app_settings: Settings, engine: EngineProcess
) -> None:
    with replica(app_settings, engine.url) as (url, app, alice, document_id):
        with suggestion_socket(url, alice, document_id) as (_, ws):
            ws.send(json.dumps(suggest("s1", max_tokens=4)))
            frames_until_done(ws, "s1")
        replica_page = app.state.services.metrics.render()[0].decode()
    listener = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics")
    public = httpx.get(f"{engine.url}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
    refused = httpx.get(f"{engine.url}/metrics")
    assert listener.status_code == public.status_code == 200 and refused.status_code == 401
    assert metric(listener.text, "cowrite_engine_step_seconds_count") > 0, "the engine counts its steps"
    assert metric(public.text, "cowrite_engine_ttft_seconds_count") > 0
    assert metric(replica_page, "cowrite_engine_ttft_seconds_count") == 1, (
        "the replica, its writer's first token"
    )
    assert metric(replica_page, 'cowrite_engine_requests_total{status="length"}') == 1


def test_serve_engine_will_not_start_without_a_token(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "COWRITE_ENGINE_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve-engine", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("cowrite: serve-engine needs COWRITE_ENGINE_TOKEN")
    assert len(result.stderr.strip().splitlines()) == 1
