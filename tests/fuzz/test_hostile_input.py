"""Hostile input against every way in: generated and hand-made frames and bodies.

After each attack the documents hold exactly what the legitimate client wrote, and the server
keeps serving: the attacker's socket may be closed, nothing else is.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, create_sync_message, write_message
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from harness.accounts import account, sign_in_client
from harness.yclient import YClient
from server.app import create_app
from server.settings import Settings
from streaming.loader import LoadedModel
from tests.conftest import serve

pytestmark = pytest.mark.timeout(300)
LEGITIMATE = "Precious words, written by the owner. Café ✓"

# a corpus of hand-made hostile inputs, kept with the tests
HOSTILE_TEXT_FRAMES = [
    "",
    "null",
    "[]",
    "{}",
    '{"v": 1}',
    '{"v": 1, "type": "suggest"}',
    '{"v": 1, "type": "suggest", "id": "x", "before": null}',
    '{"v": 1, "type": "suggest", "id": "x", "before": "a", "settings": {"n": 1e309}}',
    '{"v": 1, "type": "suggest", "id": "x", "before": "a", "settings": {"max_tokens": -1}}',
    '{"v": 1, "type": "suggest", "id": "' + "i" * 65 + '", "before": "a"}',
    '{"v": 1, "type": "feedback", "id": "x", "outcome": "accepted", "accepted_chars": -5}',
    '{"v": 1, "type": "cancel", "id": {"$gt": ""}}',
    '{"v": 1.0000001, "type": "suggest", "id": "x", "before": "a"}',
    '{"v": true, "type": "suggest", "id": "x", "before": "a"}',
    '{"v": 1, "type": "__proto__", "id": "x"}',
    '{"v": 1, "type": "suggest", "id": "x", "before": "\\ud800"}',
    '{"v": 1, "type": "prime", "before": "' + "a" * 60_000 + '"}',
    "\x00\x01\x02",
    '{"v": 1, "type": "suggest", "id": "x", "before": "a"' + "}" * 1000,
    "[" * 5000 + "]" * 5000,
]
HOSTILE_BINARY_FRAMES = [
    b"",
    b"\x00",
    b"\x00\x00",
    b"\x00\x01",
    b"\x00\x02\xff\xff\xff\xff\x0f",
    b"\x00\x02\x05\x01\x02\x03\x04\x05",
    b"\x00\x09\x00",
    b"\x01",
    b"\x01\x05\x01\x01\x01\x01\xff",
    b"\x01\x03\x01\x01\x01",
    b"\x02\x00",
    b"\x64",
    b"\xff" * 64,
    bytes(range(256)),
]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, settings: Settings, loaded_model: LoadedModel) -> Any:
    return create_app(
        replace(settings, data_dir=tmp_path_factory.mktemp("fuzz"), database_url=None), loaded_model
    )


@pytest.fixture(scope="module")
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        sign_in_client(test_client, "alice")
        yield test_client


@pytest.fixture(scope="module")
def document_id(client: TestClient) -> str:
    document = client.post("/api/documents", json={"title": "Keep me"}).json()
    client.patch(f"/api/documents/{document['id']}", json={"text": LEGITIMATE})
    return str(document["id"])


def assert_intact(client: TestClient, document_id: str) -> None:
    document = client.get(f"/api/documents/{document_id}").json()
    assert (document["title"], document["text"]) == ("Keep me", LEGITIMATE)
    assert client.get("/healthz").status_code == 200


def attack_suggestion_socket(client: TestClient, document_id: str, frames: list[str | bytes]) -> None:
    with client.websocket_connect(f"/ws/suggest/{document_id}") as ws:
        ws.receive_json()
        for frame in frames:
            if isinstance(frame, bytes):
                ws.send_bytes(frame)
            else:
                ws.send_text(frame)
            try:
                answer = ws.receive_json()
            except WebSocketDisconnect as closed:
                assert closed.code == 1009, "only an oversized frame may close the suggestion socket"
                return
            assert answer["type"] in ("error", "done", "delta")


def test_the_hostile_corpus_against_the_suggestion_socket(client: TestClient, document_id: str) -> None:
    for frame in HOSTILE_TEXT_FRAMES + HOSTILE_BINARY_FRAMES:
        attack_suggestion_socket(client, document_id, [frame])
    assert_intact(client, document_id)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
frames = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {
            "v": st.sampled_from([1, 2, "1", None]),
            "type": st.sampled_from(["suggest", "cancel", "feedback", "prime"]),
        },
        optional={
            "id": st.text(max_size=70) | st.integers(),
            "before": st.text(max_size=100) | st.integers(),
            "after": st.text(max_size=50),
            "outcome": st.text(max_size=10),
            "accepted_chars": st.integers(),
            "settings": st.dictionaries(
                st.sampled_from(["n", "max_tokens", "temperature", "x"]), json_values
            ),
        },
    ).map(json.dumps),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(frames, min_size=1, max_size=4))
def test_generated_frames_against_the_suggestion_socket(
    client: TestClient, document_id: str, batch: list[str]
) -> None:
    attack_suggestion_socket(client, document_id, list(batch))
    assert_intact(client, document_id)


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["title", "text", "owner", "id", "version"]), json_values).map(
        lambda v: json.dumps(v).encode()
    ),
)


@pytest.mark.parametrize(
    "route", ["POST /api/documents", "PATCH /api/documents/{id}", "POST /v1/completions"]
)
def test_deeply_nested_json_is_a_clear_400(client: TestClient, document_id: str, route: str) -> None:
    method, path = route.split(" ")
    body = b"[" * 100_000 + b"]" * 100_000
    response = client.request(method, path.format(id=document_id), content=body)
    assert response.status_code == 400 and "error" in response.json()
    assert_intact(client, document_id)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["POST /api/documents", "PATCH /api/documents/{id}", "POST /v1/completions"]), bodies)
def test_generated_bodies_against_the_json_api(
    client: TestClient, document_id: str, route: str, body: bytes
) -> None:
    method, path = route.split(" ")
    other = client.post("/api/documents", json={"title": "Scratch"}).json()["id"]
    response = client.request(
        method, path.format(id=other), content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code in (200, 201, 400, 429, 503), response.text
    if response.status_code >= 400:
        assert "error" in response.json()
    client.delete(f"/api/documents/{other}")
    assert_intact(client, document_id)


@pytest.fixture(scope="module")
def live(app: Any, client: TestClient) -> Iterator[tuple[str, Any, dict[str, dict[str, str]]]]:
    """The same app served by a real uvicorn, with alice's document shared with an editor and a viewer."""
    with serve(app) as url, httpx.Client(base_url=url) as http:
        people = {name: account(http, name) for name in ("alice", "eve", "val")}
        document = http.post("/api/documents", json={"title": "Keep me"}, headers=people["alice"]).json()[
            "id"
        ]
        http.patch(f"/api/documents/{document}", json={"text": LEGITIMATE}, headers=people["alice"])
        for name, role in (("eve", "editor"), ("val", "viewer")):
            invite = {"username": name, "role": role}
            http.post(f"/api/documents/{document}/members", json=invite, headers=people["alice"])
        yield url.replace("http", "ws", 1) + f"/ws/doc/{document}", app.state.services.rooms, people


