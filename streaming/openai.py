"""The OpenAI-compatible completions API as `RemoteEngine` speaks it: the request body for a
`GenerationRequest`, server-sent events read within bounds, and the chunks and errors they carry.

Cowrite's extensions travel as extra fields that `cowrite serve-engine` honours and other servers
(vLLM, TGI, llama.cpp's server) ignore: `heal`, `prefix`, `owner` and the endings (`min_prob`,
`span`, `no_repeat_ngram`, ...) in the request; `tokens`, `token_ids` and `status` in a choice.
Everything here is correct without them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streaming.params import MAX_ALTERNATIVES, MAX_NEW_TOKENS, Endings, GenerationRequest, Status

MAX_USER_CHARS = 128  # what Cowrite's own `/v1/completions` takes in `user`
MAX_MESSAGE_CHARS = 500  # of an error message passed on from the engine
# finish reasons as OpenAI servers spell them; Cowrite's own `status` says more when it is there
FINISHES = {
    "stop": Status.FINISHED,
    "eos_token": Status.FINISHED,  # TGI
    "stop_sequence": Status.STOP,  # TGI
    "length": Status.LENGTH,
    "cancelled": Status.CANCELLED,
    "superseded": Status.SUPERSEDED,
}
# the statuses an engine may end an alternative with in a stream (refusals come as HTTP statuses)
STREAM_STATUSES = frozenset(
    {
        Status.FINISHED,
        Status.LENGTH,
        Status.TIME,
        Status.STOP,
        Status.UNSURE,
        Status.SENTENCE,
        Status.CANCELLED,
        Status.SUPERSEDED,
    }
)


class UpstreamError(Exception):
    """The engine's answer broke the protocol or its bounds; the request ends with `error`."""


def upstream_user(session: str) -> str:
    """The `user` field for a session key: the key itself, or a digest of a longer one (stable,
    so that the engine still reuses the session's prefix)."""
    if len(session) <= MAX_USER_CHARS:
        return session
    return "sha256:" + hashlib.sha256(session.encode()).hexdigest()


