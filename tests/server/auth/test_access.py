"""The authorization matrix: every HTTP route and socket, for everyone who might ask.

Each entry names what one route answers to anonymous visitors, a signed-in non-member, and the
document's viewer, commenter, editor and owner: an HTTP status, or a socket's close code ("open" when it is
served). A route added to the app without an entry here fails `test_every_route_has_an_entry`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from harness.accounts import PASSWORD, account
from server.app import create_app
from server.settings import Settings
from streaming.loader import LoadedModel

IDENTITIES = ("anonymous", "outsider", "viewer", "commenter", "editor", "owner")
USERS = {"outsider": "nina", "viewer": "vic", "commenter": "cora", "editor": "ed", "owner": "olga"}
OPEN = "open"
ORIGIN = {"origin": "http://testserver"}


@dataclass
class Case:
    """What the request for one route looks like, given a fresh document `d` (see `fresh`)."""

    method: str
    path: Callable[[dict[str, Any]], str]
    body: Callable[[dict[str, Any]], Any] | None = None


def doc(suffix: str = "") -> Callable[[dict[str, Any]], str]:
    return lambda d: f"/api/documents/{d['id']}{suffix}"


# (method, route path) -> (the request, expected answer per identity in IDENTITIES order)
MATRIX: dict[tuple[str, str], tuple[Case, tuple[Any, ...]]] = {
    ("GET", "/healthz"): (Case("GET", lambda d: "/healthz"), (200, 200, 200, 200, 200, 200)),
    ("GET", "/readyz"): (Case("GET", lambda d: "/readyz"), (200, 200, 200, 200, 200, 200)),
    ("POST", "/v1/completions"): (
        Case("POST", lambda d: "/v1/completions", lambda d: {"prompt": "Once", "max_tokens": 1}),
        (401, 200, 200, 200, 200, 200),
    ),
    ("GET", "/v1/models"): (Case("GET", lambda d: "/v1/models"), (401, 200, 200, 200, 200, 200)),
    ("GET", "/api/auth/status"): (Case("GET", lambda d: "/api/auth/status"), (200, 200, 200, 200, 200, 200)),
    ("POST", "/api/auth/signup"): (
        Case(
            "POST", lambda d: "/api/auth/signup", lambda d: {"username": d["new_user"], "password": PASSWORD}
        ),
        (201, 201, 201, 201, 201, 201),
    ),
    ("POST", "/api/auth/signin"): (
        Case("POST", lambda d: "/api/auth/signin", lambda d: {"username": "nina", "password": PASSWORD}),
        (200, 200, 200, 200, 200, 200),
    ),
    ("POST", "/api/auth/signout"): (
        Case("POST", lambda d: "/api/auth/signout"),
        (204, 204, 204, 204, 204, 204),
    ),
    # each identity changes its own password to the same one (the case's body uses the shared one)
    ("POST", "/api/auth/password"): (
        Case(
            "POST",
            lambda d: "/api/auth/password",
            lambda d: {"current_password": PASSWORD, "new_password": PASSWORD},
        ),
        (401, 204, 204, 204, 204, 204),
    ),
    ("GET", "/api/documents"): (Case("GET", lambda d: "/api/documents"), (401, 200, 200, 200, 200, 200)),
    ("POST", "/api/documents"): (
        Case("POST", lambda d: "/api/documents", lambda d: {"title": "New"}),
        (401, 201, 201, 201, 201, 201),
    ),
    ("GET", "/api/documents/{doc_id}"): (Case("GET", doc()), (401, 404, 200, 200, 200, 200)),
    ("PATCH", "/api/documents/{doc_id}"): (
        Case("PATCH", doc(), lambda d: {"text": "Changed."}),
        (401, 404, 403, 403, 200, 200),
    ),
    ("DELETE", "/api/documents/{doc_id}"): (Case("DELETE", doc()), (401, 404, 403, 403, 403, 204)),
    ("GET", "/api/documents/{doc_id}/export.md"): (
        Case("GET", doc("/export.md")),
        (401, 404, 200, 200, 200, 200),
    ),
    # export and import (server/api/exports.py, server/api/imports.py): every reader exports; anyone signed
    # in imports a file (the JSON string body is a valid .md file) as a new document of their own
    ("GET", "/api/documents/{doc_id}/export.txt"): (
        Case("GET", doc("/export.txt")),
        (401, 404, 200, 200, 200, 200),
    ),
    ("GET", "/api/documents/{doc_id}/export.html"): (
        Case("GET", doc("/export.html")),
        (401, 404, 200, 200, 200, 200),
    ),
    ("GET", "/api/documents/{doc_id}/export.docx"): (
        Case("GET", doc("/export.docx")),
        (401, 404, 200, 200, 200, 200),
    ),
    ("POST", "/api/documents/import"): (
        Case("POST", lambda d: "/api/documents/import?name=imported.md", lambda d: "Imported text."),
        (401, 201, 201, 201, 201, 201),
    ),
    ("GET", "/api/documents/{doc_id}/revisions"): (
        Case("GET", doc("/revisions")),
        (401, 404, 200, 200, 200, 200),
    ),
    ("POST", "/api/documents/{doc_id}/revisions/{revision_id:int}/restore"): (
        Case("POST", lambda d: f"/api/documents/{d['id']}/revisions/{d['revision']}/restore"),
        (401, 404, 403, 403, 200, 200),
    ),
    # version history (docs/history.md): read a version, keep the text as one, name one
    ("GET", "/api/documents/{doc_id}/revisions/{revision_id:int}"): (
        Case("GET", lambda d: f"/api/documents/{d['id']}/revisions/{d['revision']}"),
        (401, 404, 200, 200, 200, 200),
    ),
    ("POST", "/api/documents/{doc_id}/revisions"): (
        Case("POST", doc("/revisions"), lambda d: {"name": "sent to editor"}),
        (401, 404, 403, 403, 201, 201),
    ),
    ("PATCH", "/api/documents/{doc_id}/revisions/{revision_id:int}"): (
        Case(
            "PATCH", lambda d: f"/api/documents/{d['id']}/revisions/{d['revision']}", lambda d: {"name": "v1"}
        ),
        (401, 404, 403, 403, 200, 200),
    ),
    ("GET", "/api/documents/{doc_id}/suggestions"): (
        Case("GET", doc("/suggestions")),
        (401, 404, 200, 200, 200, 200),
    ),
    ("GET", "/api/documents/{doc_id}/members"): (
        Case("GET", doc("/members")),
        (401, 404, 200, 200, 200, 200),
    ),
    ("POST", "/api/documents/{doc_id}/members"): (
        Case("POST", doc("/members"), lambda d: {"username": "zed", "role": "viewer"}),
        (401, 404, 403, 403, 403, 201),
    ),
    ("PATCH", "/api/documents/{doc_id}/members/{username}"): (
        Case("PATCH", doc("/members/vic"), lambda d: {"role": "editor"}),
        (401, 404, 403, 403, 403, 200),
    ),
    # the target is the viewer: for the viewer this is leaving, which anyone may do
    ("DELETE", "/api/documents/{doc_id}/members/{username}"): (
        Case("DELETE", doc("/members/vic")),
        (401, 404, 204, 403, 403, 204),
    ),
    ("GET", "/api/documents/{doc_id}/links"): (Case("GET", doc("/links")), (401, 404, 403, 403, 403, 200)),
    ("POST", "/api/documents/{doc_id}/links"): (
        Case("POST", doc("/links"), lambda d: {"role": "viewer"}),
        (401, 404, 403, 403, 403, 201),
    ),
    ("DELETE", "/api/documents/{doc_id}/links/{link_id:int}"): (
        Case("DELETE", lambda d: f"/api/documents/{d['id']}/links/{d['link_id']}"),
        (401, 404, 403, 403, 403, 204),
    ),
    # a share link is for whoever holds it; anonymous holders sign in first
    ("GET", "/s/{token}"): (
        Case("GET", lambda d: f"/s/{d['token']}"),
        ((303, "/signin?next=/s/"), 200, 200, 200, 200, 200),
    ),
    ("POST", "/s/{token}"): (
        Case("POST", lambda d: f"/s/{d['token']}"),
        ((303, "/signin?next=/s/"), (303, "/d/"), (303, "/d/"), (303, "/d/"), (303, "/d/"), (303, "/d/")),
    ),
    ("GET", "/"): (Case("GET", lambda d: "/"), ((303, "/signin?next=/"), 200, 200, 200, 200, 200)),
    ("GET", "/d/{doc_id}"): (
        Case("GET", lambda d: f"/d/{d['id']}"),
        ((303, "/signin?next=/d/"), 404, 200, 200, 200, 200),
    ),
    ("GET", "/signin"): (Case("GET", lambda d: "/signin"), (200, 200, 200, 200, 200, 200)),
    ("GET", "/signup"): (Case("GET", lambda d: "/signup"), (200, 200, 200, 200, 200, 200)),
    ("GET", "/static/{path}"): (Case("GET", lambda d: "/static/app.css"), (200, 200, 200, 200, 200, 200)),
    ("WS", "/ws/suggest/{doc_id}"): (
        Case("WS", lambda d: f"/ws/suggest/{d['id']}"),
        (4401, 4404, 4403, 4403, OPEN, OPEN),
    ),
    ("WS", "/ws/doc/{doc_id}"): (
        Case("WS", lambda d: f"/ws/doc/{d['id']}"),
        (4401, 4404, OPEN, OPEN, OPEN, OPEN),
    ),
    # finding and organising (server/api/library.py): search and tags see what each one may read; the
    # trash is its owner's alone, and a document in it is not found by anyone else
    ("GET", "/api/search"): (Case("GET", lambda d: "/api/search?q=kept"), (401, 200, 200, 200, 200, 200)),
    ("GET", "/api/tags"): (Case("GET", lambda d: "/api/tags"), (401, 200, 200, 200, 200, 200)),
    ("PUT", "/api/documents/{doc_id}/tags"): (
        Case("PUT", doc("/tags"), lambda d: {"tags": ["draft"]}),
        (401, 404, 403, 403, 200, 200),
    ),
    ("GET", "/api/trash"): (Case("GET", lambda d: "/api/trash"), (401, 200, 200, 200, 200, 200)),
    ("POST", "/api/trash/{doc_id}/restore"): (
        Case("POST", lambda d: f"/api/trash/{d['trash']()}/restore"),
        (401, 404, 404, 404, 404, 204),
    ),
    ("DELETE", "/api/trash/{doc_id}"): (
        Case("DELETE", lambda d: f"/api/trash/{d['trash']()}"),
        (401, 404, 404, 404, 404, 204),
    ),
    # comments (server/api/comments.py): every member reads them, commenters and up write and resolve;
    # the comment in `fresh` is cora's, so she and the owner may delete it, the editor may not
    ("GET", "/api/documents/{doc_id}/comments"): (
        Case("GET", doc("/comments")),
        (401, 404, 200, 200, 200, 200),
    ),
    ("POST", "/api/documents/{doc_id}/comments"): (
        Case(
            "POST", doc("/comments"), lambda d: {"body": "Hm?", "anchor_start": "AQ==", "anchor_end": "Ag=="}
        ),
        (401, 404, 403, 201, 201, 201),
    ),
    ("PATCH", "/api/documents/{doc_id}/comments/{comment_id:int}"): (
        Case(
            "PATCH",
            lambda d: f"/api/documents/{d['id']}/comments/{d['comment']}",
            lambda d: {"resolved": True},
        ),
        (401, 404, 403, 200, 200, 200),
    ),
    ("DELETE", "/api/documents/{doc_id}/comments/{comment_id:int}"): (
        Case("DELETE", lambda d: f"/api/documents/{d['id']}/comments/{d['comment']}"),
        (401, 404, 403, 204, 403, 204),
    ),
}


def app_routes(routes: list[Any], prefix: str = "") -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Route):
            found |= {(m, prefix + route.path) for m in route.methods or () if m != "HEAD"}
        elif isinstance(route, WebSocketRoute):
            found.add(("WS", prefix + route.path))
        elif isinstance(route, Mount):
            inner = getattr(route.app, "routes", None)
            found |= app_routes(inner, prefix + route.path) if inner else {("GET", route.path + "/{path}")}
        else:
            raise AssertionError(f"a route of a kind this test does not know: {route!r}")
    return found


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, loaded_model: LoadedModel
) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("matrix")
    app = create_app(replace(settings, data_dir=data, database_url=None), loaded_model)
    with TestClient(app, headers=ORIGIN) as test_client:
        for username in ("olga", *(u for u in USERS.values() if u != "olga"), "zed"):
            account(test_client, username)
        yield test_client


counter = iter(range(10**6))
sessions: dict[str, dict[str, str]] = {}  # username -> headers; argon2 makes signing in slow on purpose
ENDS_SESSIONS = {
    ("POST", "/api/auth/signin"),
    ("POST", "/api/auth/signout"),
    ("POST", "/api/auth/signup"),
    ("POST", "/api/auth/password"),
}


def signed_in_as(client: TestClient, username: str) -> dict[str, str]:
    if username not in sessions:
        sessions[username] = account(client, username)
    return sessions[username]


def fresh(client: TestClient) -> dict[str, Any]:
    """A new document of olga's with ed as editor, cora as commenter, vic as viewer, a revision and
    a share link."""
    olga = signed_in_as(client, "olga")
    d: dict[str, Any] = client.post("/api/documents", json={"title": "Matrix"}, headers=olga).json()
    for username, role in (("ed", "editor"), ("cora", "commenter"), ("vic", "viewer")):
        added = client.post(
            f"/api/documents/{d['id']}/members", json={"username": username, "role": role}, headers=olga
        )
        assert added.status_code == 201
    client.patch(f"/api/documents/{d['id']}", json={"text": "Kept."}, headers=olga)
    d["revision"] = client.get(f"/api/documents/{d['id']}/revisions", headers=olga).json()["revisions"][0][
        "id"
    ]
    link = client.post(f"/api/documents/{d['id']}/links", json={"role": "viewer"}, headers=olga).json()
    d["link_id"], d["token"] = link["id"], link["token"]
    d["new_user"] = f"newcomer{next(counter)}"
    # comments: a thread of cora's
    comment = {"body": "Why?", "anchor_start": "AQ==", "anchor_end": "Ag==", "quote": "Kept"}
    made = client.post(
        f"/api/documents/{d['id']}/comments", json=comment, headers=signed_in_as(client, "cora")
    )
    assert made.status_code == 201
    d["comment"] = made.json()["id"]

    # for the trash's routes: the owner moves the document to the trash, and its id is the path's
    def trash() -> str:
        assert client.delete(f"/api/documents/{d['id']}", headers=olga).status_code == 204
        return str(d["id"])

    d["trash"] = trash
    return d


def answer(client: TestClient, case: Case, d: dict[str, Any], headers: dict[str, str]) -> Any:
    path = case.path(d)
    if case.method == "WS":
        try:
            with client.websocket_connect(path, headers=headers) as ws:
                first = ws.receive()  # the server speaks first: `hello`, or its sync step 1
                return first["code"] if first["type"] == "websocket.close" else OPEN
        except WebSocketDisconnect as closed:
            return closed.code
    body = case.body(d) if case.body else None
    response = client.request(case.method, path, json=body, headers=headers, follow_redirects=False)
    if response.status_code == 303:
        return (303, response.headers["location"])
    return response.status_code


def test_every_route_has_an_entry(client: TestClient) -> None:
    routes = app_routes(client.app.routes)  # type: ignore[attr-defined]
    assert routes - MATRIX.keys() == set(), "routes without an entry in the authorization matrix"
    assert MATRIX.keys() - routes == set(), "matrix entries for routes that no longer exist"


@pytest.mark.parametrize("route", list(MATRIX), ids=[f"{m} {p}" for m, p in MATRIX])
def test_the_authorization_matrix(client: TestClient, route: tuple[str, str]) -> None:
    case, expected = MATRIX[route]
    for identity, wanted in zip(IDENTITIES, expected):
        d = fresh(client)  # a destructive request must not spoil the next identity's
        client.cookies.clear()
        headers = dict(ORIGIN) if identity == "anonymous" else signed_in_as(client, USERS[identity])
        got = answer(client, case, d, headers)
        if route in ENDS_SESSIONS and identity != "anonymous":
            sessions.pop(USERS[identity])  # that request signed this identity out, or in anew
        if isinstance(wanted, tuple):
            assert isinstance(got, tuple) and got[0] == wanted[0] and got[1].startswith(wanted[1]), (
                f"{route} as {identity}: expected {wanted}, got {got}"
            )
        else:
            assert got == wanted, f"{route} as {identity}: expected {wanted}, got {got}"
