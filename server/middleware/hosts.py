"""Which host names this server answers to: the defence against DNS rebinding.

A page on `evil.example` whose name is re-pointed at this server's address sends `Host:
evil.example` and an Origin to match, so the Origin checks alone would let it in. Every request
and socket handshake must therefore name one of the allowed hosts (`COWRITE_ALLOWED_HOSTS`).
"""

from __future__ import annotations

import ipaddress
import logging
import socket

from starlette import status
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from server.errors import api_error
from server.settings import Settings

audit = logging.getLogger("cowrite.audit")

# always answered: a browser sends these only when its user typed them, never after a rebinding
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})


def machine_names() -> set[str]:
    """This machine's host name, its fully qualified name and the addresses they resolve to."""
    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    for name in list(names):
        try:
            found = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except OSError:  # a name that does not resolve here is still a name people may use
            continue
        names.update(str(address[4][0]).lower() for address in found)
    return names


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The host names to answer (without ports); None answers any (`COWRITE_ALLOWED_HOSTS=*`).

    By default: the address the server is bound to (for 0.0.0.0 or ::, the machine's names and
    their addresses) and the loopback names, which are always allowed."""
    configured = {name.strip().lower() for name in settings.allowed_hosts.split(",") if name.strip()}
    if "*" in configured:
        return None
    if configured:
        return frozenset(configured | LOOPBACK)
    if settings.host in ANY_ADDRESS:
        return frozenset(machine_names() | LOOPBACK)
    return frozenset({settings.host.lower().strip("[]")} | LOOPBACK)


def host_name(value: str) -> str | None:
    """The name in a Host header without its port (an IPv6 address without its brackets); None
    when the header is not a host name at all."""
    value = value.strip().lower()
    if value.startswith("["):  # an IPv6 address: [::1]:8000
        address, closed, rest = value[1:].partition("]")
        if not address or not closed or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            return None
        return address
    name, _, port = value.partition(":")
    if not name or not port.isdigit() and port != "":
        return None
    return name


def is_address_of(name: str, server_host: str) -> bool:
    """Whether `name` is an IP literal for the address the connection arrived at."""
    try:
        named, arrived = ipaddress.ip_address(name), ipaddress.ip_address(server_host)
    except ValueError:
        return False
    if isinstance(arrived, ipaddress.IPv6Address) and arrived.ipv4_mapped is not None:
        return named == arrived.ipv4_mapped  # an IPv4 client of a dual-stack socket
    return named == arrived


class HostGuard:
    """400 for a request or socket handshake whose Host is not an allowed name. The address the
    connection arrived at is accepted too when it is named as an IP literal (health checks that
    dial an address): a page can only send that Host when its own address is this server's."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str] | None) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allowed is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = Headers(scope=scope).get("host", "")
        name = host_name(raw)
        if name is not None and self.allows(name, scope):
            await self.app(scope, receive, send)
            return
        audit.warning("refused %s %s for host %r", scope["type"], scope["path"], raw[:100])
        response = api_error(400, "bad_host", "this server does not answer to that host name")
        if scope["type"] == "http":
            await response(scope, receive, send)
        elif "websocket.http.response" in scope.get("extensions", {}):
            await receive()  # websocket.connect
            await response(scope, receive, send)  # sent as the handshake's answer
        else:
            await receive()
            await send({"type": "websocket.close", "code": status.WS_1008_POLICY_VIOLATION, "reason": ""})

    def allows(self, name: str, scope: Scope) -> bool:
        assert self.allowed is not None
        if name in self.allowed:
            return True
        server = scope.get("server")
        return server is not None and is_address_of(name, str(server[0]))
