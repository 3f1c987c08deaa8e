"""`WS /ws/suggest/{doc_id}`: one writer's suggestion channel for one document.

One reader task parses frames and starts generations; one writer task sends frames; they are
joined by a bounded stream and ended together. A new `suggest` supersedes the previous one inside
the engine (same session key: user, document and the page's tab); a closed socket cancels what it
started and frees the session's cached KV. The user is the engine's owner key: past the user's
share of the model a `suggest` ends with `done` / `busy`.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette import status
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.auth.access import admit_socket, registered
from server.errors import WS_4403_FORBIDDEN
from server.limits import IdleTimer, idle_close
from server.services import services
from server.sockets import SESSION_ENDED
from server.suggest.policy import Policy, final_text, to_request
from server.suggest.protocol import (
    Cancel,
    Feedback,
    Prime,
    ProtocolError,
    Suggest,
    parse,
    server_frame,
)
from storage import notes as suggestion_notes
from storage import suggestions
from storage.models import Outcome, Role, SuggestionCreate
from streaming.errors import InvalidRequest
from streaming.jobs import Generation
from streaming.params import Completion, GenerationRequest, Status

log = logging.getLogger(__name__)

OUTBOX_SIZE = 256
REMEMBERED_IDS = 64  # client ids kept for late feedback
OUTCOMES = {
    Status.FINISHED: Outcome.SHOWN,
    Status.LENGTH: Outcome.SHOWN,
    Status.STOP: Outcome.SHOWN,
    Status.UNSURE: Outcome.SHOWN,
    Status.SENTENCE: Outcome.SHOWN,
    Status.TIME: Outcome.SHOWN,
    Status.CANCELLED: Outcome.CANCELLED,
    Status.SUPERSEDED: Outcome.SUPERSEDED,
    Status.BUSY: Outcome.BUSY,
    Status.LIMITED: Outcome.BUSY,
    Status.ERROR: Outcome.ERROR,
}
# the socket's `done` reasons: the user's share of the model being taken reads as `busy`
REASONS = {Status.LIMITED: "busy"}
Frame = dict[str, Any]


NOTES_FRESH_S = 2.0  # a socket re-reads the document's notes at most this often, not per keystroke
# the page's tab id (`?tab=`), part of the engine session key; anything else counts as no tab
TAB_ID = re.compile(r"^[A-Za-z0-9_-]{0,32}$")


class SuggestionSocket:
    """The state of one open suggestion socket."""

    def __init__(self, websocket: WebSocket, document_id: str, user: str, tab: str = "") -> None:
        found = services(websocket)
        self.websocket = websocket
        self.engine = found.engine
        self.store = found.store
        self.model = found.model
        self.limiter = found.suggestion_limiter
        self.metrics = found.metrics
        settings = found.settings
        self.frame_limit = settings.frame_limit_kb << 10
        self.idle_timeout_s = settings.idle_timeout_s
        self.policy = Policy.from_settings(settings)
        self.document_id = document_id
        self.user = user
        # one writer's two tabs on one document must not supersede each other's suggestions; a tab
        # keeps its id across reconnects, so its cached context survives them
        self.session = f"{user}:{document_id}:{tab}"
        self.live: dict[str, Generation] = {}
        self.stored: OrderedDict[str, int] = OrderedDict()  # client id -> suggestion id
        self._group: TaskGroup | None = None
        self.notes = ""
        self.notes_read_at = -NOTES_FRESH_S  # monotonic seconds; never read yet
        self.closing: tuple[int, str] | None = None  # set when the server ends the socket

    def role_changed(self, role: Role | None) -> None:
        """The owner changed this user's role: only editors and the owner get suggestions."""
        if role is not None and role.allows(Role.EDITOR):
            return
        self.closing = (WS_4403_FORBIDDEN, "your access to this document changed")
        if self._group is not None:
            self._group.cancel_scope.cancel()

    def session_ended(self) -> None:
        """The user signed out (or was signed out): stop reading and generating, close with 4401."""
        self.closing = SESSION_ENDED
        if self._group is not None:
            self._group.cancel_scope.cancel()

    async def serve(self) -> None:
        send, receive = anyio.create_memory_object_stream[Frame](OUTBOX_SIZE)
        try:
            async with send, anyio.create_task_group() as group:
                self._group = group
                group.start_soon(self._write, receive)
                try:
                    await send.send(
                        server_frame(
                            "hello",
                            document=self.document_id,
                            model=self.model.name,
                            device=str(self.model.device),
                            dtype=str(self.model.dtype).removeprefix("torch."),
                        )
                    )
                    await self._read(group, send)
                finally:
                    group.cancel_scope.cancel()
        finally:
            # every generation of this socket was cancelled with its task: its cached context can go
            self.engine.close_session(self.session)

    async def _write(self, outbox: MemoryObjectReceiveStream[Frame]) -> None:
        async with outbox:
            async for frame in outbox:
                try:
                    await self.websocket.send_json(frame)
                except WebSocketDisconnect:
                    # the client went away while we were sending: end the socket, quietly
                    assert self._group is not None
                    self._group.cancel_scope.cancel()
                    await anyio.sleep_forever()

    async def _read(self, group: TaskGroup, send: MemoryObjectSendStream[Frame]) -> None:
        idle = IdleTimer(self.idle_timeout_s)
        while True:
            message = await idle.receive(self.websocket)
            if message is None:
                self.closing = idle_close(self.idle_timeout_s)
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await send.send(ProtocolError("bad_json", "frames must be JSON text").frame())
                continue
            if len(text.encode()) > self.frame_limit:
                self.closing = (status.WS_1009_MESSAGE_TOO_BIG, f"frame larger than {self.frame_limit} bytes")
                return
            try:
                request = parse(text)
                if isinstance(request, Suggest | Prime):
                    idle.touch()  # only suggestion requests are activity
                if isinstance(request, Suggest):
                    await self._start(request, group, send)
                elif isinstance(request, Prime):
                    await self._prime(request, group)
                elif isinstance(request, Cancel):
                    self._cancel(request)
                else:
                    await self._feedback(request)
            except ProtocolError as error:
                await send.send(error.frame())

    async def _start(self, message: Suggest, group: TaskGroup, send: MemoryObjectSendStream[Frame]) -> None:
        wait = await self.limiter.take(self.user)
        if wait > 0:
            self.metrics.refused("suggestions")
            raise ProtocolError(
                "rate_limited",
                "too many suggestion requests; wait a moment",
                message.id,
                retry_after_ms=round(wait * 1000),
            )
        request = to_request(message, self.session, self.user, await self._notes(), self.policy)
        if request is None:
            # nothing before the cursor to continue, or no prose goes here: nothing, at once
            group.start_soon(
                send.send,
                server_frame(
                    "done",
                    id=message.id,
                    reason="finished",
                    suggestion=None,
                    ttft_ms=None,
                    alternatives=[],
                    shortened=False,
                ),
            )
            return
        try:
            generation = await self.engine.submit(request)
        except InvalidRequest as exc:
            raise ProtocolError("bad_message", str(exc), message.id) from None
        self.live[message.id] = generation
        group.start_soon(self._stream, message, request, generation, send)

    async def _prime(self, message: Prime, group: TaskGroup) -> None:
        """Prefill the session's KV with the context, generating one token that nobody sees."""
        if self.live or await self.limiter.take(self.user) > 0:
            return  # a suggestion is in flight and reading the context already, or too many lately
        suggest = Suggest(v=1, type="suggest", id="prime", before=message.before)
        request = to_request(suggest, self.session, self.user, await self._notes(), self.policy)
        if request is None:
            return
        try:
            generation = await self.engine.submit(replace(request, max_new_tokens=1, n=1))
        except InvalidRequest:
            return  # nobody waits for a prime's answer
        group.start_soon(_await_quietly, generation)

    async def _notes(self) -> str:
        """The document's notes for suggestions, read again when older than NOTES_FRESH_S."""
        now = time.monotonic()
        if now - self.notes_read_at >= NOTES_FRESH_S:
            self.notes = await self.store.run(suggestion_notes.notes_of, self.document_id)
            self.notes_read_at = now
        return self.notes

    def _cancel(self, message: Cancel) -> None:
        generation = self.live.get(message.id)
        if generation is not None:
            generation.cancel()
        elif message.id not in self.stored:
            raise ProtocolError("unknown_suggestion", "no suggestion with that id on this socket", message.id)

    async def _feedback(self, message: Feedback) -> None:
        suggestion_id = self.stored.get(message.id)
        if suggestion_id is None:
            raise ProtocolError("unknown_suggestion", "no suggestion with that id on this socket", message.id)
        outcome = Outcome(message.outcome)
        await self.store.run(
            suggestions.record_feedback, suggestion_id, outcome, message.accepted_chars, message.alternative
        )
        self.metrics.suggestion(outcome)

    async def _stream(
        self,
        message: Suggest,
        request: GenerationRequest,
        generation: Generation,
        send: MemoryObjectSendStream[Frame],
    ) -> None:
        try:
            async with generation:  # leaving early (socket closed) cancels it
                suggestion_id = await self.store.run(
                    suggestions.record_request,
                    SuggestionCreate(
                        document_id=self.document_id,
                        user=self.user,
                        context_chars=len(message.before),
                        params=message.settings.model_dump(),
                        model=self.model.name,
                        device=str(self.model.device),
                    ),
                )
                self._remember(message.id, suggestion_id)
                async for delta in generation:
                    frame = server_frame(
                        "delta", id=message.id, index=delta.index, text=delta.text, tokens=delta.tokens
                    )
                    await send.send(frame)
                completion = await generation.result()
        finally:
            self.live.pop(message.id, None)
        await self._finish(message, completion, suggestion_id, send)

    async def _finish(
        self,
        message: Suggest,
        completion: Completion,
        suggestion_id: int,
        send: MemoryObjectSendStream[Frame],
    ) -> None:
        texts = [final_text(a.text, message.before, self.notes) for a in completion.alternatives]
        outcome = OUTCOMES[completion.status]
        shown = any(texts)
        ttft_ms = None if completion.ttft_s is None or not shown else round(completion.ttft_s * 1000, 1)
        # a suggestion with no text is no suggestion: it has no timings to record
        total_ms = round(completion.total_s * 1000, 1) if shown else None
        await self.store.run(
            suggestions.record_result,
            suggestion_id,
            outcome,
            texts,
            ttft_ms,
            total_ms,
            sum(len(a.tokens) for a in completion.alternatives),
        )
        self.metrics.suggestion(outcome if shown or outcome is not Outcome.SHOWN else Outcome.EMPTY)
        alternatives = [
            {"index": a.index, "text": text, "reason": _reason(a.status or completion.status)}
            for a, text in zip(completion.alternatives, texts)
        ]
        await send.send(
            server_frame(
                "done",
                id=message.id,
                reason=_reason(completion.status),
                suggestion=suggestion_id,
                ttft_ms=ttft_ms,
                alternatives=alternatives,
                shortened=completion.shortened,
            )
        )

    def _remember(self, client_id: str, suggestion_id: int) -> None:
        self.stored[client_id] = suggestion_id
        while len(self.stored) > REMEMBERED_IDS:
            self.stored.popitem(last=False)


def _reason(status: Status) -> str:
    return REASONS.get(status, str(status))


async def _await_quietly(generation: Generation) -> None:
    """Wait for a generation that nobody reads (a prime); leaving early cancels it."""
    async with generation:
        await generation.result()


async def suggestion_socket(websocket: WebSocket) -> None:
    """Editors and owners only: a viewer's socket is closed with 4403."""
    admitted = await admit_socket(websocket, Role.EDITOR)
    if admitted is None:
        return
    account, _ = admitted
    document_id = websocket.path_params["doc_id"]
    tab = websocket.query_params.get("tab", "")
    socket = SuggestionSocket(websocket, document_id, account.username, tab if TAB_ID.match(tab) else "")
    async with registered(websocket, account, document_id, socket, "suggest") as counted:
        if counted:
            await socket.serve()


routes = [WebSocketRoute("/ws/suggest/{doc_id}", suggestion_socket)]
