"""The version history API through a real uvicorn: listing, reading, naming, saving and restoring
versions, bad names, and who wrote in each version over the live socket."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from harness.accounts import account, shared_document
from harness.yclient import YClient, document_socket
from server.app import create_app
from server.settings import Settings
from storage.models import VERSION_NAME_MAX
from streaming.loader import LoadedModel
from tests.conftest import serve

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, loaded_model: LoadedModel
) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    app = create_app(
        replace(settings, data_dir=tmp_path_factory.mktemp("versions"), database_url=None), loaded_model
    )
    with serve(app) as url, httpx.Client(base_url=url) as http:
        yield url, account(http, "alice"), account(http, "bob")


def versions(url: str, who: dict[str, str], document_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/documents/{document_id}/revisions", headers=who)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["revisions"]
    return found


def test_an_api_edit_names_its_writer_and_a_version_can_be_read(live: Any) -> None:
    url, alice, _ = live
    document_id = shared_document(url, alice, "bob")
    httpx.patch(f"{url}/api/documents/{document_id}", json={"text": "Hello."}, headers=alice)
    [newest] = versions(url, alice, document_id)
    assert newest["authors"] == ["alice"] and newest["name"] is None
    read = httpx.get(f"{url}/api/documents/{document_id}/revisions/{newest['id']}", headers=alice)
    assert read.status_code == 200 and read.json()["text"] == "Hello."
    missing = httpx.get(f"{url}/api/documents/{document_id}/revisions/999999", headers=alice)
    assert missing.status_code == 404


def test_naming_saving_and_clearing_a_version(live: Any) -> None:
    url, alice, bob = live
    document_id = shared_document(url, alice, "bob")
    httpx.patch(f"{url}/api/documents/{document_id}", json={"text": "Draft one."}, headers=alice)
    saved = httpx.post(
        f"{url}/api/documents/{document_id}/revisions", json={"name": "  sent to editor "}, headers=bob
    )
    assert saved.status_code == 201, saved.text
    assert saved.json()["name"] == "sent to editor"
    # the newest version held this text: it was named, not copied
    [only] = versions(url, alice, document_id)
    assert only["id"] == saved.json()["id"] and only["authors"] == ["alice"]

    path = f"{url}/api/documents/{document_id}/revisions/{only['id']}"
    renamed = httpx.patch(path, json={"name": "final"}, headers=bob)
    assert renamed.status_code == 200 and renamed.json()["name"] == "final"
    # a named version is not merged into the next autosave
    httpx.patch(f"{url}/api/documents/{document_id}", json={"text": "Draft two."}, headers=bob)
    listed = versions(url, alice, document_id)
    assert [(v["name"], v["authors"]) for v in listed] == [(None, ["bob"]), ("final", ["alice"])]
    cleared = httpx.patch(path, json={"name": None}, headers=alice)
    assert cleared.status_code == 200 and cleared.json()["name"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "x" * (VERSION_NAME_MAX + 1)},
        {"name": "line\nbreak"},
        {"name": 7},
        {"name": "ok", "colour": "red"},
        {"reason": "autosave", "name": "sneaky"},
        {},
        ["name"],
    ],
)
def test_bad_names_are_refused_and_change_nothing(live: Any, body: Any) -> None:
    url, alice, _ = live
    document_id = shared_document(url, alice, "bob")
    httpx.patch(f"{url}/api/documents/{document_id}", json={"text": "Kept."}, headers=alice)
    before = versions(url, alice, document_id)
    path = f"{url}/api/documents/{document_id}/revisions"
    made = httpx.post(path, json=body, headers=alice)
    assert made.status_code == 400, made.text
    assert made.json()["error"]["code"] == "invalid"
    if isinstance(body, dict) and "reason" not in body:
        named = httpx.patch(f"{path}/{before[0]['id']}", json=body, headers=alice)
        assert named.status_code == 400, named.text
    assert versions(url, alice, document_id) == before


def test_a_restore_keeps_a_before_restore_version_and_names_its_writer(live: Any) -> None:
    url, alice, bob = live
    document_id = shared_document(url, alice, "bob")
    httpx.patch(f"{url}/api/documents/{document_id}", json={"text": "The old ending."}, headers=alice)
    old = versions(url, alice, document_id)[0]
    httpx.post(f"{url}/api/documents/{document_id}/revisions", json={"name": "old"}, headers=alice)
    httpx.patch(f"{url}/api/documents/{document_id}", json={"text": "A new ending."}, headers=alice)
    restored = httpx.post(f"{url}/api/documents/{document_id}/revisions/{old['id']}/restore", headers=bob)
    assert restored.status_code == 200 and restored.json()["text"] == "The old ending."
    listed = versions(url, alice, document_id)
    before = next(v for v in listed if v["reason"] == "before-restore")
    read = httpx.get(f"{url}/api/documents/{document_id}/revisions/{before['id']}", headers=alice)
    assert read.json()["text"] == "A new ending."
    assert listed[0]["authors"] == ["bob"] and listed[0]["chars"] == len("The old ending.")


async def test_two_writers_over_the_live_socket_are_the_authors_of_the_version(live: Any) -> None:
    url, alice, bob = live
    document_id = shared_document(url, alice, "bob")
    async with (
        YClient(document_socket(url, document_id), headers=alice) as first,
        YClient(document_socket(url, document_id), headers=bob) as second,
    ):
        await asyncio.wait_for(first.synced.wait(), 10)
        await asyncio.wait_for(second.synced.wait(), 10)
        first.text.insert(0, "Alice wrote. ")
        await first.wait_saved()
        await second.wait_for(lambda c: str(c.text) == "Alice wrote. ")
        second.text.insert(len("Alice wrote. "), "Bob too.")
        await second.wait_saved()
    async with asyncio.timeout(10), httpx.AsyncClient(base_url=url, headers=alice) as http:
        # listing saves the live text first: the newest version holds both edits
        listed = (await http.get(f"/api/documents/{document_id}/revisions")).json()["revisions"]
    assert listed[0]["chars"] == len("Alice wrote. Bob too.")
    assert sorted(listed[0]["authors"]) == ["alice", "bob"]
    assert all(set(v["authors"]) <= {"alice", "bob"} for v in listed)
