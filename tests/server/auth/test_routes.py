"""Accounts and sessions: sign-up, sign-in, sign-out, cookies, stored hashes, brute force, CSRF,
the first visit, and the admin command."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from harness.accounts import PASSWORD, account, account_async
from server import admin
from server.app import create_app
from server.auth.cookies import COOKIE, SECRET_FILE
from server.settings import Settings
from streaming.loader import LoadedModel
from tests.conftest import serve

ORIGIN = {"origin": "http://testserver"}


@pytest.fixture
def anonymous(app_settings: Settings, loaded_model: LoadedModel) -> Iterator[TestClient]:
    """A fresh server with no accounts, and a browser that is not signed in."""
    with TestClient(create_app(app_settings, loaded_model), headers=ORIGIN) as test_client:
        yield test_client


def credentials(username: str = "ann", password: str = PASSWORD) -> dict[str, str]:
    return {"username": username, "password": password}


def test_the_first_visit_goes_to_sign_up_and_the_first_account_is_admin(anonymous: TestClient) -> None:
    first = anonymous.get("/", follow_redirects=False)
    assert (first.status_code, first.headers["location"]) == (303, "/signup?next=/")
    assert anonymous.get("/api/auth/status").json() == {"user": None, "signup": "open", "first_run": True}
    assert anonymous.get("/signup").headers["content-type"].startswith("text/html")

    created = anonymous.post("/api/auth/signup", json=credentials("  Ann  "))
    assert created.status_code == 201 and created.json()["user"] == {"username": "ann", "is_admin": True}
    assert anonymous.get("/").status_code == 200
    status = anonymous.get("/api/auth/status").json()
    assert status["user"]["username"] == "ann" and not status["first_run"]

    anonymous.cookies.clear()
    later = anonymous.get("/d/anything?x=1", follow_redirects=False)
    assert (later.status_code, later.headers["location"]) == (303, "/signin?next=/d/anything%3Fx%3D1")
    second = anonymous.post("/api/auth/signup", json=credentials("bob"))
    assert second.json()["user"] == {"username": "bob", "is_admin": False}


def test_the_session_cookie_is_httponly_lax_and_secure_over_https(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    app = create_app(app_settings, loaded_model)
    with TestClient(app, headers=ORIGIN) as plain:
        cookie = plain.post("/api/auth/signup", json=credentials()).headers["set-cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie
    secure_origin = {"origin": "https://testserver"}
    with TestClient(app, base_url="https://testserver", headers=secure_origin) as https:
        cookie = https.post("/api/auth/signin", json=credentials()).headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_signing_in_rotates_the_session_and_signing_out_ends_it(anonymous: TestClient) -> None:
    anonymous.post("/api/auth/signup", json=credentials())
    first = anonymous.cookies[COOKIE]
    anonymous.post("/api/auth/signin", json=credentials())
    second = anonymous.cookies[COOKIE]
    assert second != first
    as_first = {**ORIGIN, "cookie": f"{COOKIE}={first}"}
    assert anonymous.get("/api/documents", headers=as_first).status_code == 401
    assert anonymous.get("/api/documents").status_code == 200

    assert anonymous.post("/api/auth/signout").status_code == 204
    as_second = {**ORIGIN, "cookie": f"{COOKIE}={second}"}
    assert anonymous.get("/api/documents", headers=as_second).status_code == 401


def test_a_forged_or_tampered_cookie_signs_nobody_in(anonymous: TestClient) -> None:
    anonymous.post("/api/auth/signup", json=credentials())
    session_id, mac = anonymous.cookies[COOKIE].rsplit(".", 1)
    anonymous.cookies.clear()
    for value in (f"{session_id}.{mac[:-2]}xx", f"x{session_id}.{mac}", session_id, "", "..."):
        response = anonymous.get("/api/documents", headers={**ORIGIN, "cookie": f"{COOKIE}={value}"})
        assert response.status_code == 401, value


def test_passwords_are_stored_only_as_argon2_hashes(anonymous: TestClient, app_settings: Settings) -> None:
    password = "hunter2-but-longer"
    anonymous.post("/api/auth/signup", json=credentials("ann", password))
    database = app_settings.data_dir / "cowrite.db"
    with sqlite3.connect(database) as connection:
        [(stored,)] = connection.execute("SELECT password_hash FROM users WHERE username = 'ann'")
        dump = "\n".join(connection.iterdump())
    assert stored.startswith("$argon2id$") and password not in stored
    assert password not in dump
    for path in app_settings.data_dir.glob("cowrite.db*"):  # the WAL too
        assert password.encode() not in path.read_bytes()


def test_the_secret_key_is_made_once_and_kept_private(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    create_app(app_settings, loaded_model)
    key_file = Path(app_settings.data_dir) / SECRET_FILE
    key = key_file.read_text()
    assert len(key) >= 32 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    create_app(app_settings, loaded_model)
    assert key_file.read_text() == key


def test_a_cookie_signed_with_another_key_is_refused(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    with TestClient(create_app(app_settings, loaded_model), headers=ORIGIN) as first:
        headers = account(first, "ann")
    other = replace(app_settings, secret_key="a completely different secret key")
    with TestClient(create_app(other, loaded_model), headers=ORIGIN) as second:
        assert second.get("/api/documents", headers=headers).status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"username": "a", "password": PASSWORD}, 400, "invalid"),
        ({"username": "no spaces", "password": PASSWORD}, 400, "invalid"),
        ({"username": "-dash", "password": PASSWORD}, 400, "invalid"),
        ({"username": "ann", "password": "short"}, 400, "invalid"),
        ({"username": "ann", "password": "x" * 1025}, 400, "invalid"),
        ({"username": "ann"}, 400, "invalid"),
        ({"username": "ann", "password": PASSWORD, "admin": True}, 400, "invalid"),
        ({"username": "taken", "password": PASSWORD}, 409, "username_taken"),
    ],
)
def test_bad_sign_ups_get_clear_errors(
    anonymous: TestClient, body: dict[str, object], status: int, code: str
) -> None:
    anonymous.post("/api/auth/signup", json=credentials("taken"))
    anonymous.cookies.clear()
    response = anonymous.post("/api/auth/signup", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert [u.username for u in admin_users(anonymous)] == ["taken"]


def admin_users(client: TestClient) -> list[object]:
    from storage import accounts

    users: list[object] = client.app.state.services.store.call(accounts.list_users)  # type: ignore[attr-defined]
    return users


def test_closed_sign_up_still_lets_the_first_account_in(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    closed = replace(app_settings, signup="closed")
    with TestClient(create_app(closed, loaded_model), headers=ORIGIN) as client:
        assert client.get("/api/auth/status").json()["signup"] == "open"
        assert client.post("/api/auth/signup", json=credentials("first")).status_code == 201
        client.cookies.clear()
        assert client.get("/api/auth/status").json()["signup"] == "closed"
        refused = client.post("/api/auth/signup", json=credentials("second"))
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "signup_closed")


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(anonymous: TestClient) -> None:
    anonymous.post("/api/auth/signup", json=credentials())
    anonymous.cookies.clear()
    wrong = anonymous.post("/api/auth/signin", json=credentials("ann", "not the password"))
    unknown = anonymous.post("/api/auth/signin", json=credentials("nobody", "not the password"))
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert COOKIE not in anonymous.cookies


def test_brute_force_sign_in_is_slowed_per_account_and_per_address(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    tight = replace(app_settings, signin_attempts=3, signin_attempts_per_address=5)
    with TestClient(create_app(tight, loaded_model), headers=ORIGIN) as client:
        client.post("/api/auth/signup", json=credentials())
        client.cookies.clear()
        answers = [client.post("/api/auth/signin", json=credentials("ann", f"guess {i}")) for i in range(4)]
        assert [a.status_code for a in answers] == [401, 401, 401, 429]
        assert int(answers[-1].headers["retry-after"]) > 0
        assert answers[-1].json()["error"]["retry_after_s"] > 0
        # the right password waits too, while the account is locked
        assert client.post("/api/auth/signin", json=credentials()).status_code == 429
        # other accounts from the same address: two more failures fill the address's allowance
        for name in ("bob", "cy"):
            assert client.post("/api/auth/signin", json=credentials(name, "guess")).status_code == 401
        assert client.post("/api/auth/signin", json=credentials("dee", "guess")).status_code == 429


def test_state_changing_requests_need_this_sites_origin_or_referer(client: TestClient) -> None:
    document = client.post("/api/documents", json={"title": "Mine"}).json()
    path = f"/api/documents/{document['id']}"
    for headers in (
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"origin": "https://testserver"},  # another scheme is another site
        {"origin": "", "referer": "http://evil.example/page"},
        {"origin": "", "referer": ""},
    ):
        for method, body in (("PATCH", {"title": "Hijacked"}), ("DELETE", None), ("POST", None)):
            target = "/api/documents" if method == "POST" else path
            response = client.request(method, target, json=body, headers=headers)
            assert (response.status_code, response.json()["error"]["code"]) == (403, "csrf"), headers
    assert client.get(path).json()["title"] == "Mine"
    # a Referer from this site is enough when a browser sends no Origin
    renamed = client.patch(
        path, json={"title": "Renamed"}, headers={"origin": "", "referer": "http://testserver/d/x"}
    )
    assert renamed.status_code == 200
    assert [d["title"] for d in client.get("/api/documents").json()["documents"]] == ["Renamed"]


def test_the_admin_command_creates_users_and_resets_passwords(
    app_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    loaded_model: LoadedModel,
) -> None:
    monkeypatch.setenv("COWRITE_DATA_DIR", str(app_settings.data_dir))

    def run(*args: str, password: str = "") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        return admin.main(list(args))

    assert run("create-user", "Root", "--password-stdin", password="first password") == 0
    assert run("create-user", "writer", "--password-stdin", password="second password") == 0
    assert run("create-user", "writer", "--password-stdin", password="third password") == 1
    assert run("create-user", "bad name", "--password-stdin", password="third password") == 2
    assert run("create-user", "short", "--password-stdin", password="short") == 2
    assert run("list-users") == 0
    out = capsys.readouterr()
    assert "root (admin)\nwriter\n" in out.out and "exists already" in out.err

    with TestClient(create_app(app_settings, loaded_model), headers=ORIGIN) as client:
        session = account(client, "writer", "second password")
        assert run("reset-password", "writer", "--password-stdin", password="a new password") == 0
        assert run("reset-password", "nobody", "--password-stdin", password="a new password") == 1
        assert client.get("/api/documents", headers=session).status_code == 401  # signed out
        assert (
            client.post("/api/auth/signin", json=credentials("writer", "second password")).status_code == 401
        )
        assert (
            client.post("/api/auth/signin", json=credentials("writer", "a new password")).status_code == 200
        )


def test_changing_ones_password_ends_the_other_sessions(anonymous: TestClient) -> None:
    anonymous.post("/api/auth/signup", json=credentials())
    other_browser = account(anonymous, "ann")
    change = {"current_password": PASSWORD, "new_password": "a brand new passphrase"}
    wrong = anonymous.post("/api/auth/password", json={**change, "current_password": "not it"})
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "bad_credentials")
    short = anonymous.post("/api/auth/password", json={**change, "new_password": "short"})
    assert short.status_code == 400

    before = anonymous.cookies[COOKIE]
    assert anonymous.post("/api/auth/password", json=change).status_code == 204
    assert anonymous.cookies[COOKIE] != before
    assert anonymous.get("/api/documents").status_code == 200  # this browser stays signed in
    assert anonymous.get("/api/documents", headers=other_browser).status_code == 401
    assert (
        anonymous.get("/api/documents", headers={**ORIGIN, "cookie": f"{COOKIE}={before}"}).status_code == 401
    )
    anonymous.cookies.clear()
    assert anonymous.post("/api/auth/signin", json=credentials()).status_code == 401
    assert (
        anonymous.post("/api/auth/signin", json=credentials("ann", "a brand new passphrase")).status_code
        == 200
    )


def test_sign_ups_per_address_are_limited(app_settings: Settings, loaded_model: LoadedModel) -> None:
    tight = replace(app_settings, signups_per_address=2)
    with TestClient(create_app(tight, loaded_model), headers=ORIGIN) as client:
        assert client.post("/api/auth/signup", json=credentials("one")).status_code == 201
        assert client.post("/api/auth/signup", json=credentials("one")).status_code == 409  # not counted
        assert client.post("/api/auth/signup", json=credentials("two")).status_code == 201
        third = client.post("/api/auth/signup", json=credentials("three"))
        assert (third.status_code, third.json()["error"]["code"]) == (429, "rate_limited")
        assert int(third.headers["retry-after"]) > 0
        assert [u.username for u in admin_users(client)] == ["one", "two"]


def test_password_hashing_runs_off_the_event_loop(
    anonymous: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argon2 takes ~0.2 s of CPU: on the event loop it would stall every socket meanwhile."""
    from server.auth import passwords

    where: list[str] = []

    def spying(real: Any) -> Any:
        def call(*args: Any) -> Any:
            try:
                asyncio.get_running_loop()
                where.append("event loop")
            except RuntimeError:
                where.append("worker thread")
            return real(*args)

        return call

    monkeypatch.setattr(passwords, "hash_password", spying(passwords.hash_password))
    monkeypatch.setattr(passwords, "verify_password", spying(passwords.verify_password))
    anonymous.post("/api/auth/signup", json=credentials())
    anonymous.post("/api/auth/signin", json=credentials())
    anonymous.post("/api/auth/signin", json=credentials("nobody"))
    change = {"current_password": PASSWORD, "new_password": "another passphrase"}
    assert anonymous.post("/api/auth/password", json=change).status_code == 204
    assert where == ["worker thread"] * 5


