"""Live documents through a real uvicorn: convergence, persistence, awareness and bad input."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.accounts import account
from harness.yclient import YClient, document_socket
from server.app import create_app
from server.settings import Settings
from streaming.loader import LoadedModel
from tests.conftest import serve

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, loaded_model: LoadedModel
) -> Iterator[Any]:
    from dataclasses import replace

    app = create_app(
        replace(settings, data_dir=tmp_path_factory.mktemp("collab"), database_url=None), loaded_model
    )
    with serve(app) as url, httpx.Client(base_url=url) as http:
        yield url, app, account(http, "alice")


def new_document(url: str, alice: dict[str, str], text: str = "") -> str:
    document = httpx.post(f"{url}/api/documents", json={"title": "Shared"}, headers=alice).json()
    if text:
        httpx.patch(f"{url}/api/documents/{document['id']}", json={"text": text}, headers=alice)
    return str(document["id"])


def stored_text(url: str, alice: dict[str, str], document_id: str) -> str:
    text: str = httpx.get(f"{url}/api/documents/{document_id}", headers=alice).json()["text"]
    return text


async def wait_stored(url: str, alice: dict[str, str], document_id: str, expected: str) -> None:
    async with asyncio.timeout(10), httpx.AsyncClient(base_url=url, headers=alice) as http:
        # the plain text is saved beside the log on a schedule; there is no event to wait on
        while (await http.get(f"/api/documents/{document_id}")).json()["text"] != expected:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


edits = st.lists(
    st.tuples(st.booleans(), st.floats(0, 1), st.text(alphabet="abcxyz é\n", min_size=1, max_size=4)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(edits, min_size=2, max_size=4))
def test_concurrent_random_edits_converge_to_the_stored_text(live: Any, scripts: list[Any]) -> None:
    url, app, alice = live
    document_id = new_document(url, alice, "The start.")

    async def run() -> None:
        clients = [YClient(document_socket(url, document_id), headers=alice) for _ in scripts]
        for client in clients:
            await client.__aenter__()
        try:
            for client in clients:
                await asyncio.wait_for(client.synced.wait(), 10)

            async def play(client: YClient, script: list[tuple[bool, float, str]]) -> None:
                for insert, where, text in script:
                    current = str(client.text)
                    at = int(where * len(current))
                    end = min(len(current), at + len(text))
                    # pycrdt positions count UTF-8 bytes
                    at_byte, end_byte = len(current[:at].encode()), len(current[:end].encode())
                    if insert or not current:
                        client.text.insert(at_byte, text)
                    else:
                        del client.text[at_byte:end_byte]
                    await asyncio.sleep(0)

            await asyncio.gather(*(play(c, s) for c, s in zip(clients, scripts)))
            for client in clients:
                await client.wait_saved()
            # every edit is stored in the room now; each client must reach the same text
            server_text = str(app.state.services.rooms.get(document_id).text)
            for client in clients:
                await client.wait_for(lambda c: str(c.text) == server_text)
            await wait_stored(url, alice, document_id, server_text)
        finally:
            for client in clients:
                await client.__aexit__(None, None, None)

    asyncio.run(run())


async def test_a_document_from_before_co_editing_is_seeded_from_its_text(live: Any) -> None:
    url, _, alice = live
    document_id = new_document(url, alice, "Written before the CRDT.")
    async with YClient(document_socket(url, document_id), headers=alice) as client:
        await asyncio.wait_for(client.synced.wait(), 10)
        assert str(client.text) == "Written before the CRDT."


async def test_an_api_edit_reaches_connected_clients(live: Any) -> None:
    url, _, alice = live
    document_id = new_document(url, alice, "Café one two three.")
    async with YClient(document_socket(url, document_id), headers=alice) as client:
        await asyncio.wait_for(client.synced.wait(), 10)
        async with httpx.AsyncClient(base_url=url, headers=alice) as http:
            response = await http.patch(
                f"/api/documents/{document_id}", json={"text": "Café one 2 three — ✓"}
            )
        assert response.status_code == 200 and response.json()["text"] == "Café one 2 three — ✓"
        await client.wait_for(lambda c: str(c.text) == "Café one 2 three — ✓")


async def test_someone_who_leaves_disappears_from_awareness(live: Any) -> None:
    url, _, alice = live
    document_id = new_document(url, alice)
    async with YClient(document_socket(url, document_id), headers=alice) as watcher:
        async with YClient(document_socket(url, document_id), headers=alice) as leaver:
            await leaver.set_awareness({"user": {"name": "Ann", "color": "#c33"}}, clock=1)
            await watcher.wait_for(lambda c: leaver.client_id in c.awareness)
            # the server labels every cursor with its account's name, whatever the client says
            assert watcher.awareness[leaver.client_id]["user"]["name"] == "alice"
        await watcher.wait_for(lambda c: leaver.client_id not in c.awareness, within_s=5)


async def test_the_log_compacts_into_a_snapshot_with_the_same_state(live: Any) -> None:
    url, app, alice = live
    document_id = new_document(url, alice)
    async with YClient(document_socket(url, document_id), headers=alice) as writer:
        await asyncio.wait_for(writer.synced.wait(), 10)
        for word in "the log grows by one entry per edit".split():
            writer.text.insert(len(str(writer.text)), word + " ")
            await asyncio.sleep(0.01)
        await writer.wait_saved()
        room = app.state.services.rooms.get(document_id)
        assert room.log_entries >= 8
        app.state.services.rooms.compact_after_entries = 0  # the next round of upkeep folds the log
        try:
            async with asyncio.timeout(10):
                while room.log_entries != 1:  # noqa: ASYNC110 - the server's loop changes it
                    await asyncio.sleep(0.05)
        finally:
            app.state.services.rooms.compact_after_entries = 500
        expected = str(writer.text)
    app.state.services.rooms._rooms.pop(document_id)  # the next client reloads the room from the database
    async with YClient(document_socket(url, document_id), headers=alice) as reader:
        await asyncio.wait_for(reader.synced.wait(), 10)
        assert str(reader.text) == expected


async def test_a_malformed_update_closes_the_socket_and_changes_nothing(live: Any) -> None:
    url, _, alice = live
    document_id = new_document(url, alice, "Intact.")
    async with YClient(document_socket(url, document_id), headers=alice) as attacker:
        await asyncio.wait_for(attacker.synced.wait(), 10)
        garbage = bytes([0, 2]) + bytes([7]) + bytes(random.Random(1).randrange(256) for _ in range(7))
        await attacker.send_raw(garbage)
        await attacker.wait_for(lambda c: c.closed is not None)
        assert attacker.closed == 1007
    async with YClient(document_socket(url, document_id), headers=alice) as reader:
        await asyncio.wait_for(reader.synced.wait(), 10)
        assert str(reader.text) == "Intact."
    assert stored_text(url, alice, document_id) == "Intact."


async def test_a_socket_to_a_missing_document_is_closed(live: Any) -> None:
    url, _, alice = live
    async with YClient(document_socket(url, "nope"), headers=alice) as client:
        await client.wait_for(lambda c: c.closed is not None)
    assert client.closed == 4404
