"""Version authors among replicas (real uvicorns sharing PostgreSQL and Redis): a writer on the
replica that does not save the document's text is still named in its versions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from harness.accounts import account, shared_document
from harness.yclient import YClient, document_socket
from server.app import create_app
from server.settings import Settings
from streaming.loader import LoadedModel
from tests.conftest import serve

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
    settings: Settings,
    loaded_model: LoadedModel,
    postgres_url: str,
    redis_url: str,
) -> Iterator[tuple[str, str, dict[str, str], dict[str, str]]]:
    shared = replace(
        settings, database_url=postgres_url, redis_url=redis_url, secret_key="one key for both replicas"
    )
    app_a = create_app(replace(shared, data_dir=tmp_path_factory.mktemp("versions-a")), loaded_model)
    app_b = create_app(replace(shared, data_dir=tmp_path_factory.mktemp("versions-b")), loaded_model)
    with serve(app_a) as a, serve(app_b) as b, httpx.Client(base_url=a) as http:
        yield a, b, account(http, "ann"), account(http, "bob")


async def test_writers_on_either_replica_are_named_in_the_versions(
    replicas: tuple[str, str, dict[str, str], dict[str, str]],
) -> None:
    a, b, ann, bob = replicas
    document = shared_document(a, ann, "bob")
    async with (
        YClient(document_socket(a, document), headers=ann) as on_a,
        YClient(document_socket(b, document), headers={**bob, "origin": b}) as on_b,
    ):
        await asyncio.gather(on_a.synced.wait(), on_b.synced.wait())
        on_a.text.insert(0, "Ann on A. ")
        await on_a.wait_saved()
        await on_b.wait_for(lambda c: str(c.text) == "Ann on A. ")
        on_b.text.insert(len("Ann on A. "), "Bob on B.")
        await on_b.wait_saved()
        await on_a.wait_for(lambda c: str(c.text) == "Ann on A. Bob on B.")
        # whichever replica saves the text, the other hands over its writer's name within a few
        # rounds of upkeep; there is no event to wait on
        async with asyncio.timeout(20), httpx.AsyncClient(base_url=a, headers=ann) as http:
            while True:
                listed = (await http.get(f"/api/documents/{document}/revisions")).json()["revisions"]
                named = {name for version in listed for name in version["authors"]}
                if named == {"ann", "bob"}:
                    break
                assert named <= {"ann", "bob"}
                await asyncio.sleep(0.2)
    assert listed[0]["chars"] == len("Ann on A. Bob on B.")
