"""Who is signed in: `SessionBackend` reads the session cookie of every request and socket handshake
into an `Account` (Starlette's `request.user`), and `signed_in` is how a handler asks for it."""

from __future__ import annotations

import logging
from typing import Any

from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from server.auth.cookies import COOKIE, CookieSigner, session_hash
from server.errors import DATABASE_DOWN, DatabaseUnavailable, Unauthenticated, unavailable
from server.services import services
from storage import accounts
from storage.models import UserRead

log = logging.getLogger(__name__)

PUBLIC_PREFIXES = ("/static/", "/healthz", "/readyz")


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
