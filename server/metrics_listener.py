"""Where `GET /metrics` is answered, never openly on the public port: a listener of its own on
`metrics_host:metrics_port` (localhost by default), and/or the public port behind a bearer token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.errors import api_error
from server.metrics import Metrics
from server.services import services
from server.settings import Settings

log = logging.getLogger(__name__)

PATH = "/metrics"


def scrape(metrics: Metrics, request: Request) -> Response:
    body, content_type = metrics.render(request.headers.get("accept", ""))
    return Response(body, media_type=content_type)


def bearer_matches(header: str, token: str) -> bool:
    """Whether an Authorization header carries `token` as a bearer token, compared in constant time
    (no timing tells a guesser how much of it was right)."""
    scheme, _, given = header.partition(" ")
    # always compare, even after a wrong scheme, so a malformed header takes as long as a wrong token
    matches = hmac.compare_digest(given.strip().encode(), token.encode())
    return scheme.lower() == "bearer" and matches


async def public_metrics(request: Request) -> Response:
    """`GET /metrics` on the public port, for a scraper that cannot reach a private address."""
    found = services(request)
    token = found.settings.metrics_token
    assert token is not None, "the route exists only when COWRITE_METRICS_TOKEN is set"
    if not bearer_matches(request.headers.get("authorization", ""), token):
        response = api_error(401, "unauthenticated", "metrics need the bearer token")
        response.headers["www-authenticate"] = 'Bearer realm="metrics"'
        return response
    return scrape(found.metrics, request)


def public_routes(settings: Settings) -> list[BaseRoute]:
    """`/metrics` for the public app: there only with a token; without one the public port has no
    such page (404)."""
    return [Route(PATH, public_metrics)] if settings.metrics_token else []


def listener_app(metrics: Metrics) -> Starlette:
    """The metrics listener's app: `GET /metrics` and nothing else."""

    async def metrics_page(request: Request) -> Response:
        return scrape(metrics, request)

    return Starlette(routes=[Route(PATH, metrics_page)])


class _Server(uvicorn.Server):
    """uvicorn serving beside the public server in the same process and loop."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # the public server owns the process's signals; this one stops when the app's lifespan ends
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


class MetricsListener:
    """A second uvicorn on `host:port` serving only `GET /metrics`; an async context manager."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MetricsListener:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("metrics listener already started; call stop() first")
        # bound here, not by uvicorn, which would exit the whole process on a port in use
        listening = bind(self.host, self.port)
        config = uvicorn.Config(
            listener_app(self.metrics),
            lifespan="off",
            log_config=None,  # the app's logging stays as the process set it up
            access_log=False,  # a scrape every few seconds is not news
            proxy_headers=False,
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[listening]), name="cowrite-metrics")
        ready = asyncio.create_task(server.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            listening.close()
            await task  # raises what stopped it
            raise RuntimeError(f"the metrics listener on {self.host}:{self.port} stopped during start-up")
        self._server, self._task = server, task
        log.info("metrics on http://%s:%d%s", self.host, self.port, PATH)

    async def stop(self) -> None:
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        server.should_exit = True
        await task


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port`; RuntimeError that names the setting if it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
        listening.listen()
    except OSError as exc:
        listening.close()
        raise RuntimeError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}); "
            "set COWRITE_METRICS_PORT to a free port (0 turns the metrics listener off)"
        ) from exc
    return listening


def listener_for(settings: Settings, metrics: Metrics) -> AbstractAsyncContextManager[object]:
    """The metrics listener the settings ask for; nothing to run when `metrics_port` is 0."""
    if settings.metrics_port == 0:
        return contextlib.nullcontext()
    return MetricsListener(metrics, settings.metrics_host, settings.metrics_port)
