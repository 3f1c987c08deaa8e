"""Open sockets end with their session: sign-out, a password change, an admin's reset from the
shell (another process) and expiry each close the session's document and suggestion sockets with
4401, and nothing sent on them afterwards reaches the document. Through a real uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import websockets
from pycrdt import (
    Doc,
    Text,
    YMessageType,
    YSyncMessageType,
    create_sync_message,
    create_update_message,
    read_message,
)

from harness.accounts import PASSWORD, account_async
from server.app import create_app
from server.collab.ywire import MESSAGE_SAVED
from server.errors import WS_4401_UNAUTHENTICATED
from server.settings import Settings
from streaming.loader import LoadedModel
from tests.conftest import ROOT, serve

NEW_PASSWORD = "a brand new passphrase"
ENDINGS = ["sign-out", "password change", "admin reset", "expiry"]
# ended by this process: the sockets close before the request's answer, so nothing sent after it counts
AT_ONCE = {"sign-out", "password change"}


@pytest.fixture
def live(app_settings: Settings, loaded_model: LoadedModel) -> Iterator[tuple[str, Settings]]:
    settings = replace(app_settings, session_check_s=1)
    with serve(create_app(settings, loaded_model)) as url:
        yield url, settings


class Writer:
    """A pycrdt document whose edits become y-websocket update messages."""

    def __init__(self) -> None:
        self.doc: Doc[Text] = Doc()
        self.text = self.doc.get("content", type=Text)

    def edit(self, words: str) -> bytes:
        before = self.doc.get_state()
        self.text += words
        return create_update_message(self.doc.get_update(before))


def suggest_frame(request_id: str) -> str:
    settings = {"max_tokens": 8, "temperature": 0}
    return json.dumps(
        {"v": 1, "type": "suggest", "id": request_id, "before": "Once upon", "settings": settings}
    )


@contextlib.asynccontextmanager
async def sockets(url: str, headers: dict[str, str], document_id: str) -> AsyncIterator[tuple[Any, Any]]:
    """The document's two sockets, opened with `headers` (a session cookie), each past its greeting."""
    base = url.replace("http", "ws", 1)
    async with (
        websockets.connect(f"{base}/ws/doc/{document_id}", additional_headers=headers) as doc,
        websockets.connect(f"{base}/ws/suggest/{document_id}", additional_headers=headers) as suggest,
    ):
        await doc.recv()  # the server's sync step 1
        assert json.loads(await suggest.recv())["type"] == "hello"
        yield doc, suggest


async def until_closed(socket: Any) -> list[Any]:
    """Every frame the socket receives until the server closes it."""
    frames = []
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            frames.append(await socket.recv())
    return frames


async def acknowledged(socket: Any) -> None:
    while True:
        frame = await socket.recv()
        if frame[0] == MESSAGE_SAVED:
            return


async def document_text(url: str, headers: dict[str, str], document_id: str) -> str:
    """The document as a newly opened socket syncs it: what the server applied."""
    reader = Writer()
    base = url.replace("http", "ws", 1)
    async with websockets.connect(f"{base}/ws/doc/{document_id}", additional_headers=headers) as socket:
        await socket.send(create_sync_message(reader.doc))
        while True:
            frame = await socket.recv()
            if frame[:2] == bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2]):
                reader.doc.apply_update(read_message(frame[2:]))
                return str(reader.text)


async def end_session(ending: str, http: httpx.AsyncClient, alice: dict[str, str], settings: Settings) -> str:
    """End the session behind `alice`'s cookie; returns the password that signs in afterwards."""
    if ending == "sign-out":
        assert (await http.post("/api/auth/signout", headers=alice)).status_code == 204
    elif ending == "password change":
        change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        assert (await http.post("/api/auth/password", json=change, headers=alice)).status_code == 204
    elif ending == "admin reset":
        command = [sys.executable, "-m", "server.admin", "reset-password", "alice", "--password-stdin"]
        environment = {**os.environ, "COWRITE_DATA_DIR": str(settings.data_dir), "COWRITE_DATABASE_URL": ""}
        done = await asyncio.to_thread(
            subprocess.run,
            command,
            input=NEW_PASSWORD + "\n",
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=environment,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    else:
        with contextlib.closing(sqlite3.connect(settings.data_dir / "cowrite.db")) as database, database:
            database.execute("UPDATE sessions SET expires_at = '2000-01-01 00:00:00.000000'")
    http.cookies.clear()
    return PASSWORD if ending in ("sign-out", "expiry") else NEW_PASSWORD


@pytest.mark.parametrize("ending", ENDINGS)
async def test_a_sessions_sockets_close_when_it_ends(live: tuple[str, Settings], ending: str) -> None:
    url, settings = live
    async with asyncio.timeout(120), httpx.AsyncClient(base_url=url) as http:
        alice = await account_async(http, "alice")
        created = await http.post("/api/documents", json={"title": "Draft"}, headers=alice)
        document_id = created.json()["id"]
        writer = Writer()
        async with sockets(url, alice, document_id) as (doc, suggest):
            await doc.send(writer.edit("Kept. "))
            await acknowledged(doc)
            password = await end_session(ending, http, alice, settings)
            if ending in AT_ONCE:
                # sent after the session ended: neither may be acted on
                with contextlib.suppress(websockets.ConnectionClosed):
                    await doc.send(writer.edit("Lost."))
                with contextlib.suppress(websockets.ConnectionClosed):
                    await suggest.send(suggest_frame("after"))
            async with asyncio.timeout(30):  # the sweep runs every second here
                doc_frames, suggest_frames = await asyncio.gather(until_closed(doc), until_closed(suggest))
        assert (doc.close_code, suggest.close_code) == (WS_4401_UNAUTHENTICATED, WS_4401_UNAUTHENTICATED)
        assert (await http.get("/api/documents", headers=alice)).status_code == 401
        if ending in AT_ONCE:
            assert not [frame for frame in doc_frames if frame[0] == MESSAGE_SAVED]
            assert suggest_frames == []
            again = await account_async(http, "alice", password)
            assert await document_text(url, again, document_id) == "Kept. "
