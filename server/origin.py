"""Whether a connection comes from a page of this server: the defence against cross-site WebSocket
hijacking. Browsers always send `Origin` on a WebSocket handshake; other clients usually don't.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def same_origin(connection: HTTPConnection) -> bool:
    """True when `Origin` is absent (not a browser) or names this server's own scheme and host."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    parsed = urlsplit(origin)
    own_scheme = SCHEMES.get(connection.url.scheme, connection.url.scheme)
    own_host = connection.headers.get("host", "")
    return parsed.scheme == own_scheme and parsed.netloc.lower() == own_host.lower()
