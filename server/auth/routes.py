"""Accounts and sessions: argon2 passwords, a signed session cookie, sign-up / sign-in / sign-out.

The cookie holds a random session id and its HMAC under the server's secret key; the database
keeps only the id's SHA-256, so neither a stolen database nor a forged cookie signs anyone in.
Signing in always issues a new id (and ends the browser's previous one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from server.errors import (
    DATABASE_DOWN,
    DatabaseUnavailable,
    Unauthenticated,
    api_error,
    invalid,
    read_json,
    unavailable,
)
from server.limits import LiveSockets
from server.services import services
from server.settings import Settings
from storage import accounts
from storage.accounts import UsernameTaken
from storage.database import Store
from storage.models import UserRead, utcnow

log = logging.getLogger(__name__)
audit = logging.getLogger("cowrite.audit")

COOKIE = "cowrite_session"
SECRET_FILE = "secret_key"
USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,31}$")
USERNAME_RULE = "2 to 32 characters: lowercase letters, digits, '_', '.', '-'; first a letter or digit"
PASSWORD_MIN, PASSWORD_MAX = 8, 1024  # the upper bound keeps hashing cheap to refuse
PUBLIC_PREFIXES = ("/static/", "/healthz", "/readyz")
PASSWORD_WORKERS = 2  # argon2 hashes at once (each 64 MiB); more wait their turn

hasher = PasswordHasher()
# verified against when the username is unknown, so that answer takes as long as a wrong password
_DUMMY_HASH = hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return hasher.hash(password)


async def hashed(request: Request, password: str) -> str:
    """`hash_password` on a worker thread: argon2 takes a fifth of a second of CPU and 64 MiB,
    which on the event loop would stall every socket. At most `PASSWORD_WORKERS` run at once."""
    limiter = services(request).password_limiter
    return await anyio.to_thread.run_sync(hash_password, password, limiter=limiter)


async def verified(request: Request, password_hash: str, password: str) -> bool:
    """`verify_password` on a worker thread, like `hashed`."""
    limiter = services(request).password_limiter
    return await anyio.to_thread.run_sync(verify_password, password_hash, password, limiter=limiter)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def load_secret_key(settings: Settings) -> bytes:
    """The key that signs cookies: the setting if given, else a file in the data folder, made
    (readable by its owner only) on first run."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = Path(settings.data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class CookieSigner:
    key: bytes

    def sign(self, session_id: str) -> str:
        return f"{session_id}.{self._mac(session_id)}"

    def unsign(self, value: str) -> str | None:
        """The session id, if the value carries this server's signature."""
        session_id, _, mac = value.rpartition(".")
        if not session_id or not hmac.compare_digest(mac, self._mac(session_id)):
            return None
        return session_id

    def _mac(self, session_id: str) -> str:
        digest = hmac.new(self.key, session_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class Account(BaseUser):
    """A signed-in user, as Starlette's `request.user`."""

    def __init__(self, user: UserRead, session_hash: str) -> None:
        self.username = user.username
        self.is_admin = user.is_admin
        self.session_hash = session_hash

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.username

    def public(self) -> dict[str, Any]:
        return {"username": self.username, "is_admin": self.is_admin}


class SessionBackend(AuthenticationBackend):
    """Reads the session cookie of every request and socket handshake."""

    def __init__(self, signer: CookieSigner) -> None:
        self.signer = signer

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        raw = conn.cookies.get(COOKIE)
        if not raw or conn.url.path.startswith(PUBLIC_PREFIXES):
            return None
        session_id = self.signer.unsign(raw)
        if session_id is None:
            return None
        store = services(conn).store
        digest = session_hash(session_id)
        try:
            user = await store.run(accounts.session_user, digest)
        except DATABASE_DOWN as exc:
            raise DatabaseUnavailable("the session could not be looked up") from exc
        if user is None:
            return None
        return AuthCredentials(["authenticated"]), Account(user, digest)


class SessionMiddleware(AuthenticationMiddleware):
    """Starlette's authentication with `SessionBackend`, answering 503 while the database is
    unreachable (a JSON error, or a socket's handshake denied with it) rather than a 500."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await super().__call__(scope, receive, watched)
        except DatabaseUnavailable:
            if started:
                raise
            log.warning("refused %s %s: the database is unavailable", scope["type"], scope["path"])
            if scope["type"] == "websocket":
                await WebSocket(scope, receive, send).send_denial_response(unavailable())
            else:
                await unavailable()(scope, receive, send)


def signed_in(conn: HTTPConnection) -> Account:
    """The connection's account; Unauthenticated (401, or close 4401) when there is none."""
    user = conn.scope.get("user")
    if not isinstance(user, Account):
        raise Unauthenticated()
    return user


def client_address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(max_length=64)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)

    @field_validator("username")
    @classmethod
    def normal_username(cls, value: str) -> str:
        return value.strip().lower()


