"""The OpenAI-compatible completions API as both apps speak it: the request body, the engine request
made from it, and the answer (server-sent events, or whole) with OpenAI's error shape. The web app's
`/v1/completions` (`server.suggest.completions`) and `cowrite serve-engine` (server/engine_app.py)
differ only in who may ask and whose share a request takes.

The OpenAI `user` field is the engine's session key, so its clients get prefix reuse too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.suggest.sse import EventStreamResponse, sse_data, unless_disconnected
from streaming.errors import InvalidRequest
from streaming.interface import GenerationEngine, ModelInfo
from streaming.jobs import Generation
from streaming.params import Completion, Endings, GenerationRequest, Status

# engine field names as OpenAI spells them
OPENAI_NAMES = {"max_new_tokens": "max_tokens", "session": "user"}
FINISH_REASONS = {
    Status.FINISHED: "stop",
    Status.STOP: "stop",
    Status.UNSURE: "stop",
    Status.SENTENCE: "stop",
    Status.LENGTH: "length",
    Status.TIME: "length",
    Status.CANCELLED: "cancelled",
    Status.SUPERSEDED: "superseded",
}
MAX_USER_CHARS = 128  # the `user` field names a cached session; a long key would only cost memory


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=False)

    include_usage: bool = False  # a last chunk with the usage, as OpenAI sends it


class CompletionBody(BaseModel):
    """The request body; unknown OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", strict=False)

    model: str | None = None
    prompt: str | list[str]
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=MAX_USER_CHARS)

    @field_validator("prompt")
    @classmethod
    def one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt per request")
        return value


def error_response(status: int, message: str, kind: str, param: str | None = None) -> JSONResponse:
    headers = {"retry-after": "1"} if status == 503 else None
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


# a request's JSON payload -> its body (how to answer) and what the engine is asked
ReadRequest = Callable[[object], tuple[CompletionBody, GenerationRequest]]


async def complete(
    request: Request, engine: GenerationEngine, model_name: str, read: ReadRequest
) -> Response:
    """Answer a completions request whose sender may ask (the caller checked), streamed or whole.

    A client that goes away cancels its generation at once, streamed or not.
    """
    try:
        try:
            payload = await request.json()
        except RecursionError:  # nesting deeper than the parser goes
            raise ValueError("the body is nested too deeply") from None
        body, generation_request = read(payload)
        generation = await engine.submit(generation_request)
    except ValueError as exc:  # malformed JSON, ValidationError and InvalidRequest are ValueErrors
        return _invalid(exc)
    refused = _refusal(generation, engine)
    if refused is not None:
        return refused

    if body.stream:
        usage = body.stream_options is not None and body.stream_options.include_usage
        return EventStreamResponse(_stream(generation, model_name, usage))
    async with generation:
        finished, completion = await unless_disconnected(generation.result(), request.receive)
    if not finished or completion is None:
        return Response(status_code=499)  # nobody is listening; the generation was cancelled
    if completion.status is Status.ERROR:
        return error_response(500, completion.error or "generation failed", "server_error")
    return JSONResponse(_whole(completion, model_name))


def to_engine(
    body: CompletionBody,
    session: str | None,
    owner: str,
    heal: bool = False,
    prefix: str = "",
    endings: Endings | None = None,
) -> GenerationRequest:
    """The engine request for a body; `session` None: a context used once, not kept."""
    prompt = body.prompt if isinstance(body.prompt, str) else body.prompt[0]
    if prefix:
        # a prefix travels at the end of the prompt (streaming/openai.py): cut it off to spell it out
        if not prompt.endswith(prefix):
            raise InvalidRequest("prefix", "must be the end of the prompt")
        prompt = prompt[: -len(prefix)]
    stop = () if body.stop is None else (body.stop,) if isinstance(body.stop, str) else tuple(body.stop)
    return GenerationRequest(
        prompt=prompt,
        session=session or f"openai-once:{uuid.uuid4().hex}",
        keep_session=session is not None,
        max_new_tokens=body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        n=body.n,
        stop=stop,
        seed=body.seed,
        owner=owner,
        heal=heal,
        prefix=prefix,
        **(endings or Endings()).fields(),
    )