# Simultaneous attempts, through a real uvicorn: each is counted before its password is hashed,
# so no more than the limit can be answered for real while the first ones are still hashing.

SIMULTANEOUS = 60


async def all_at_once(url: str, path: str, bodies: list[dict[str, str]], cookie: str = "") -> Counter[int]:
    """POST every body at once; how many got each status."""
    headers = {"origin": url, **({"cookie": cookie} if cookie else {})}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http:
        answers = await asyncio.gather(*(http.post(path, json=body) for body in bodies))
    return Counter(answer.status_code for answer in answers)


@pytest.mark.parametrize(
    ("who", "limit"),
    [("one account", "signin_attempts"), ("many accounts", "signin_attempts_per_address")],
)
async def test_simultaneous_wrong_sign_ins_cannot_pass_the_limit(
    app_settings: Settings, loaded_model: LoadedModel, who: str, limit: str
) -> None:
    with serve(create_app(app_settings, loaded_model)) as url:
        async with asyncio.timeout(240):
            await all_at_once(url, "/api/auth/signup", [credentials()])
            names = ["ann"] * SIMULTANEOUS if who == "one account" else [f"u{i}" for i in range(SIMULTANEOUS)]
            guesses = [credentials(name, "not the password") for name in names]
            answered = await all_at_once(url, "/api/auth/signin", guesses)
            allowed = getattr(app_settings, limit)
            assert answered == {401: allowed, 429: SIMULTANEOUS - allowed}
            # the account stays locked against the right password too
            right = await all_at_once(url, "/api/auth/signin", [credentials()])
            assert right == {429: 1}


