"""Accounts for tests: sign people up through the real API and act as them. `http` is an httpx
client or Starlette's TestClient (built on a copy of httpx, hence `Any`)."""

from __future__ import annotations

from typing import Any

import httpx

from server.auth.cookies import COOKIE

PASSWORD = "a long enough passphrase"


def origin_of(http: Any) -> str:
    return str(http.base_url).rstrip("/")


def account(http: Any, username: str, password: str = PASSWORD) -> dict[str, str]:
    """Sign `username` up (or in, if the account exists) through the API; returns the headers that
    make a request or socket handshake act as them. The client's own cookie jar is left as it was."""
    jar = http.cookies
    http.cookies = {}
    try:
        body = {"username": username, "password": password}
        headers = {"origin": origin_of(http)}
        response = http.post("/api/auth/signup", json=body, headers=headers)
        if response.status_code == 409:
            response = http.post("/api/auth/signin", json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        token = response.cookies[COOKIE]
    finally:
        http.cookies = jar
    return {"cookie": f"{COOKIE}={token}", "origin": origin_of(http)}


def sign_in_client(http: Any, username: str, password: str = PASSWORD) -> None:
    """Make `http` itself act as `username` (its cookie jar holds the session)."""
    headers = account(http, username, password)
    http.cookies.set(COOKIE, headers["cookie"].split("=", 1)[1])
    http.headers["origin"] = headers["origin"]


async def account_async(http: Any, username: str, password: str = PASSWORD) -> dict[str, str]:
    """`account` for an `httpx.AsyncClient`."""
    body = {"username": username, "password": password}
    headers = {"origin": origin_of(http)}
    response = await http.post("/api/auth/signup", json=body, headers=headers)
    if response.status_code == 409:
        response = await http.post("/api/auth/signin", json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    http.cookies.clear()  # the caller passes the returned headers explicitly
    return {"cookie": f"{COOKIE}={response.cookies[COOKIE]}", "origin": origin_of(http)}


def shared_document(url: str, owner: dict[str, str], editor: str, title: str = "Shared") -> str:
    """A new document of `owner`'s (headers from `account`) that `editor` may edit; its id."""
    created = httpx.post(f"{url}/api/documents", json={"title": title}, headers=owner)
    assert created.status_code == 201, created.text
    document = str(created.json()["id"])
    invite = {"username": editor, "role": "editor"}
    added = httpx.post(f"{url}/api/documents/{document}/members", json=invite, headers=owner)
    assert added.status_code == 201, added.text
    return document