async def attack_document_socket(socket: str, headers: dict[str, str], frames: list[bytes]) -> None:
    async with YClient(socket, headers=headers) as attacker:
        await asyncio.wait_for(attacker.synced.wait(), 10)
        for frame in frames:
            await attacker.send_raw(frame)
        # the server answers each frame in order (or closes): a sync step 1 of ours is answered last
        await attacker.send_raw(create_sync_message(Doc()))
        await attacker.wait_for(lambda c: c.closed is not None or c.answers >= 2, within_s=10)


async def assert_document_serves(
    socket: str, owner_headers: dict[str, str], rooms: Any, expected: str
) -> None:
    async with YClient(socket, headers=owner_headers) as reader:
        await asyncio.wait_for(reader.synced.wait(), 10)
        assert str(reader.text) == expected
    room = rooms.get(socket.rsplit("/", 1)[1])
    assert room is None or str(room.text) == expected


def test_hostile_frames_against_the_document_socket(live: Any) -> None:
    socket, rooms, people = live

    async def run() -> None:
        async with YClient(socket, headers=people["alice"]) as owner:
            await asyncio.wait_for(owner.synced.wait(), 10)
            for frame in HOSTILE_BINARY_FRAMES:
                for attacker in ("eve", "val"):
                    await attack_document_socket(socket, people[attacker], [frame])
            # the owner's socket lived through all of it, and still edits
            owner.text.insert(len(LEGITIMATE.encode()), "!")
            await owner.wait_saved()
            assert owner.closed is None
            del owner.text[len(LEGITIMATE.encode()) : len(LEGITIMATE.encode()) + 1]
            await owner.wait_saved()
        await assert_document_serves(socket, people["alice"], rooms, LEGITIMATE)

    asyncio.run(run())


sync_frames = st.one_of(
    st.binary(max_size=64),
    # well-framed sync messages (step 1, step 2, update) around arbitrary payloads
    st.tuples(st.sampled_from([0, 1, 2, 3]), st.binary(max_size=48)).map(
        lambda t: bytes([0, t[0]]) + write_message(t[1])
    ),
    # well-framed awareness and unknown message types
    st.tuples(st.sampled_from([1, 2, 3, 100, 101, 255]), st.binary(max_size=48)).map(
        lambda t: bytes([t[0]]) + write_message(t[1])
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(sync_frames, min_size=1, max_size=4), st.sampled_from(["eve", "val"]))
def test_generated_frames_against_the_document_socket(live: Any, batch: list[bytes], attacker: str) -> None:
    """A viewer's frames change nothing at all; an editor's may be refused or (when they happen to be
    a valid update) applied, and either way the server, the room and the stored text stay one."""
    socket, rooms, people = live

    async def run() -> None:
        await attack_document_socket(socket, people[attacker], list(batch))
        room = rooms.get(socket.rsplit("/", 1)[1])
        expected = LEGITIMATE if attacker == "val" or room is None else str(room.text)
        await assert_document_serves(socket, people["alice"], rooms, expected)

    asyncio.run(run())


@pytest.mark.parametrize("kind", ["suggest", "doc"])
def test_a_text_frame_of_invalid_utf8_closes_only_that_socket(live: Any, kind: str) -> None:
    socket, rooms, people = live
    url = socket.replace("/ws/doc/", f"/ws/{kind}/")

    async def run() -> None:
        async with websockets.connect(url, additional_headers=people["alice"]) as attacker:
            await attacker.recv()  # hello, or sync step 1
            await attacker.send(b"\xff\xfe{\x80}", text=True)  # a text frame that is not UTF-8
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await attacker.recv()
        assert attacker.close_code == 1007
        await assert_document_serves(socket, people["alice"], rooms, LEGITIMATE)

    asyncio.run(run())
