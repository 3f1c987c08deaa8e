"""Cross-site WebSocket hijacking: a socket opened from another site's page is refused."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect


@pytest.fixture
def document_id(client: TestClient) -> str:
    return str(client.post("/api/documents", json={"title": "Mine"}).json()["id"])


@pytest.mark.parametrize("kind", ["suggest", "doc"])
@pytest.mark.parametrize(
    "origin", ["http://evil.example", "https://testserver", "http://testserver.evil.example"]
)
def test_a_cross_origin_socket_is_refused(
    client: TestClient, document_id: str, kind: str, origin: str
) -> None:
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect(f"/ws/{kind}/{document_id}", headers={"origin": origin}) as ws:
            ws.receive_bytes() if kind == "doc" else ws.receive_json()
    assert refused.value.code == 1008


@pytest.mark.parametrize("kind", ["suggest", "doc"])
@pytest.mark.parametrize("headers", [{"origin": "http://testserver"}, {}])
def test_the_servers_own_pages_and_non_browser_clients_connect(
    client: TestClient, document_id: str, kind: str, headers: dict[str, str]
) -> None:
    with client.websocket_connect(f"/ws/{kind}/{document_id}", headers=headers) as ws:
        first = ws.receive_bytes() if kind == "doc" else ws.receive_json()
    assert first
