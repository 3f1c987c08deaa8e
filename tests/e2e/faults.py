"""What the browser tests put between the page and the server: a TCP proxy that can stop
forwarding without closing anything, a document socket closed with a chosen code, and a place to
run asyncio clients (pycrdt collaborators) beside Playwright's synchronous API."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

T = TypeVar("T")
CHUNK = 65536


class LoopThread:
    """An asyncio event loop in a thread of its own, for coroutines a synchronous test drives."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LoopThread:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run `coroutine` on the loop and wait (at most `timeout` seconds) for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)


class StallingProxy:
    """Forwards TCP connections on a loopback port to `target_port`. `stall()` stops forwarding in
    both directions, holding every byte and closing nothing (a network that went silent); `resume()`
    forwards what was held and carries on. Connections accepted while stalled are held too."""

    def __init__(self, loop: LoopThread, target_port: int) -> None:
        self._loop = loop
        self._target_port = target_port
        self._flowing = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    def __enter__(self) -> StallingProxy:
        self._loop.run(self._start())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._loop.run(self._stop())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stall(self) -> None:
        self._loop.loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        self._loop.loop.call_soon_threadsafe(self._flowing.set)

    async def _start(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump(client_reader, upstream_writer))
                group.create_task(self._pump(upstream_reader, client_writer))
        except* (ConnectionError, OSError):
            pass  # either side went away: so does the other
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    writer.close()
                    try:
                        await writer.wait_closed()
                    except (ConnectionError, OSError):
                        pass
            self._connections.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(CHUNK):
            await self._flowing.wait()
            writer.write(data)
            await writer.drain()
        await self._flowing.wait()
        if writer.can_write_eof():
            writer.write_eof()


class SocketCloser:
    """What the closing middleware reads: `close_next_update(code)` makes the next document-socket
    message that carries an update (a sync step 2 or update, as the server refuses one) close
    that socket with `code` instead of reaching the server; `closed` lists the codes sent."""

    def __init__(self) -> None:
        self._code: int | None = None
        self._lock = threading.Lock()
        self.closed: list[int] = []
        self.opened = 0

    def close_next_update(self, code: int) -> None:
        with self._lock:
            self._code = code

    def take(self) -> int | None:
        with self._lock:
            code, self._code = self._code, None
            return code


class ClosingMiddleware:
    """ASGI middleware for document sockets, steered by a `SocketCloser`."""

    def __init__(self, app: ASGIApp, closer: SocketCloser) -> None:
        self.app = app
        self.closer = closer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or not scope["path"].startswith("/ws/doc/"):
            await self.app(scope, receive, send)
            return
        self.closer.opened += 1
        closed = False

        async def receive_or_close() -> Message:
            nonlocal closed
            message = await receive()
            payload = message.get("bytes") or b""
            carries_update = len(payload) > 2 and payload[0] == 0 and payload[1] in (1, 2)
            if message["type"] == "websocket.receive" and carries_update and not closed:
                code = self.closer.take()
                if code is not None:
                    closed = True
                    await send({"type": "websocket.close", "code": code, "reason": "closed by the test"})
                    self.closer.closed.append(code)
                    return {"type": "websocket.disconnect", "code": code}
            return message

        async def send_unless_closed(message: Message) -> None:
            if not closed:
                await send(message)

        await self.app(scope, receive_or_close, send_unless_closed)


class Tracker:
    """An HTTP server on a loopback port that answers 204 and counts the requests it gets: the
    place a hostile page element would fetch from."""

    def __init__(self) -> None:
        hits: list[str] = []
        self.hits = hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Tracker:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
