"""Host names: a request or socket handshake naming a host this server does not answer to is
refused with 400, which is what stops DNS rebinding (a page whose own name now points here sends
its name as Host and as Origin, so the Origin checks alone would let it in)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from harness.accounts import PASSWORD, account_async
from server.app import create_app
from server.middleware.hosts import LOOPBACK, allowed_hosts, host_name, is_address_of
from server.settings import Settings
from streaming.loader import LoadedModel
from tests.conftest import serve


@pytest.fixture
def live(app_settings: Settings, loaded_model: LoadedModel) -> Iterator[str]:
    with serve(create_app(app_settings, loaded_model)) as url:
        yield url


def test_a_rebound_name_cannot_sign_up_the_first_account(live: str) -> None:
    port = urlsplit(live).port
    evil = f"evil.example:{port}"
    with httpx.Client(base_url=live) as http:
        body = {"username": "mallory", "password": PASSWORD}
        refused = http.post("/api/auth/signup", json=body, headers={"host": evil, "origin": f"http://{evil}"})
        assert refused.status_code == 400, refused.text  # 201 and an admin account before the fix
        assert refused.json()["error"]["code"] == "bad_host"
        assert http.get("/api/auth/status", headers={"host": evil}).status_code == 400
        assert http.get("/api/auth/status").json()["first_run"] is True  # nobody was signed up
        # the names it is bound to and the loopback names are answered
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", "LOCALHOST"):
            assert http.get("/api/auth/status", headers={"host": host}).status_code == 200


async def test_a_rebound_name_cannot_open_a_socket(live: str) -> None:
    port = urlsplit(live).port
    async with asyncio.timeout(30), httpx.AsyncClient(base_url=live) as http:
        alice = await account_async(http, "alice")
        document = (await http.post("/api/documents", json={"title": "Mine"}, headers=alice)).json()
        path = f"/ws/doc/{document['id']}"
        with pytest.raises(InvalidStatus) as refused:
            # the browser sends the rebound name as Host and as Origin, and its cookie for that name
            await websockets.connect(
                f"ws://evil.example:{port}{path}",
                host="127.0.0.1",
                port=port,
                additional_headers={"cookie": alice["cookie"], "origin": f"http://evil.example:{port}"},
            )
        assert refused.value.response.status_code == 400
        async with websockets.connect(f"ws://127.0.0.1:{port}{path}", additional_headers=alice) as allowed:
            assert await allowed.recv()


def test_the_default_hosts_follow_the_bound_address() -> None:
    assert allowed_hosts(Settings(host="127.0.0.1")) == LOOPBACK
    assert allowed_hosts(Settings(host="10.1.2.3")) == LOOPBACK | {"10.1.2.3"}
    assert allowed_hosts(Settings(host="::1")) == LOOPBACK
    everywhere = allowed_hosts(Settings(host="0.0.0.0"))
    assert everywhere is not None and socket.gethostname().lower() in everywhere and LOOPBACK <= everywhere
    configured = allowed_hosts(Settings(host="0.0.0.0", allowed_hosts="Cowrite.Example.com, other.example"))
    assert configured == LOOPBACK | {"cowrite.example.com", "other.example"}
    assert allowed_hosts(Settings(allowed_hosts="*")) is None


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("example.com", "example.com"),
        ("Example.COM:8000", "example.com"),
        ("[::1]:8000", "::1"),
        ("[::1]", "::1"),
        ("", None),
        (":80", None),
        ("example.com:port", None),
        ("[::1", None),
        ("[::1]x", None),
    ],
)
def test_host_headers_are_read_without_their_port(header: str, name: str | None) -> None:
    assert host_name(header) == name


def test_the_address_a_connection_arrived_at_is_its_own_host() -> None:
    assert is_address_of("192.0.2.7", "192.0.2.7")
    assert is_address_of("192.0.2.7", "::ffff:192.0.2.7")  # dual-stack socket
    assert not is_address_of("192.0.2.8", "192.0.2.7")
    assert not is_address_of("evil.example", "192.0.2.7")
