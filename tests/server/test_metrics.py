"""Metrics on a real uvicorn: the listener of their own, the bearer token on the public port, and
values that move after real activity on the real model. The dashboard shows every metric."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from harness.accounts import PASSWORD, account
from harness.processes import free_port
from server.app import create_app
from server.metrics import Metrics
from server.settings import Settings, SettingsError
from storage.models import Outcome
from streaming.loader import LoadedModel
from streaming.params import Status
from tests.conftest import serve, wait_until

pytestmark = pytest.mark.timeout(180)
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"
PROMPT = "It is a truth universally acknowledged, that a single man in possession of a good fortune"
TOKEN = "a-metrics-token-long-enough"
# the names others depend on (the dashboard, the benches, alerts): a rename must fail here first
NAMES = (
    "cowrite_engine_queue_depth",
    "cowrite_engine_active_requests",
    "cowrite_engine_active_rows",
    "cowrite_engine_kv_bytes",
    "cowrite_engine_sessions",
    "cowrite_engine_step_seconds",
    "cowrite_engine_step_rows",
    "cowrite_engine_ttft_seconds",
    "cowrite_engine_tokens_total",
    "cowrite_engine_requests_total",
    "cowrite_suggestions_total",
    "cowrite_sockets_open",
    "cowrite_updates_stored_total",
    "cowrite_store_seconds",
    "cowrite_update_fanout_seconds",
    "cowrite_rate_limit_refusals_total",
    "cowrite_signins_total",
)


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value in an exposition; AssertionError if it is not there."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    raise AssertionError(f"no sample {name}{labels} in the exposition")


class Scraper:
    """Reads one app's metrics from its listener."""

    def __init__(self, url: str) -> None:
        self.url = url

    def text(self) -> str:
        response = httpx.get(self.url, timeout=30)
        assert response.status_code == 200, response.text
        return response.text

    def __call__(self, name: str, **labels: str) -> float:
        return sample(self.text(), name, **labels)


@contextlib.contextmanager
def live(settings: Settings, loaded_model: LoadedModel, **changes: Any) -> Iterator[tuple[str, Scraper]]:
    """A real uvicorn with a metrics listener on a port of its own; yields the public URL and a
    scraper of the listener."""
    port = free_port()
    app = create_app(replace(settings, metrics_port=port, **changes), loaded_model)
    with serve(app) as url:
        yield url, Scraper(f"http://127.0.0.1:{port}/metrics")


@contextlib.contextmanager
def suggestion_socket(url: str, who: dict[str, str], document_id: str) -> Iterator[ClientConnection]:
    address = f"{url.replace('http', 'ws', 1)}/ws/suggest/{document_id}"
    with connect(address, additional_headers=who) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "hello"
        yield ws


def suggest(request_id: str) -> str:
    settings = {"max_tokens": 8, "temperature": 0, "n": 1}
    return json.dumps({"v": 1, "type": "suggest", "id": request_id, "before": PROMPT, "settings": settings})


def frame_for(ws: ClientConnection, request_id: str, kind: str) -> dict[str, Any]:
    """The next frame of `kind` about `request_id`."""
    while True:
        frame: dict[str, Any] = json.loads(ws.recv(timeout=60))
        if frame.get("id") == request_id and frame["type"] == kind:
            return frame


