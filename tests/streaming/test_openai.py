"""The OpenAI wire format as `RemoteEngine` reads it: server-sent events, chunks, error bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from streaming.openai import (
    ReadLimits,
    UpstreamError,
    error_param,
    error_text,
    parse_chunk,
    request_body,
    sse_data,
)
from streaming.params import GenerationRequest, Span, Status

LIMITS = ReadLimits(line_bytes=64, total_bytes=1024, text_chars=100)


async def pieces(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def events(*parts: bytes, limits: ReadLimits = LIMITS) -> list[str]:
    return [data async for data in sse_data(pieces(*parts), limits)]


@pytest.mark.parametrize("end", [b"data:last", b"data:last\n", b"data:last\n\n"])
async def test_events_split_anywhere_with_any_line_ending_are_read_whole(end: bytes) -> None:
    stream = b': keep-alive\r\nevent: x\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata: [DONE]\n\n' + end
    split = [stream[i : i + 3] for i in range(0, len(stream), 3)]
    assert await events(*split) == ['{"a":\n1}', "[DONE]", "last"]


@pytest.mark.parametrize(
    "parts",
    [
        (b"data: " + b"x" * 100,),  # a line that never ends
        (b"data: " + b"x" * 40 + b"\n", b"data: " + b"x" * 40 + b"\n"),  # one event, two lines
        tuple(b": padding\n" for _ in range(200)),  # more bytes than the whole answer may have
    ],
)
async def test_a_stream_past_its_bounds_is_refused(parts: tuple[bytes, ...]) -> None:
    with pytest.raises(UpstreamError):
        await events(*parts)


def test_cowrites_status_says_more_than_the_finish_reason() -> None:
    chunk = parse_chunk('{"choices": [{"index": 1, "text": "", "finish_reason": "stop", "status": "stop"}]}')
    plain = parse_chunk('{"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}')
    assert (chunk.choices[0].index, chunk.choices[0].finish) == (1, Status.STOP)
    assert plain.choices[0].finish is Status.FINISHED


@pytest.mark.parametrize(
    "data",
    ['{"choices": [{"index": 9}]}', '{"choices": [{"tokens": -1}]}', "[1]", '{"object": "error"}'],
)
def test_a_chunk_out_of_shape_is_refused(data: str) -> None:
    with pytest.raises(UpstreamError):
        parse_chunk(data)


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        ({"error": {"message": "m", "param": "n"}}, "m", "n"),  # OpenAI, llama.cpp, Cowrite
        ({"object": "error", "message": "m", "param": None}, "m", None),  # vLLM
        ({"error": "m", "error_type": "validation"}, "m", None),  # TGI
        ({"detail": "?"}, "no reason given", None),
    ],
)
def test_error_bodies_of_each_server_give_their_message(
    body: object, message: str, param: str | None
) -> None:
    assert (error_text(body), error_param(body)) == (message, param)


def test_a_request_without_options_sends_only_what_it_needs() -> None:
    body = request_body(GenerationRequest("Once", "s", keep_session=False), None)
    assert set(body) == {"prompt", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options"}


def test_a_requests_endings_travel_only_when_they_are_not_the_defaults() -> None:
    plain = request_body(GenerationRequest("Once", "s"), None)
    assert not {"min_prob", "span", "no_repeat_ngram", "repetition_penalty", "whole_words"} & plain.keys()
    request = GenerationRequest(
        "Once",
        "s",
        min_prob=0.3,
        span=Span.SENTENCE,
        no_repeat_ngram=3,
        repetition_penalty=1.1,
        whole_words=True,
    )
    body = request_body(request, None)
    assert {
        k: body[k] for k in ("min_prob", "span", "no_repeat_ngram", "repetition_penalty", "whole_words")
    } == {
        "min_prob": 0.3,
        "span": "sentence",
        "no_repeat_ngram": 3,
        "repetition_penalty": 1.1,
        "whole_words": True,
    }
    assert "min_run_prob" not in body
