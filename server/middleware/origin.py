"""Whether a request comes from a page of this server: the defence against cross-site WebSocket
hijacking and cross-site request forgery. Browsers send `Origin` on every WebSocket handshake and
on every POST, PATCH and DELETE (with `Referer` as the older fallback).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from server.errors import api_error

audit = logging.getLogger("cowrite.audit")

SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def is_own(connection: HTTPConnection, url: str) -> bool:
    """True when `url` names this server's own scheme and host (as the request reached it)."""
    parsed = urlsplit(url)
    own_scheme = SCHEMES.get(connection.url.scheme, connection.url.scheme)
    own_host = connection.headers.get("host", "")
    return parsed.scheme == own_scheme and bool(own_host) and parsed.netloc.lower() == own_host.lower()


def same_origin(connection: HTTPConnection) -> bool:
    """For sockets: True when `Origin` is absent (not a browser) or names this server."""
    origin = connection.headers.get("origin")
    return origin is None or is_own(connection, origin)


class CsrfGuard:
    """403 for a state-changing request whose Origin (or, without one, Referer) is not this server,
    or that carries neither."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        source = connection.headers.get("origin") or connection.headers.get("referer")
        if source is None or not is_own(connection, source):
            audit.warning(
                "refused %s %s from %s: origin %r",
                scope["method"],
                scope["path"],
                connection.client.host if connection.client else "unknown",
                source,
            )
            reason = "missing Origin and Referer" if source is None else "cross-site request"
            response = api_error(403, "csrf", f"{reason}: state-changing requests must come from this site")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
