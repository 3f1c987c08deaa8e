"""`BodyLimit`: a request body over the limit is refused with 413 whether it says its length or
streams it, and the document it was meant for is left as it was."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from harness.accounts import sign_in_client
from server.app import create_app
from server.settings import Settings
from streaming.loader import LoadedModel


@pytest.fixture
def tight(app_settings: Settings, loaded_model: LoadedModel) -> Iterator[TestClient]:
    with TestClient(create_app(replace(app_settings, request_limit_mb=1), loaded_model)) as client:
        sign_in_client(client, "alice")
        yield client


def test_a_request_body_over_the_limit_is_413_and_changes_nothing(tight: TestClient) -> None:
    document = tight.post("/api/documents", json={"title": "Kept"}).json()
    path = f"/api/documents/{document['id']}"
    big = json.dumps({"text": "x" * (1 << 20)}).encode()
    said = tight.patch(path, content=big, headers={"content-type": "application/json"})
    assert (said.status_code, said.json()["error"]["code"]) == (413, "too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body streams
        yield b'{"text": "'
        for _ in range(20):
            yield b"y" * 65536
        yield b'"}'

    streamed = tight.patch(path, content=chunks(), headers={"content-type": "application/json"})
    assert (streamed.status_code, streamed.json()["error"]["code"]) == (413, "too_large")
    assert tight.get(path).json()["text"] == ""
