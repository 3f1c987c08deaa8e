"""The test client reports a close that comes before its first message (a flaky test once raised
`ConnectionClosed` instead, when the server's 4404 beat the client's sync step 1)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import websockets

from harness import yclient
from harness.accounts import account
from harness.yclient import YClient
from server.app import create_app
from server.settings import Settings
from streaming.loader import LoadedModel
from tests.conftest import serve

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def live(
    tmp_path: Any, settings: Settings, loaded_model: LoadedModel
) -> Iterator[tuple[str, dict[str, str]]]:
    app = create_app(replace(settings, data_dir=tmp_path, database_url=None), loaded_model)
    with serve(app) as url, httpx.Client(base_url=url) as http:
        yield url, account(http, "alice")


async def test_a_close_before_the_first_send_is_reported(
    live: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, alice = live
    connect = websockets.connect

    async def connect_then_wait_for_the_close(*args: Any, **kwargs: Any) -> Any:
        socket = await connect(*args, **kwargs)
        await socket.wait_closed()  # the server's 4404 has arrived before the client sends anything
        return socket

    monkeypatch.setattr(yclient.websockets, "connect", connect_then_wait_for_the_close)
    async with YClient(url.replace("http", "ws", 1) + "/ws/doc/missing", headers=alice) as client:
        await client.wait_for(lambda c: c.closed is not None)
    assert client.closed == 4404