async def test_simultaneous_wrong_password_changes_cannot_pass_the_limit(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    with serve(create_app(app_settings, loaded_model)) as url:
        async with asyncio.timeout(240), httpx.AsyncClient(base_url=url) as http:
            ann = await account_async(http, "ann")
            change = {"current_password": "not it", "new_password": "a brand new passphrase"}
            answered = await all_at_once(url, "/api/auth/password", [change] * SIMULTANEOUS, ann["cookie"])
    allowed = app_settings.signin_attempts
    assert answered == {403: allowed, 429: SIMULTANEOUS - allowed}


async def test_simultaneous_sign_ups_cannot_pass_the_limit(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    tight = replace(app_settings, signups_per_address=5)
    with serve(create_app(tight, loaded_model)) as url:
        async with asyncio.timeout(240):
            bodies = [credentials(f"new{i}") for i in range(SIMULTANEOUS)]
            answered = await all_at_once(url, "/api/auth/signup", bodies)
    assert answered == {201: 5, 429: SIMULTANEOUS - 5}


async def test_simultaneous_sign_ups_of_one_name_make_one_account(
    app_settings: Settings, loaded_model: LoadedModel
) -> None:
    """Each passes the "taken?" check before any is stored: the database's refusal is a 409 too."""
    with serve(create_app(app_settings, loaded_model)) as url:
        async with asyncio.timeout(240):
            answered = await all_at_once(url, "/api/auth/signup", [credentials("twin")] * 8)
    assert answered.get(201) == 1 and answered.get(409) == 7, answered