class NewAccount(Credentials):
    password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)

    @field_validator("username")
    @classmethod
    def valid_username(cls, value: str) -> str:
        value = value.strip().lower()
        if not USERNAME.match(value):
            raise ValueError(USERNAME_RULE)
        return value


def validate_username(username: str) -> str:
    """The normal form of a username, or ValueError saying what is allowed (the admin command)."""
    try:
        return NewAccount(username=username, password="x" * PASSWORD_MIN).username
    except ValidationError as exc:
        raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


def validate_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValueError(f"a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    return password


# handlers


def _settings(request: Request) -> Settings:
    settings = services(request).settings
    return settings


def _store(request: Request) -> Store:
    store = services(request).store
    return store


def _sockets(request: Request) -> LiveSockets:
    sockets = services(request).sockets
    return sockets


async def status(request: Request) -> Response:
    """Public: who is signed in, whether sign-up is open, whether any account exists yet."""
    user = request.scope.get("user")
    count = await _store(request).run(accounts.count_users)
    return JSONResponse(
        {
            "user": user.public() if isinstance(user, Account) else None,
            "signup": "open" if _settings(request).signup == "open" or count == 0 else "closed",
            "first_run": count == 0,
        }
    )


async def signup(request: Request) -> Response:
    try:
        data = NewAccount.model_validate(await read_json(request))
    except (ValidationError, ValueError) as exc:
        return invalid(exc)
    store = _store(request)
    if _settings(request).signup != "open" and await store.run(accounts.count_users) > 0:
        return api_error(403, "signup_closed", "sign-up is closed here; ask an admin for an account")
    limiter = services(request).signup_limiter
    address = client_address(request)
    key = f"address:{address}"
    reserved = await limiter.reserve(key)  # before the hash, so simultaneous sign-ups count each other
    if reserved is None:
        services(request).metrics.refused("signup")
        audit.warning("signup refused (rate limited) address=%s", address)
        return rate_limited(await limiter.retry_after(key), "too many new accounts from this address")
    try:
        if await store.run(accounts.get_user, data.username) is not None:
            raise UsernameTaken(data.username)  # known before spending a hash on it
        user = await store.run(accounts.create_user, data.username, await hashed(request, data.password))
    except UsernameTaken:
        await limiter.release(reserved, key)  # no account was made
        return api_error(409, "username_taken", "that username is taken")
    audit.info("signup user=%s address=%s admin=%s", user.username, address, user.is_admin)
    response = JSONResponse({"user": user.model_dump()}, status_code=201)
    await _start_session(request, response, user.username)
    return response


async def signin(request: Request) -> Response:
    try:
        data = Credentials.model_validate(await read_json(request))
    except (ValidationError, ValueError) as exc:
        return invalid(exc)
    limiter = services(request).signin_limiter
    address = client_address(request)
    keys = (f"account:{data.username}", f"address:{address}")
    # counted as a failure before the hash: simultaneous guesses cannot all pass one check
    reserved = await limiter.reserve(*keys)
    if reserved is None:
        services(request).metrics.refused("signin")
        audit.warning("signin refused (rate limited) user=%s address=%s", data.username, address)
        return rate_limited(await limiter.retry_after(*keys))
    user = await _store(request).run(accounts.get_user, data.username)
    ok = await verified(request, user.password_hash if user else _DUMMY_HASH, data.password)
    services(request).metrics.signin(ok and user is not None)
    if not ok or user is None:  # an unknown user was verified against the dummy hash
        audit.warning("signin failed user=%s address=%s", data.username, address)
        return api_error(401, "bad_credentials", "wrong username or password")
    await limiter.forget(keys[0])
    await limiter.release(reserved, keys[1])  # not a failure after all
    audit.info("signin user=%s address=%s", user.username, address)
    response = JSONResponse({"user": {"username": user.username, "is_admin": user.is_admin}})
    await _start_session(request, response, user.username)
    return response


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    new_password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)


