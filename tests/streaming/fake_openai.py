"""A scripted OpenAI-compatible completions server, as vLLM, TGI or llama.cpp's server would answer:
it ignores Cowrite's fields, notes every request it was sent, and when each client went away."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import httpx
from starlette.types import Receive, Scope, Send


@dataclass
class Answer:
    """One scripted answer: a status, then `parts` as they are (bytes) or as SSE events (a payload,
    or "[DONE]"); `hold` keeps the stream open until the client goes away."""

    status: int = 200
    parts: Iterable[bytes | str | dict[str, Any]] = ()
    hold: bool = False
    content_type: str = "text/event-stream"


@dataclass
class Call:
    """A request the server got, and whether its client went away before the answer was complete."""

    path: str
    headers: dict[str, str]
    body: Any
    gone: threading.Event = field(default_factory=threading.Event)


def chunk(text: str, index: int = 0, finish: str | None = None) -> dict[str, Any]:
    """A streamed completion chunk as OpenAI servers send it (no Cowrite fields)."""
    choice = {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
    return {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": 0,
        "model": "fake",
        "choices": [choice],
    }


def streamed(*texts: str, finish: str = "length") -> list[bytes | str | dict[str, Any]]:
    """A whole, well-formed stream of `texts`."""
    return [*(chunk(t) for t in texts), chunk("", finish=finish), "[DONE]"]


def endless(text: str) -> Iterator[dict[str, Any]]:
    while True:
        yield chunk(text)


class FakeOpenAI:
    """The server's ASGI app, its script (`answers`, used in order) and what it saw (`calls`)."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.calls: list[Call] = []
        self.models: Any = {"object": "list", "data": [{"id": "fake-model", "owned_by": "fake"}]}  # None: 404

    def completions(self) -> list[Call]:
        return [c for c in self.calls if c.path == "/v1/completions"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        call = Call(scope["path"], headers, json.loads(raw) if raw else None)
        self.calls.append(call)
        if scope["path"] == "/v1/models":
            listing = json.dumps(self.models if self.models is not None else {"error": "no such route"})
            status = 200 if self.models is not None else 404
            answer = Answer(status, [listing.encode()], content_type="application/json")
        elif self.answers:
            answer = self.answers.pop(0)
        else:
            answer = Answer(parts=streamed(" fine"))
        await self._answer(answer, call, receive, send)

    async def _answer(self, answer: Answer, call: Call, receive: Receive, send: Send) -> None:
        complete = False

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not complete:
                call.gone.set()
            group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            headers = [(b"content-type", answer.content_type.encode())]
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            for part in answer.parts:
                await send({"type": "http.response.body", "body": _encode(part), "more_body": True})
                await anyio.lowlevel.checkpoint()  # let the watcher see a client that went away
            if answer.hold:
                await anyio.sleep_forever()
            complete = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            group.cancel_scope.cancel()


def _encode(part: bytes | str | dict[str, Any]) -> bytes:
    if isinstance(part, bytes):
        return part
    data = part if isinstance(part, str) else json.dumps(part)
    return f"data: {data}\n\n".encode()


COWRITE_REQUEST_FIELDS = ("heal", "prefix", "owner")
COWRITE_CHOICE_FIELDS = ("tokens", "token_ids", "status")


class Foreign:
    """A real model behind a server that knows OpenAI's fields only: it forwards to a Cowrite engine
    without Cowrite's request fields, and drops Cowrite's fields from the chunks it streams back."""

    def __init__(self, upstream: str, token: str) -> None:
        self.upstream = upstream
        self.token = token
        self.bodies: list[Any] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/v1/models":  # its own list: not Cowrite's, which names the device
            listing = json.dumps({"object": "list", "data": [{"id": "proxied", "owned_by": "someone"}]})
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": listing.encode()})
            return
        body = json.loads(raw) if raw else None
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k not in COWRITE_REQUEST_FIELDS}
        self.bodies.append(body)
        headers = {"authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.upstream, headers=headers, timeout=60) as http:
            async with http.stream(scope["method"], scope["path"], json=body) as response:
                kind = response.headers.get("content-type", "application/json").encode()
                start = {"type": "http.response.start", "status": response.status_code}
                await send({**start, "headers": [(b"content-type", kind)]})
                pending = b""
                async for part in response.aiter_bytes():
                    pending += part
                    while b"\n\n" in pending:
                        event, pending = pending.split(b"\n\n", 1)
                        await send({"type": "http.response.body", "body": _plain(event), "more_body": True})
                await send({"type": "http.response.body", "body": pending, "more_body": False})


def _plain(event: bytes) -> bytes:
    data = event.decode().removeprefix("data: ")
    if data.startswith("{"):
        payload = json.loads(data)
        for choice in payload.get("choices", []):
            for name in COWRITE_CHOICE_FIELDS:
                choice.pop(name, None)
        data = json.dumps(payload)
    return f"data: {data}\n\n".encode()