def request_body(request: GenerationRequest, model: str | None) -> dict[str, Any]:
    """The streaming `/v1/completions` body for `request`.

    A `prefix` is put back at the end of the prompt: a server that ignores the `prefix` field
    continues after it, which is the text the request asks for; `serve-engine` cuts it off again
    and has the model spell it out (token healing's older form).
    """
    body: dict[str, Any] = {
        "prompt": request.prompt + request.prefix,
        "max_tokens": request.max_new_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "n": request.n,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if model is not None:
        body["model"] = model
    if request.top_k:
        body["top_k"] = request.top_k
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    if request.keep_session:  # a `user` keeps its context cached on the engine for the next request
        body["user"] = upstream_user(request.session)
    if request.heal:
        body["heal"] = True
    if request.prefix:
        body["prefix"] = request.prefix
    if request.owner:
        body["owner"] = request.owner
    # the endings that differ from the defaults; `repetition_penalty` is vLLM's and TGI's name too
    body |= {k: v for k, v in Endings.of(request).fields().items() if v != getattr(Endings(), k)}
    return body


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on what is read from the engine for one request."""

    line_bytes: int  # one line, and one event's data
    total_bytes: int  # the whole answer
    text_chars: int  # one alternative's text

    @classmethod
    def for_request(cls, request: GenerationRequest) -> ReadLimits:
        # an OpenAI chunk is a few hundred bytes, Cowrite's last one per alternative carries its token
        # ids; a token is a few characters of text, rarely dozens
        return cls(
            line_bytes=64 << 10,
            total_bytes=(64 << 10) + request.n * request.max_new_tokens * 1024,
            text_chars=256 + request.max_new_tokens * 64,
        )


async def sse_data(chunks: AsyncIterator[bytes], limits: ReadLimits) -> AsyncIterator[str]:
    """The `data` of each server-sent event in `chunks`; UpstreamError past the limits."""
    buffer = bytearray()
    data: list[str] = []
    size = total = 0

    def take(line: str) -> str | None:
        """Note one line; the event's data when the line ends an event."""
        nonlocal data, size
        if not line:  # a blank line ends an event
            event = "\n".join(data) if data else None
            data, size = [], 0
            return event
        field, _, value = line.partition(":")
        if field == "data":
            value = value.removeprefix(" ")
            size += len(value) + 1
            if size > limits.line_bytes:
                raise UpstreamError(f"the engine sent an event over {limits.line_bytes} bytes")
            data.append(value)
        # comments (": ..."), `event:`, `id:` and `retry:` lines carry nothing we use
        return None

    async for chunk in chunks:
        total += len(chunk)
        if total > limits.total_bytes:
            raise UpstreamError(f"the engine sent more than {limits.total_bytes} bytes")
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            event = take(bytes(buffer[:end]).rstrip(b"\r").decode("utf-8", errors="replace"))
            del buffer[: end + 1]
            if event is not None:
                yield event
        if len(buffer) > limits.line_bytes:
            raise UpstreamError(f"the engine sent a line over {limits.line_bytes} bytes")
    # a stream that ends without the line break, or the blank line, after its last event
    if buffer:
        take(buffer.decode("utf-8", errors="replace"))
    if data:
        yield "\n".join(data)


class _Choice(BaseModel):
    model_config = ConfigDict(extra="ignore")

    index: int = Field(default=0, ge=0, lt=MAX_ALTERNATIVES)
    text: str | None = None
    finish_reason: str | None = None
    # Cowrite's: the alternative's tokens so far, its token ids (on its last chunk), its exact end
    tokens: int | None = Field(default=None, ge=0, le=MAX_NEW_TOKENS)
    token_ids: list[int] | None = Field(default=None, max_length=MAX_NEW_TOKENS)
    status: str | None = None


class _PromptDetails(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cached_tokens: int | None = Field(default=None, ge=0)


class _Usage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt_tokens: int | None = Field(default=None, ge=0)
    prompt_tokens_details: _PromptDetails | None = None


class _Chunk(BaseModel):
    model_config = ConfigDict(extra="ignore")

    choices: list[_Choice] = Field(default_factory=list, max_length=MAX_ALTERNATIVES)
    usage: _Usage | None = None


@dataclass(frozen=True)
class ChoiceChunk:
    """One alternative's part of a chunk."""

    index: int
    text: str
    finish: Status | None
    tokens: int | None  # Cowrite: the alternative's tokens so far
    token_ids: list[int] | None  # Cowrite, on an alternative's last chunk: all its token ids


@dataclass(frozen=True)
class StreamChunk:
    choices: list[ChoiceChunk]
    prompt_tokens: int | None = None
    cached_tokens: int | None = None


def parse_chunk(data: str) -> StreamChunk:
    """One event's data (a completion chunk, or a whole unstreamed completion); UpstreamError for
    an error event or anything that is not a chunk."""
    try:
        payload = json.loads(data)
    except (json.JSONDecodeError, RecursionError):
        raise UpstreamError("the engine sent an event that is not JSON") from None
    if not isinstance(payload, dict):
        raise UpstreamError("the engine sent an event that is not a JSON object")
    if "error" in payload or payload.get("object") == "error":
        raise UpstreamError(f"the engine failed: {error_text(payload)}")
    try:
        chunk = _Chunk.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UpstreamError(f"the engine sent a chunk with a bad {where}: {first['msg']}") from None
    choices = [ChoiceChunk(c.index, c.text or "", _finish(c), c.tokens, c.token_ids) for c in chunk.choices]
    usage = chunk.usage
    if usage is None:
        return StreamChunk(choices)
    details = usage.prompt_tokens_details
    cached = details.cached_tokens if details is not None else None
    return StreamChunk(choices, usage.prompt_tokens, cached)


def _finish(choice: _Choice) -> Status | None:
    if choice.finish_reason is None:
        return None
    if choice.status is not None and choice.status in STREAM_STATUSES:
        return Status(choice.status)
    return FINISHES.get(choice.finish_reason, Status.FINISHED)


def error_text(payload: object) -> str:
    """The message in an error body, in the shapes servers use: OpenAI's and llama.cpp's
    `{"error": {"message"}}`, vLLM's older `{"message"}`, TGI's `{"error": "..."}`."""
    message: object = None
    if isinstance(payload, dict):
        inner = payload.get("error")
        if isinstance(inner, dict):
            message = inner.get("message")
        elif isinstance(inner, str):
            message = inner
        else:
            message = payload.get("message")
    text = message if isinstance(message, str) and message else "no reason given"
    return text[:MAX_MESSAGE_CHARS]


def error_param(payload: object) -> str | None:
    """The request field an error body names (OpenAI's `param`), if any."""
    inner = payload.get("error") if isinstance(payload, dict) else None
    source = inner if isinstance(inner, dict) else payload
    param = source.get("param") if isinstance(source, dict) else None
    return param[:64] if isinstance(param, str) and param else None


def parse_json(raw: bytes) -> object:
    """An error body as JSON, or its text when it is not JSON."""
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return {"message": raw.decode("utf-8", errors="replace").strip()}