async def change_password(request: Request) -> Response:
    """The signed-in user changes their own password: every other session of theirs ends, and this
    browser gets a new one. The current password is checked under the sign-in limits."""
    account = signed_in(request)
    try:
        data = PasswordChange.model_validate(await read_json(request))
    except (ValidationError, ValueError) as exc:
        return invalid(exc)
    limiter = services(request).signin_limiter
    address = client_address(request)
    keys = (f"account:{account.username}", f"address:{address}")
    reserved = await limiter.reserve(*keys)  # as for sign-in: counted before the hash
    if reserved is None:
        services(request).metrics.refused("signin")  # the same attempts, the same limit
        return rate_limited(await limiter.retry_after(*keys))
    store = _store(request)
    user = await store.run(accounts.get_user, account.username)
    if user is None or not await verified(request, user.password_hash, data.current_password):
        audit.warning("password change refused user=%s address=%s", account.username, address)
        return api_error(403, "bad_credentials", "the current password is wrong")
    await limiter.release(reserved, *keys)
    await store.run(accounts.set_password_hash, account.username, await hashed(request, data.new_password))
    await _sockets(request).end_sessions_of(account.username)  # every session of the account ended
    audit.info("password changed user=%s address=%s", account.username, address)
    response = Response(status_code=204)
    await _start_session(request, response, account.username)
    return response


async def signout(request: Request) -> Response:
    user = request.scope.get("user")
    response = Response(status_code=204)
    if isinstance(user, Account):
        await _store(request).run(accounts.end_session, user.session_hash)
        await _sockets(request).end_session(user.session_hash)
        audit.info("signout user=%s", user.username)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response


def rate_limited(wait: int, what: str = "too many sign-in attempts") -> JSONResponse:
    wait = max(1, wait)
    message = f"{what}; try again in {wait} s"
    body = {"error": {"code": "rate_limited", "message": message, "retry_after_s": wait}}
    return JSONResponse(body, status_code=429, headers={"retry-after": str(wait)})


async def _start_session(request: Request, response: Response, username: str) -> None:
    """A fresh session id for this browser, as a signed HttpOnly cookie; the old id stops working."""
    settings = _settings(request)
    session_id = secrets.token_urlsafe(32)
    previous = request.scope.get("user")
    lifetime = timedelta(days=settings.session_days)
    await _store(request).run(
        accounts.start_session,
        session_hash(session_id),
        username,
        utcnow() + lifetime,
        client_address(request),
        previous.session_hash if isinstance(previous, Account) else None,
    )
    if isinstance(previous, Account):
        await _sockets(request).end_session(previous.session_hash)  # the browser's previous session ended
    signer = services(request).signer
    response.set_cookie(
        COOKIE,
        signer.sign(session_id),
        max_age=int(lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


routes = [
    Route("/api/auth/status", status, methods=["GET"]),
    Route("/api/auth/signup", signup, methods=["POST"]),
    Route("/api/auth/signin", signin, methods=["POST"]),
    Route("/api/auth/signout", signout, methods=["POST"]),
    Route("/api/auth/password", change_password, methods=["POST"]),
]