def test_only_the_listener_answers_metrics(app_settings: Settings, loaded_model: LoadedModel) -> None:
    with live(app_settings, loaded_model) as (url, scrape):
        text = scrape.text()
        assert httpx.get(f"{url}/metrics").status_code == 404, "never open on the public port"
        listener = scrape.url.removesuffix("/metrics")
        assert httpx.get(f"{listener}/healthz").status_code == 404
        assert httpx.get(f"{listener}/").status_code == 404
        openmetrics = httpx.get(scrape.url, headers={"accept": "application/openmetrics-text"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")
    for name in NAMES:  # every metric is declared from the start, with samples or not yet
        assert f"# TYPE {name} " in text, f"{name} is not exposed"
    assert sample(text, "cowrite_engine_requests_total", status="superseded") == 0, "labels start at zero"
    assert sample(text, "cowrite_engine_queue_depth") == 0
    assert sample(text, "cowrite_sockets_open", kind="document") == 0


def test_a_completion_moves_the_engine_and_store_metrics(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    with live(app_settings, loaded_model) as (url, scrape), httpx.Client(base_url=url, timeout=60) as http:
        alice = account(http, "alice")
        before = scrape.text()
        body = {"prompt": PROMPT, "max_tokens": 8, "temperature": 0, "user": "kept"}
        response = http.post("/v1/completions", json=body, headers=alice)
        assert response.status_code == 200, response.text
        after = scrape.text()

    tokens = response.json()["usage"]["completion_tokens"]
    assert tokens > 0

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("cowrite_engine_tokens_total") == tokens
    assert moved("cowrite_engine_ttft_seconds_count") == 1
    assert moved("cowrite_engine_ttft_seconds_sum") > 0
    assert sum(moved("cowrite_engine_requests_total", status=str(s)) for s in Status) == 1
    assert moved("cowrite_engine_step_seconds_count") >= tokens, "at least one step a token"
    assert moved("cowrite_engine_step_rows_count") == moved("cowrite_engine_step_seconds_count")
    # none before: a session is looked up only for a request with a cookie
    assert sample(after, "cowrite_store_seconds_count", operation="session_user") >= 1
    # the `user` field keeps the context cached, and the scrape reads the engine as it is now
    assert sample(after, "cowrite_engine_sessions") >= 1
    assert sample(after, "cowrite_engine_kv_bytes") > 0
    assert sample(after, "cowrite_engine_queue_depth") == sample(after, "cowrite_engine_active_rows") == 0


def test_sign_ins_and_their_refusals_are_counted(app_settings: Settings, loaded_model: LoadedModel) -> None:
    with (
        live(app_settings, loaded_model, signin_attempts=2) as (url, scrape),
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        account(http, "bob")  # signs up: not a sign-in
        origin = {"origin": url}

        def sign_in(password: str) -> int:
            body = {"username": "bob", "password": password}
            return http.post("/api/auth/signin", json=body, headers=origin).status_code

        assert scrape("cowrite_signins_total", result="failed") == 0
        assert sign_in(PASSWORD) == 200
        assert [sign_in("wrong password") for _ in range(3)] == [401, 401, 429]
        text = scrape.text()
    assert sample(text, "cowrite_signins_total", result="ok") == 1
    assert sample(text, "cowrite_signins_total", result="failed") == 2, "a refused attempt is not checked"
    assert sample(text, "cowrite_rate_limit_refusals_total", limit="signin") == 1
    assert sample(text, "cowrite_rate_limit_refusals_total", limit="signup") == 0


def test_the_suggestion_socket_counts_outcomes_sockets_and_refusals(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    changes = {"suggestions_per_minute": 1, "sockets_per_user": 1}
    with (
        live(app_settings, loaded_model, **changes) as (url, scrape),
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        alice = account(http, "alice")
        document = str(http.post("/api/documents", json={"title": "Draft"}, headers=alice).json()["id"])
        tokens_before = scrape("cowrite_engine_tokens_total")
        with suggestion_socket(url, alice, document) as ws:
            assert scrape("cowrite_sockets_open", kind="suggest") == 1
            ws.send(suggest("s1"))
            done = frame_for(ws, "s1", "done")
            assert done["reason"] in ("length", "finished", "stop", "sentence", "unsure")
            ws.send(json.dumps({"v": 1, "type": "feedback", "id": "s1", "outcome": "accepted"}))
            # frames are read in turn: the answer to this one means the feedback was handled
            ws.send(suggest("s2"))
            assert frame_for(ws, "s2", "error")["code"] == "rate_limited"
            address = f"{url.replace('http', 'ws', 1)}/ws/suggest/{document}"
            with connect(address, additional_headers=alice) as second, pytest.raises(ConnectionClosed):
                second.recv(timeout=30)
            assert second.close_code == 4429
            text = scrape.text()
        wait_until(lambda: scrape("cowrite_sockets_open", kind="suggest") == 0, "the close to be counted")

    assert sample(text, "cowrite_suggestions_total", outcome=str(Outcome.SHOWN)) == 1
    assert sample(text, "cowrite_suggestions_total", outcome=str(Outcome.ACCEPTED)) == 1
    assert sample(text, "cowrite_rate_limit_refusals_total", limit="suggestions") == 1
    assert sample(text, "cowrite_rate_limit_refusals_total", limit="sockets") == 1
    assert sample(text, "cowrite_engine_tokens_total") > tokens_before
    assert sample(text, "cowrite_sockets_open", kind="suggest") == 1, "the refused socket was never counted"


def test_the_public_port_serves_metrics_only_with_the_bearer_token(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    app = create_app(replace(app_settings, metrics_token=TOKEN), loaded_model)
    with serve(app) as url:

        def scrape(authorization: str | None) -> httpx.Response:
            headers = {} if authorization is None else {"authorization": authorization}
            return httpx.get(f"{url}/metrics", headers=headers, timeout=30)

        refused = [scrape(None), scrape("Bearer not-the-token"), scrape(f"Basic {TOKEN}"), scrape(TOKEN)]
        allowed = scrape(f"Bearer {TOKEN}")
        allowed_any_case = scrape(f"bearer {TOKEN}")
    assert [r.status_code for r in refused] == [401, 401, 401, 401]
    assert refused[0].headers["www-authenticate"].startswith("Bearer")
    assert "cowrite_" not in refused[1].text
    assert allowed.status_code == allowed_any_case.status_code == 200
    assert allowed.headers["content-type"].startswith("text/plain")
    assert sample(allowed.text, "cowrite_engine_queue_depth") == 0


def test_a_metrics_port_in_use_fails_start_up_clearly(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = create_app(replace(app_settings, metrics_port=port), loaded_model)
        with pytest.raises(RuntimeError, match=f"127.0.0.1:{port}.*COWRITE_METRICS_PORT"), TestClient(app):
            pass


def test_the_metrics_port_cannot_be_the_public_port() -> None:
    with pytest.raises(SettingsError, match="COWRITE_METRICS_PORT"):
        Settings(port=8000, metrics_port=8000)


def test_each_app_counts_in_a_registry_of_its_own() -> None:
    first, second = Metrics(), Metrics()
    first.refused("signin")
    with first.socket_open("document"):
        text = first.render()[0].decode()
        assert sample(text, "cowrite_sockets_open", kind="document") == 1
    first.fanout(0.002, "broker")
    first.update_stored()
    first.suggestion(Outcome.REJECTED)
    ours, theirs = first.render()[0].decode(), second.render()[0].decode()
    assert sample(ours, "cowrite_rate_limit_refusals_total", limit="signin") == 1
    assert sample(ours, "cowrite_sockets_open", kind="document") == 0
    assert sample(ours, "cowrite_update_fanout_seconds_count", path="broker") == 1
    assert sample(ours, "cowrite_updates_stored_total") == 1
    assert sample(ours, "cowrite_suggestions_total", outcome="rejected") == 1
    assert sample(theirs, "cowrite_rate_limit_refusals_total", limit="signin") == 0
    assert sample(theirs, "cowrite_update_fanout_seconds_count", path="broker") == 0
    assert "cowrite_engine_queue_depth" not in theirs, "no engine watched: no made-up zeros"
    with pytest.raises(AssertionError):
        first.fanout(0.001, "elsewhere")


def test_the_dashboard_shows_every_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    source = variables["datasource"]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    expressions = " ".join(t["expr"] for p in panels for t in p["targets"])
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    missing = [name for name in NAMES if name not in expressions]
    assert not missing, f"metrics without a panel: {missing}"
    assert "histogram_quantile" in expressions and "rate(" in expressions
