"""Every user's open sockets (`server.sockets`): the replicas' control messages on the wire and the
sockets each one reaches, the cap on sockets per user, and a socket leaving the registry however
it ends (`server.auth.access.registered`, driven through the real document and suggestion sockets)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream
from starlette.testclient import TestClient

from harness.accounts import account, sign_in_client
from server.app import create_app
from server.cluster.broker import CONTROL, CONTROL_CHANNEL, RESYNC, Envelope, Handler
from server.collab.connection import Connection
from server.collab.room import Room
from server.errors import (
    WS_1013_TRY_AGAIN_LATER,
    WS_4401_UNAUTHENTICATED,
    WS_4429_TOO_MANY_SOCKETS,
    DatabaseUnavailable,
)
from server.settings import Settings
from server.sockets import (
    CommentsChanged,
    Control,
    DocumentGone,
    LiveSockets,
    RoleChanged,
    SessionEnded,
    UserSessionsEnded,
    decode_control,
    encode_control,
)
from server.suggest.socket import SuggestionSocket
from storage.models import Role
from streaming.loader import LoadedModel

pytestmark = pytest.mark.timeout(60)

# the control messages on the wire


@pytest.mark.parametrize(
    "control",
    [
        SessionEnded("5e55"),
        UserSessionsEnded("ann"),
        RoleChanged("doc-1", "ann", Role.COMMENTER),
        RoleChanged("doc-1", "ann", None),
        CommentsChanged("doc-1"),
        DocumentGone("doc-1"),
    ],
    ids=repr,
)
def test_each_control_comes_back_as_it_was_sent(control: Control) -> None:
    assert decode_control(encode_control(control)) == control


def test_a_control_names_its_op_and_fields_on_the_wire() -> None:
    """docs/cluster.md's JSON: other replicas (of other versions, too) read these names."""
    assert json.loads(encode_control(RoleChanged("doc-1", "ann", Role.EDITOR))) == {
        "op": "role",
        "document": "doc-1",
        "user": "ann",
        "role": "editor",
    }
    assert json.loads(encode_control(SessionEnded("5e55"))) == {"op": "end_session", "session": "5e55"}


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"\xff\xfe",  # not UTF-8
        b"[]",
        b'"end_session"',
        b"null",
        b'{"session": "5e55"}',  # no op
        b'{"op": 4, "session": "5e55"}',
        b'{"op": "explode", "session": "5e55"}',
        b'{"op": "end_session"}',
        b'{"op": "end_session", "session": 5}',
        b'{"op": "end_sessions_of", "user": null}',
        b'{"op": "role", "user": "ann", "role": "editor"}',
        b'{"op": "role", "document": "doc-1", "role": "editor"}',
        b'{"op": "role", "document": ["doc-1"], "user": "ann", "role": "editor"}',
        b'{"op": "role", "document": "doc-1", "user": "ann", "role": 3}',
        b'{"op": "role", "document": "doc-1", "user": "ann", "role": "admin"}',
        b'{"op": "comments"}',
        b'{"op": "comments", "document": 1}',
        b'{"op": "document_gone", "document": {"id": "doc-1"}}',
    ],
)
def test_anything_else_is_not_a_control(payload: bytes) -> None:
    assert decode_control(payload) is None


# which sockets a control reaches


