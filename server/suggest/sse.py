"""Server-sent events, and noticing a client that goes away, without polling.

The response streams while a second task waits for `http.disconnect`; whichever ends first
cancels the other, and the event source is closed either way (so its generation is cancelled).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

T = TypeVar("T")


def sse_data(payload: object) -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {text}\n\n"


async def wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(work: Awaitable[T], receive: Receive) -> tuple[bool, T | None]:
    """Await `work` unless the client disconnects first; (True, result) or (False, None)."""
    outcome: list[T] = []

    async with anyio.create_task_group() as group:

        async def run() -> None:
            outcome.append(await work)
            group.cancel_scope.cancel()

        async def watch() -> None:
            await wait_for_disconnect(receive)
            group.cancel_scope.cancel()

        group.start_soon(run)
        group.start_soon(watch)
    return (True, outcome[0]) if outcome else (False, None)


class EventStreamResponse(StreamingResponse):
    """A `text/event-stream` response fed by an async iterator of ready-made SSE chunks."""

    def __init__(self, chunks: AsyncIterator[str]) -> None:
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        super().__init__(chunks, headers=headers, media_type="text/event-stream")
        self.chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_headers = self.raw_headers
        await send({"type": "http.response.start", "status": self.status_code, "headers": raw_headers})
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    async for chunk in self.chunks:
                        await send({"type": "http.response.body", "body": chunk.encode(), "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    group.cancel_scope.cancel()

                async def watch() -> None:
                    await wait_for_disconnect(receive)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                group.start_soon(watch)
        except* OSError:
            pass  # the client went away while we were writing; the source is closed below
        finally:
            with anyio.CancelScope(shield=True):
                closer: Any = getattr(self.chunks, "aclose", None)
                if closer is not None:
                    await closer()  # an async generator's `finally` cancels its generation
