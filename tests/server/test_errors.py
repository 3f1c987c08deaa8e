"""`read_body` and the app's one answer to `InvalidBody`, through the real app: every bad body is a
400 `invalid` whose message names what is wrong, and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from starlette.testclient import TestClient

from harness.accounts import sign_in_client
from server.app import create_app
from server.settings import Settings
from storage.models import TITLE_MAX, VERSION_NAME_MAX
from streaming.loader import LoadedModel

pytestmark = pytest.mark.timeout(120)

# deeper than Python's parser goes, as an array and as an object
DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a": ' * 100_000 + b"1" + b"}" * 100_000


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, loaded_model: LoadedModel
) -> Iterator[TestClient]:
    """One app for the module (every request here is refused, so the tests cannot disturb each
    other), signed in as "alice"."""
    app_settings = replace(settings, data_dir=tmp_path_factory.mktemp("errors"), database_url=None)
    with TestClient(create_app(app_settings, loaded_model)) as test_client:
        sign_in_client(test_client, "alice")
        yield test_client


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    """A document with a title, text and notes, and a named version of it."""
    created = client.post("/api/documents", json={"title": "Kept"})
    assert created.status_code == 201, created.text
    path = f"/api/documents/{created.json()['id']}"
    changed = client.patch(path, json={"text": "Kept text.", "notes": "Kept notes."})
    assert changed.status_code == 200, changed.text
    assert client.post(f"{path}/revisions", json={"name": "kept"}).status_code == 201
    found: dict[str, Any] = client.get(path).json()
    return found


def refused(client: TestClient, method: str, path: str, raw: bytes) -> str:
    """Send `raw` as a JSON body; the message of the 400 `invalid` it gets, in the one error shape."""
    response = client.request(method, path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"  # through the middleware as ever
    body = response.json()
    assert list(body) == ["error"] and sorted(body["error"]) == ["code", "message"]
    assert body["error"]["code"] == "invalid"
    message: str = body["error"]["message"]
    return message


def listed(client: TestClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get("/api/documents").json()["documents"]
    return found


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"title": "unfinished', "the body must be JSON"),
        (b"\xff\xfe\x00", "the body must be JSON"),
        (b'["title"]', "body: Input should be a valid dictionary or object to extract fields from"),
        (b'"Chapter One"', "body: Input should be a valid dictionary or object to extract fields from"),
        (b'{"title": "T", "colour": "red"}', "colour: Extra inputs are not permitted"),
        (b'{"title": 7}', "title: Input should be a valid string"),
        (b'{"title": ""}', "title: String should have at least 1 character"),
        (
            b'{"title": "' + b"x" * (TITLE_MAX + 1) + b'"}',
            f"title: String should have at most {TITLE_MAX} characters",
        ),
        (DEEP_ARRAY, "the body is nested too deeply"),
        (DEEP_OBJECT, "the body is nested too deeply"),
    ],
)
def test_a_bad_body_is_refused_naming_what_is_wrong(client: TestClient, raw: bytes, message: str) -> None:
    before = listed(client)
    assert refused(client, "POST", "/api/documents", raw) == message
    assert listed(client) == before


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_a_number_that_is_not_finite_is_refused(
    client: TestClient, document: dict[str, Any], number: bytes
) -> None:
    path = f"/api/documents/{document['id']}/links"
    raw = b'{"role": "viewer", "expires_in_days": ' + number + b"}"
    assert refused(client, "POST", path, raw) == "expires_in_days: Input should be a finite number"
    assert client.get(path).json() == {"links": []}


def test_an_empty_body_reads_as_an_empty_object(client: TestClient) -> None:
    created = client.post("/api/documents", content=b"", headers={"content-type": "application/json"})
    assert created.status_code == 201, created.text
    assert created.json()["title"] == "Untitled"
    assert client.delete(f"/api/documents/{created.json()['id']}").status_code == 204


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json}", "the body must be JSON"),
        (DEEP_OBJECT, "the body is nested too deeply"),
        (b'[{"title": "New"}]', "body: Input should be a valid dictionary or object to extract fields from"),
        (b'{"title": "New", "text": "New text.", "colour": 1}', "colour: Extra inputs are not permitted"),
        (b'{"title": "", "text": "New text."}', "title: String should have at least 1 character"),
        (b'{"title": "New", "text": NaN}', "text: Input should be a valid string"),
        # the notes are checked after the model, before anything is stored
        (
            b'{"title": "New", "text": "New text.", "notes": "a\\u0007bell"}',
            "notes: control characters are not allowed (line breaks and tabs are)",
        ),
    ],
)
def test_a_bad_patch_leaves_the_stored_document_as_it_was(
    client: TestClient, document: dict[str, Any], raw: bytes, message: str
) -> None:
    path = f"/api/documents/{document['id']}"
    assert refused(client, "PATCH", path, raw) == message
    assert client.get(path).json() == document


@pytest.mark.parametrize(
    ("method", "raw", "message"),
    [
        # a model's own refusals are answered in their own words
        ("POST", b'["name"]', "the body must be a JSON object"),
        ("POST", b'{"name": "ok", "zeta": 1, "colour": 2}', "colour: unknown field"),
        ("POST", b'{"reason": "autosave", "name": 7}', "reason: one of named, before-restore"),
        ("POST", b"{}", "name: required"),
        ("POST", b'{"name": "' + b"x" * (VERSION_NAME_MAX + 1) + b'"}', "name: at most 80 characters"),
        ("POST", b'{"name": "   "}', "name: must not be empty"),
        ("PATCH", b"7", "the body must be a JSON object"),
        ("PATCH", b'{"reason": "named"}', "reason: unknown field"),
        ("PATCH", b"{}", "name: required (null to clear it)"),
        ("PATCH", b'{"name": Infinity}', "name: must be a string"),
        ("PATCH", b'{"name": "line\\nbreak"}', "name: no control characters or line breaks"),
        # and the parser's the same as everywhere
        ("PATCH", b'{"name": ', "the body must be JSON"),
        ("POST", DEEP_ARRAY, "the body is nested too deeply"),
    ],
)
def test_a_version_body_is_refused_in_its_own_words(
    client: TestClient, document: dict[str, Any], method: str, raw: bytes, message: str
) -> None:
    path = f"/api/documents/{document['id']}/revisions"
    before = client.get(path).json()
    target = path if method == "POST" else f"{path}/{before['revisions'][0]['id']}"
    assert refused(client, method, target, raw) == message
    assert client.get(path).json() == before
