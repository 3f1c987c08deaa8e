"""SIGKILL the server while two people type; after a restart, every acknowledged edit is there."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest

from harness.accounts import account_async
from harness.processes import free_port, start_server, wait_ready
from harness.yclient import YClient, decode_state_vector

pytestmark = pytest.mark.timeout(180)


async def test_no_acknowledged_update_is_lost_to_sigkill(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, tmp_path)
    try:
        await wait_ready(url, server)
        async with httpx.AsyncClient(base_url=url) as http:
            as_ann, as_bob = await account_async(http, "ann"), await account_async(http, "bob")
            created = await http.post("/api/documents", json={"title": "Crash"}, headers=as_ann)
            document = created.json()["id"]
            invite = {"username": "bob", "role": "editor"}
            added = await http.post(f"/api/documents/{document}/members", json=invite, headers=as_ann)
            assert added.status_code == 201
        socket = url.replace("http", "ws", 1) + f"/ws/doc/{document}"
        async with YClient(socket, headers=as_ann) as ann, YClient(socket, headers=as_bob) as bob:
            await asyncio.wait_for(ann.synced.wait(), 10)
            await asyncio.wait_for(bob.synced.wait(), 10)

            async def type_words(client: YClient, word: str, at_end: bool) -> None:
                for i in range(40):
                    text = str(client.text)
                    client.text.insert(len(text.encode()) if at_end else 0, f"{word}{i} ")
                    await asyncio.sleep(0.005)

            await asyncio.gather(type_words(ann, "ann", True), type_words(bob, "bob", False))
            # kill while acknowledgements are still arriving: whatever was acknowledged must survive
            await asyncio.sleep(0.05)
            acknowledged = {
                ann.client_id: ann.server_state.get(ann.client_id, 0),
                bob.client_id: bob.server_state.get(bob.client_id, 0),
            }
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        assert acknowledged[ann.client_id] > 0 and acknowledged[bob.client_id] > 0

        server = start_server(port, tmp_path)
        await wait_ready(url, server)
        # the session outlives the restart: the secret key is kept in the data folder
        async with YClient(socket, headers=as_bob) as reader:
            await asyncio.wait_for(reader.synced.wait(), 10)
            recovered = decode_state_vector(reader.doc.get_state())
            text = str(reader.text)
        for client_id, clock in acknowledged.items():
            assert recovered.get(client_id, 0) >= clock, "an acknowledged update was lost"
        assert "ann0 " in text and "bob0 " in text
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)


async def test_after_a_crash_the_api_and_the_export_show_every_acknowledged_edit(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, tmp_path)
    try:
        await wait_ready(url, server)
        async with httpx.AsyncClient(base_url=url) as http:
            as_ann = await account_async(http, "ann")
            created = await http.post("/api/documents", json={"title": "Crash"}, headers=as_ann)
            document = created.json()["id"]
        socket = url.replace("http", "ws", 1) + f"/ws/doc/{document}"
        async with YClient(socket, headers=as_ann) as ann:
            await asyncio.wait_for(ann.synced.wait(), 10)
            for i in range(30):
                ann.text.insert(len(str(ann.text).encode()), f"word{i} ")
                await asyncio.sleep(0.01)
            if len(str(ann.text)) > 20:  # and a deletion, which the text must show too
                del ann.text[0:7]
            await ann.wait_saved()
            # the text is saved beside the log once a second: the last edits are in the log only
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
            written = str(ann.text)

        server = start_server(port, tmp_path)
        await wait_ready(url, server)
        async with httpx.AsyncClient(base_url=url, headers=as_ann) as http:
            text = (await http.get(f"/api/documents/{document}")).json()["text"]
            exported = (await http.get(f"/api/documents/{document}/export.md")).text
        async with YClient(socket, headers=as_ann) as reader:
            await asyncio.wait_for(reader.synced.wait(), 10)
            live = str(reader.text)
        assert live == written
        assert text == written, "the API's text lags the document"
        assert exported == f"# Crash\n\n{written}\n"
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
