"""Abuse limits, each with its clear error or close code: frame size, suggestions per user per
minute, and the idle timeout (open sockets per user: tests/server/test_sockets.py; request size:
tests/server/middleware/test_body_limit.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import websockets
from pycrdt import create_awareness_message, write_message
from starlette import status
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from harness.accounts import account_async, sign_in_client
from server.app import create_app
from server.collab.yupdates import write_var_uint
from server.errors import WS_4408_IDLE
from server.limits import AttemptLimiter, RateLimiter
from server.settings import Settings
from streaming.loader import LoadedModel
from tests.conftest import serve


@pytest.fixture
def tight(app_settings: Settings, loaded_model: LoadedModel) -> Iterator[TestClient]:
    limits = replace(
        app_settings,
        frame_limit_kb=4,
        update_limit_mb=1,
        suggestions_per_minute=3,
        idle_timeout_s=1,
    )
    with TestClient(create_app(limits, loaded_model)) as client:
        sign_in_client(client, "alice")
        yield client


def suggest(request_id: str) -> str:
    settings = {"max_tokens": 1, "temperature": 0}
    return json.dumps(
        {"v": 1, "type": "suggest", "id": request_id, "before": "Once upon", "settings": settings}
    )


def test_suggestions_per_user_per_minute(tight: TestClient) -> None:
    document = tight.post("/api/documents", json={"title": "Busy"}).json()
    with tight.websocket_connect(f"/ws/suggest/{document['id']}") as ws:
        assert ws.receive_json()["type"] == "hello"
        answers = []
        for i in range(4):
            ws.send_text(suggest(f"s{i}"))
            while True:
                frame = ws.receive_json()
                if frame["type"] in ("done", "error"):
                    answers.append(frame)
                    break
    assert [a["type"] for a in answers] == ["done", "done", "done", "error"]
    assert answers[-1]["code"] == "rate_limited" and answers[-1]["id"] == "s3"
    assert answers[-1]["retry_after_ms"] > 0
    # the same allowance covers the OpenAI endpoint
    limited = tight.post("/v1/completions", json={"prompt": "Once", "max_tokens": 1})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


@pytest.mark.parametrize("kind", ["suggest", "doc"])
def test_an_idle_socket_is_closed(tight: TestClient, kind: str) -> None:
    document = tight.post("/api/documents", json={"title": "Quiet"}).json()
    started = time.monotonic()
    with tight.websocket_connect(f"/ws/{kind}/{document['id']}") as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_bytes() if kind == "doc" else ws.receive_json()
    assert closed.value.code == WS_4408_IDLE
    assert time.monotonic() - started >= 1.0


def test_frames_over_the_limit_close_with_1009(tight: TestClient) -> None:
    document = tight.post("/api/documents", json={"title": "Big"}).json()
    with tight.websocket_connect(f"/ws/suggest/{document['id']}") as ws:
        ws.receive_json()
        ws.send_text(suggest("x").replace("Once upon", "x" * 5000))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == status.WS_1009_MESSAGE_TOO_BIG
    with tight.websocket_connect(f"/ws/doc/{document['id']}") as ws:
        ws.receive_bytes()
        ws.send_bytes(b"\x00\x02" + b"\x00" * ((1 << 20) + 1))
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_bytes()
    assert closed.value.code == status.WS_1009_MESSAGE_TOO_BIG
    assert tight.get(f"/api/documents/{document['id']}").json()["text"] == ""


async def test_the_limiters_count_and_forget_on_their_clock() -> None:
    now = [0.0]
    attempts = AttemptLimiter({"account": 2}, window_s=60, clock=lambda: now[0])
    assert await attempts.reserve("account:ann") is not None
    assert await attempts.reserve("account:ann") is not None
    assert await attempts.retry_after("account:ann") == 60
    now[0] = 30.0
    assert await attempts.retry_after("account:ann") == 30 and await attempts.retry_after("account:bob") == 0
    now[0] = 60.0
    assert await attempts.retry_after("account:ann") == 0

    rate = RateLimiter(per_minute=60, clock=lambda: now[0])
    assert [await rate.take("ann") for _ in range(60)] == [0.0] * 60
    assert await rate.take("ann") == pytest.approx(1.0)
    now[0] += 1.0
    assert await rate.take("ann") == 0.0 and await rate.take("bob") == 0.0


async def test_an_attempt_is_reserved_before_it_is_made_and_can_be_released() -> None:
    now = [0.0]
    attempts = AttemptLimiter({"account": 2, "address": 3}, window_s=60, clock=lambda: now[0])
    first = await attempts.reserve("account:ann", "address:a")
    second = await attempts.reserve("account:ann", "address:a")
    assert first is not None and second is not None
    assert await attempts.reserve("account:ann", "address:a") is None  # nothing counted when refused
    assert await attempts.retry_after("account:ann") == 60
    await attempts.release(second, "account:ann", "address:a")  # it succeeded after all
    assert await attempts.reserve("account:bob", "address:a") is not None
    assert await attempts.reserve("account:cy", "address:a") is not None  # the place released is free
    assert await attempts.reserve("account:dee", "address:a") is None  # the address's three are taken
    now[0] = 61.0
    await attempts.release(first, "account:ann", "address:a")  # expired meanwhile: nothing to release
    assert await attempts.retry_after("account:ann", "address:a") == 0


# Only edits and suggestion requests are activity: an open tab's awareness (renewed every few
# seconds) or other chatter must not keep a socket past the idle timeout. Through a real uvicorn.

CHATTER = {
    # an awareness update for one client id (the cursor of a tab nobody types in)
    "doc": lambda clock: create_awareness_message(
        write_var_uint(1) + write_var_uint(7) + write_var_uint(clock) + write_message(b'{"user":{}}')
    ),
    # a cancel of nothing: answered with an error frame, not a suggestion request
    "suggest": lambda clock: json.dumps({"v": 1, "type": "cancel", "id": f"none-{clock}"}),
}


@pytest.mark.parametrize("kind", ["doc", "suggest"])
async def test_chatter_does_not_keep_a_socket_past_the_idle_timeout(
    app_settings: Settings, loaded_model: LoadedModel, kind: str
) -> None:
    with serve(create_app(replace(app_settings, idle_timeout_s=1), loaded_model)) as url:
        async with asyncio.timeout(60), httpx.AsyncClient(base_url=url) as http:
            alice = await account_async(http, "alice")
            document = (await http.post("/api/documents", json={"title": "Open tab"}, headers=alice)).json()
            address = f"{url.replace('http', 'ws', 1)}/ws/{kind}/{document['id']}"
            async with websockets.connect(address, additional_headers=alice) as socket:
                closed = asyncio.create_task(drain(socket))
                clock = 0
                while not closed.done():  # chatter five times a second until the server closes
                    clock += 1
                    with contextlib.suppress(websockets.ConnectionClosed):
                        await socket.send(CHATTER[kind](clock))
                    await asyncio.wait([closed], timeout=0.2)
    assert socket.close_code == WS_4408_IDLE


async def drain(socket: Any) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            await socket.recv()