def _refusal(generation: Generation, engine: GenerationEngine) -> JSONResponse | None:
    """The answer for a request the engine did not take: 429 over the account's share, 503 busy."""
    completion = generation.completion
    if completion is None:
        return None
    if completion.status is Status.LIMITED:
        limits = engine.limits
        message = (
            f"this account already has its most requests in progress (at most {limits.owner_requests} "
            f"requests and {limits.owner_rows} alternatives at once); retry when one has finished"
        )
        response = error_response(429, message, "rate_limit_exceeded")
        response.headers["retry-after"] = "1"
        return response
    if completion.status is Status.BUSY:
        reason = completion.error or "the engine is busy"
        return error_response(503, f"{reason}; retry shortly", "server_busy")
    return None


def _invalid(exc: ValueError) -> JSONResponse:
    if isinstance(exc, InvalidRequest):
        param = OPENAI_NAMES.get(exc.field, exc.field)
        return error_response(400, f"{param}: {exc.message}", "invalid_request_error", param)
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        return error_response(400, f"{where}: {first['msg']}", "invalid_request_error", where)
    return error_response(400, "the body must be a JSON object", "invalid_request_error")


async def _stream(generation: Generation, model_name: str, usage: bool) -> AsyncIterator[str]:
    """The chunks; beyond OpenAI's fields each choice says its `tokens` so far, and its last one
    its `token_ids` and exact `status` (what a web replica's `RemoteEngine` reads back)."""
    created = int(time.time())

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        payload = {
            "id": generation.id,
            "object": "text_completion",
            "created": created,
            "model": model_name,
            "choices": choices,
            **extra,
        }
        return sse_data(payload)

    async with generation:  # leaving early (the client went away) cancels the generation
        async for delta in generation:
            choice = {"index": delta.index, "text": delta.text, "logprobs": None, "finish_reason": None}
            yield chunk([{**choice, "tokens": delta.tokens}])
        completion = await generation.result()
        if completion.status is Status.ERROR:
            yield sse_data({"error": {"message": completion.error, "type": "server_error"}})
        else:
            for alt in completion.alternatives:
                status = alt.status or completion.status
                end = {
                    "index": alt.index,
                    "text": "",
                    "logprobs": None,
                    "finish_reason": FINISH_REASONS.get(status, "stop"),
                }
                yield chunk(
                    [{**end, "tokens": len(alt.tokens), "token_ids": alt.tokens, "status": str(status)}]
                )
            if usage:
                yield chunk([], usage=_usage(completion))
        yield sse_data("[DONE]")


def _whole(completion: Completion, model_name: str) -> dict[str, Any]:
    choices = [
        {
            "index": alt.index,
            "text": alt.text,
            "logprobs": None,
            "finish_reason": FINISH_REASONS.get(alt.status or completion.status, "stop"),
        }
        for alt in completion.alternatives
    ]
    return {
        "id": completion.id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": choices,
        "usage": _usage(completion),
    }


def _usage(completion: Completion) -> dict[str, Any]:
    generated = sum(len(alt.tokens) for alt in completion.alternatives)
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": generated,
        "total_tokens": completion.prompt_tokens + generated,
        # the prompt tokens read from the session's cached context, not computed again
        "prompt_tokens_details": {"cached_tokens": completion.reused_tokens},
    }


def model_list(model: ModelInfo) -> JSONResponse:
    """`/v1/models`: the one model, with the device and dtype it runs on (Cowrite's fields)."""
    entry = {
        "id": model.name,
        "object": "model",
        "owned_by": "cowrite",
        "device": model.device,
        "dtype": model.dtype,
    }
    return JSONResponse({"object": "list", "data": [entry]})