class FakeSocket:
    """A suggestion socket to `LiveSockets` (`Revocable`): it records what it is told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, Role | None]] = []

    def role_changed(self, role: Role | None) -> None:
        self.told.append(("role", role))

    def session_ended(self) -> None:
        self.told.append(("session ended", None))


class FakeDocumentSocket(FakeSocket):
    """A document socket: it also hears of comments (`CommentWatcher`)."""

    def comments_changed(self) -> None:
        self.told.append(("comments", None))


# name: (user, document, session, watches comments)
OPEN = {
    "ann's page on a": ("ann", "a", "s1", True),
    "ann's suggestions on a": ("ann", "a", "s1", False),
    "ann's page on b": ("ann", "b", "s2", True),
    "bob's page on a": ("bob", "a", "s3", True),
    "bob's suggestions on b": ("bob", "b", "s3", False),
}


async def open_sockets(sockets: LiveSockets) -> dict[str, FakeSocket]:
    opened: dict[str, FakeSocket] = {}
    for name, (user, document, session, watches) in OPEN.items():
        opened[name] = FakeDocumentSocket() if watches else FakeSocket()
        assert await sockets.add(user, document, opened[name], session)
    return opened


@pytest.mark.parametrize(
    ("control", "told"),
    [
        (
            SessionEnded("s1"),
            {"ann's page on a": ("session ended", None), "ann's suggestions on a": ("session ended", None)},
        ),
        (
            UserSessionsEnded("ann"),
            {
                "ann's page on a": ("session ended", None),
                "ann's suggestions on a": ("session ended", None),
                "ann's page on b": ("session ended", None),
            },
        ),
        (
            RoleChanged("a", "ann", Role.VIEWER),
            {"ann's page on a": ("role", Role.VIEWER), "ann's suggestions on a": ("role", Role.VIEWER)},
        ),
        (
            RoleChanged("b", "bob", None),
            {"bob's suggestions on b": ("role", None)},
        ),
        (
            CommentsChanged("a"),
            {"ann's page on a": ("comments", None), "bob's page on a": ("comments", None)},
        ),
        (
            DocumentGone("b"),
            {"ann's page on b": ("role", None), "bob's suggestions on b": ("role", None)},
        ),
        (SessionEnded("nobody's"), {}),
        (RoleChanged("c", "ann", None), {}),
    ],
    ids=repr,
)
async def test_a_control_reaches_exactly_its_sockets(
    control: Control, told: dict[str, tuple[str, Role | None]]
) -> None:
    sockets = LiveSockets(per_user=10)
    opened = await open_sockets(sockets)
    sockets.apply(control)
    assert {name: socket.told for name, socket in opened.items()} == {
        name: [told[name]] if name in told else [] for name in OPEN
    }


async def test_a_removed_socket_hears_nothing_more() -> None:
    sockets = LiveSockets(per_user=10)
    opened = await open_sockets(sockets)
    sockets.remove("ann", opened["ann's page on a"])
    for control in (SessionEnded("s1"), UserSessionsEnded("ann"), CommentsChanged("a"), DocumentGone("a")):
        sockets.apply(control)
    assert opened["ann's page on a"].told == []
    assert sockets.memberships() == {("a", "ann"), ("b", "ann"), ("a", "bob"), ("b", "bob")}
    assert sockets.sessions() == {"s1", "s2", "s3"}


class FakeBroker:
    """The other replicas (`server.cluster.broker.Broker`): what this one publishes is kept, and a
    test delivers what they send through the handler subscribed."""

    def __init__(self) -> None:
        self.replica = "here"
        self.published: list[tuple[str, int, bytes]] = []
        self.handlers: dict[str, Handler] = {}

    @property
    def shared(self) -> bool:
        return True

    async def publish(self, channel: str, kind: int, payload: bytes) -> None:
        self.published.append((channel, kind, payload))

    async def subscribe(self, channel: str, handler: Handler) -> Callable[[], None]:
        self.handlers[channel] = handler

        def unsubscribe() -> None:
            del self.handlers[channel]

        return unsubscribe

    async def take_lease(self, name: str, ttl_s: float) -> bool:
        return True

    async def release_lease(self, name: str) -> None:
        pass

    async def problem(self) -> str | None:
        return None


async def test_a_control_reaches_this_replicas_sockets_and_every_other_one() -> None:
    broker = FakeBroker()
    async with LiveSockets(per_user=10, broker=broker) as sockets:
        opened = await open_sockets(sockets)
        await sockets.role_changed("b", "bob", Role.EDITOR)
        assert broker.published == [
            (CONTROL_CHANNEL, CONTROL, encode_control(RoleChanged("b", "bob", Role.EDITOR)))
        ]
        assert opened["bob's suggestions on b"].told == [("role", Role.EDITOR)]

        heard = broker.handlers[CONTROL_CHANNEL]
        heard(Envelope("there", CONTROL, 0.0, encode_control(SessionEnded("s2"))))
        heard(Envelope("there", CONTROL, 0.0, b'{"op": "end_session"}'))  # malformed: dropped
        heard(Envelope("there", RESYNC, 0.0, b""))  # a missed sign-out is the session sweep's
        assert opened["ann's page on b"].told == [("session ended", None)]
        assert [name for name, socket in opened.items() if socket.told] == [
            "ann's page on b",
            "bob's suggestions on b",
        ]
    assert CONTROL_CHANNEL not in broker.handlers  # unsubscribed on the way out


async def test_live_sockets_must_be_entered_before_they_are_left() -> None:
    with pytest.raises(RuntimeError, match="LiveSockets is not running: enter it with `async with`"):
        await LiveSockets(per_user=1).__aexit__(None, None, None)


# open sockets per user, through the real sockets


@pytest.fixture
def tight(app_settings: Settings, loaded_model: LoadedModel) -> Iterator[TestClient]:
    """A client signed in as "alice", who may have two sockets open."""
    with TestClient(create_app(replace(app_settings, sockets_per_user=2), loaded_model)) as client:
        sign_in_client(client, "alice")
        yield client


def test_open_sockets_per_user(tight: TestClient) -> None:
    document = tight.post("/api/documents", json={"title": "Many tabs"}).json()
    bob = account(tight, "bob")
    tight.post(f"/api/documents/{document['id']}/members", json={"username": "bob", "role": "editor"})
    with (
        tight.websocket_connect(f"/ws/doc/{document['id']}") as first,
        tight.websocket_connect(f"/ws/suggest/{document['id']}") as second,
    ):
        first.receive_bytes()
        second.receive_json()
        with tight.websocket_connect(f"/ws/doc/{document['id']}") as third:
            refused = third.receive()
        assert refused == {
            "type": "websocket.close",
            "code": WS_4429_TOO_MANY_SOCKETS,
            "reason": refused["reason"],
        }
        assert "at most 2" in refused["reason"]
        # another user is not counted against alice
        with tight.websocket_connect(f"/ws/doc/{document['id']}", headers=bob) as bobs:
            assert bobs.receive_bytes()
    # closing frees the places
    with tight.websocket_connect(f"/ws/doc/{document['id']}") as again:
        assert again.receive_bytes()


# a socket leaves the registry however it ends: the server closes it, its serving fails, or it is
# cancelled (Starlette's TestClient cancels a socket it leaves that has not ended)

KINDS = ["doc", "suggest"]


def live_sockets(client: TestClient) -> LiveSockets:
    sockets: LiveSockets = client.app.state.services.sockets  # type: ignore[attr-defined]
    return sockets


def new_document(client: TestClient) -> str:
    return str(client.post("/api/documents", json={"title": "Open"}).json()["id"])


def close_code(ws: Any) -> int:
    """Read frames until the server closes the socket; its close code."""
    while (message := ws.receive())["type"] != "websocket.close":
        pass
    code: int = message["code"]
    return code


def serve_instead(monkeypatch: pytest.MonkeyPatch, kind: str, serving: Callable[[Any], Any]) -> None:
    """Replace what serves an admitted, registered socket of `kind` with `serving(websocket)`."""
    if kind == "doc":

        async def serve_document(
            room: Room, connection: Connection, receive: MemoryObjectReceiveStream[bytes]
        ) -> None:
            with receive, connection.outbox:
                await serving(connection.websocket)

        monkeypatch.setattr("server.collab.socket.serve", serve_document)
    else:

        async def serve_suggestions(socket: SuggestionSocket) -> None:
            await serving(socket.websocket)

        monkeypatch.setattr(SuggestionSocket, "serve", serve_suggestions)


@pytest.mark.parametrize("kind", KINDS)
def test_a_socket_the_server_closes_leaves_the_registry(client: TestClient, kind: str) -> None:
    document_id = new_document(client)
    with client.websocket_connect(f"/ws/{kind}/{document_id}") as ws:
        ws.receive()  # the document, or the hello: it is being served
        assert live_sockets(client).memberships() == {(document_id, "alice")}
        assert client.post("/api/auth/signout").status_code == 204
        assert close_code(ws) == WS_4401_UNAUTHENTICATED
        assert live_sockets(client).memberships() == set()


@pytest.mark.parametrize("kind", KINDS)
def test_a_socket_whose_serving_fails_leaves_the_registry(
    client: TestClient, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered_when_it_failed = []

    async def failing(websocket: Any) -> None:
        registered_when_it_failed.append(live_sockets(client).memberships())
        raise DatabaseUnavailable("the database went away")

    serve_instead(monkeypatch, kind, failing)
    document_id = new_document(client)
    with client.websocket_connect(f"/ws/{kind}/{document_id}") as ws:
        assert close_code(ws) == WS_1013_TRY_AGAIN_LATER  # the app's answer to the error raised
    assert registered_when_it_failed == [{(document_id, "alice")}]
    assert live_sockets(client).memberships() == set()


@pytest.mark.parametrize("kind", KINDS)
def test_a_cancelled_socket_leaves_the_registry(
    client: TestClient, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def hanging(websocket: Any) -> None:
        await websocket.send_bytes(b"serving")
        await anyio.sleep_forever()  # reads nothing: only cancelling it ends this socket

    serve_instead(monkeypatch, kind, hanging)
    document_id = new_document(client)
    with client.websocket_connect(f"/ws/{kind}/{document_id}") as ws:
        assert ws.receive_bytes() == b"serving"
        assert live_sockets(client).memberships() == {(document_id, "alice")}
    assert live_sockets(client).memberships() == set()
