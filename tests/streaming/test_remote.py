"""`RemoteEngine` against a real `cowrite serve-engine` process, and against servers that know only
OpenAI's fields (a scripted fake, and the real model behind a proxy that drops Cowrite's fields)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from harness.engine_tier import TOKEN, EngineProcess, engine_process
from harness.processes import free_port
from streaming.engine import EngineLimits
from streaming.errors import InvalidRequest
from streaming.jobs import Generation
from streaming.params import Completion, Delta, GenerationRequest, Status
from streaming.remote import RemoteEngine
from tests.conftest import serve
from tests.streaming.fake_openai import Answer, Call, FakeOpenAI, Foreign, chunk, endless, streamed

PROMPT = "It is a truth universally acknowledged, that a single man in possession of a good fortune"
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with engine_process(tmp_path_factory.mktemp("engine")) as process:
        yield process


@pytest.fixture
async def remote(engine: EngineProcess) -> AsyncIterator[RemoteEngine]:
    async with RemoteEngine(engine.url, TOKEN) as remote:
        await remote.warm_up()
        yield remote


@pytest.fixture
def fake() -> Iterator[tuple[FakeOpenAI, str]]:
    server = FakeOpenAI()
    with serve(server) as url:  # type: ignore[arg-type]
        yield server, url


async def complete(engine: RemoteEngine, request: GenerationRequest) -> Completion:
    async with await engine.submit(request) as generation:
        return await generation.result()


async def first_delta(generation: Generation) -> Delta:
    async with asyncio.timeout(60):
        async for delta in generation:
            return delta
    raise AssertionError("the generation ended before its first delta")


async def gone(call: Call) -> bool:
    """Whether the fake server saw this request's client go away (waits up to ten seconds)."""
    return await asyncio.to_thread(call.gone.wait, 10)


def answer(status: int, body: bytes | dict[str, Any]) -> Answer:
    """A whole answer: JSON, or bytes as they are."""
    if isinstance(body, bytes):
        return Answer(status, [body], content_type="text/plain")
    return Answer(status, [json.dumps(body).encode()], content_type="application/json")


async def post(url: str, body: dict[str, Any], token: str = TOKEN) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        return await http.post("/v1/completions", json=body, headers={"authorization": f"Bearer {token}"})


# against a real `serve-engine`


async def test_a_request_streams_what_the_engine_itself_answers(
    engine: EngineProcess, remote: RemoteEngine
) -> None:
    generation = await remote.submit(GenerationRequest(PROMPT, "same", max_new_tokens=16, keep_session=False))
    deltas = [delta async for delta in generation]
    completion = await generation.result()
    direct = (await post(engine.url, {"prompt": PROMPT, "max_tokens": 16, "temperature": 0})).json()

    [alternative] = completion.alternatives
    assert completion.status is Status.LENGTH and alternative.status is Status.LENGTH
    assert "".join(d.text for d in deltas) == alternative.text == direct["choices"][0]["text"]
    assert len(alternative.tokens) == deltas[-1].tokens == 16, "the engine's token ids and counts travel"
    assert completion.prompt_tokens == direct["usage"]["prompt_tokens"]
    assert completion.ttft_s is not None and 0 < completion.ttft_s <= completion.total_s
    assert remote.model.name == direct["model"] and remote.model.device != "remote"


async def test_the_session_key_travels_so_the_engine_reuses_the_prefix(remote: RemoteEngine) -> None:
    first = await complete(remote, GenerationRequest(PROMPT, "reuse", max_new_tokens=4))
    second = await complete(remote, GenerationRequest(PROMPT + " must be", "reuse", max_new_tokens=4))
    assert first.reused_tokens == 0 and second.reused_tokens > 10


async def test_healing_and_a_prefix_are_honoured_by_a_cowrite_engine(remote: RemoteEngine) -> None:
    typed = "It is a truth universally acknowl"
    plain = await complete(remote, GenerationRequest(typed, "plain", max_new_tokens=4))
    healed = await complete(remote, GenerationRequest(typed, "healed", max_new_tokens=4, heal=True))
    spelled = await complete(
        remote, GenerationRequest(typed[:-8], "spelled", max_new_tokens=4, prefix=" acknowl")
    )
    # the engine took the last token (healing) or the prefix off the prompt it read
    assert healed.prompt_tokens == plain.prompt_tokens - 1
    assert spelled.prompt_tokens < plain.prompt_tokens
    assert healed.alternatives[0].text.startswith("edged")
    assert spelled.alternatives[0].text.startswith("edged")


async def test_a_cancel_closes_the_stream_and_the_engine_stops_within_a_step(
    engine: EngineProcess, remote: RemoteEngine
) -> None:
    generation = await remote.submit(GenerationRequest(PROMPT, "cancel", max_new_tokens=500))
    await first_delta(generation)
    before = await engine.health()
    generation.cancel()
    assert generation.completion is not None and generation.completion.status is Status.CANCELLED
    after = await engine.settles(lambda h: h["open_requests"] == 0, "the engine to end the request")
    # the step running as the stream closed, and at most one more before the engine saw it
    assert after["steps"] - before["steps"] <= 2, (before["steps"], after["steps"])


async def test_a_newer_request_supersedes_the_older_on_the_engine_too(
    engine: EngineProcess, remote: RemoteEngine
) -> None:
    start = await engine.health()
    old = await remote.submit(GenerationRequest(PROMPT, "typing", max_new_tokens=500))
    await first_delta(old)
    new = await remote.submit(GenerationRequest(PROMPT + " must", "typing", max_new_tokens=4))
    assert (await old.result()).status is Status.SUPERSEDED
    assert (await new.result()).status in (Status.LENGTH, Status.FINISHED)
    end = await engine.settles(lambda h: h["open_requests"] == 0, "the engine to end both requests")
    assert end["steps"] - start["steps"] < 50, "the superseded request stopped long before its 500 tokens"


async def test_the_engine_keeps_each_owners_share(engine: EngineProcess) -> None:
    mine = EngineLimits(owner_requests=0, owner_rows=0)  # this replica's own caps off: the engine's count
    async with RemoteEngine(engine.url, TOKEN, limits=mine) as remote:
        holding = [
            await remote.submit(GenerationRequest(PROMPT, f"hog-{i}", max_new_tokens=500, owner="hog"))
            for i in range(4)  # the engine's default share: four requests in progress
        ]
        refused = await remote.submit(GenerationRequest(PROMPT, "hog-4", max_new_tokens=4, owner="hog"))
        other = await complete(remote, GenerationRequest(PROMPT, "other", max_new_tokens=4, owner="other"))
        for generation in holding:
            generation.cancel()
    assert refused.completion is not None and refused.completion.status is Status.LIMITED
    assert "in progress" in (refused.completion.error or "")
    assert other.status is Status.LENGTH
    await engine.settles(lambda h: h["open_requests"] == 0, "the engine to end the held requests")


async def test_a_closed_session_is_freed_on_the_engine(engine: EngineProcess, remote: RemoteEngine) -> None:
    await complete(remote, GenerationRequest(PROMPT, "closing", max_new_tokens=2))
    cached = await engine.settles(lambda h: h["open_requests"] == 0, "the request to end")
    remote.close_session("closing")
    await engine.settles(lambda h: h["sessions"] == cached["sessions"] - 1, "the session to be freed")


async def test_an_invalid_request_raises_naming_the_field(remote: RemoteEngine) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await remote.submit(GenerationRequest("word " * 20_001, "long", max_new_tokens=4))
    assert refused.value.field == "prompt" and "limit" in refused.value.message
    assert remote.stats().open_requests == 0


async def test_a_wrong_token_is_refused_and_nothing_is_generated(engine: EngineProcess) -> None:
    steps = (await engine.health())["steps"]
    async with RemoteEngine(engine.url, "not-the-engine-token") as wrong:
        with pytest.raises(RuntimeError, match="COWRITE_ENGINE_TOKEN"):
            await wrong.warm_up()
        completion = await complete(wrong, GenerationRequest(PROMPT, "intruder", max_new_tokens=4))
        probe = await wrong.probe()
    direct = await post(engine.url, {"prompt": PROMPT, "max_tokens": 4}, token="not-the-engine-token")
    assert completion.status is Status.ERROR and "HTTP 401" in (completion.error or "")
    assert not probe.answers and "COWRITE_ENGINE_TOKEN" in (probe.reason or "")
    assert direct.status_code == 401 and direct.headers["www-authenticate"] == "Bearer"
    assert (await engine.health())["steps"] == steps


async def test_an_engine_that_cannot_be_reached_answers_busy_and_says_why() -> None:
    async with RemoteEngine(f"http://127.0.0.1:{free_port()}", TOKEN) as remote:
        await remote.warm_up()  # logged, not raised: the replica serves documents meanwhile
        completion = await complete(remote, GenerationRequest(PROMPT, "nobody", max_new_tokens=4))
        probe = await remote.probe()
    assert completion.status is Status.BUSY and "cannot be reached" in (completion.error or "")
    assert not probe.answers and "cannot be reached" in (probe.reason or "")
    assert not remote.warmed


async def test_a_server_that_ignores_cowrites_fields_continues_the_prompt_with_its_prefix(
    engine: EngineProcess,
) -> None:
    """The real model behind a server that drops Cowrite's fields: a prefix, put back at the end of
    the prompt, is continued and not repeated; healing is lost (the half-typed word is continued as
    tokenized, where Cowrite's engine re-chooses its last token: "acknowl" -> "edged")."""
    typed = "It is a truth universally acknowl"
    foreign = Foreign(engine.url, TOKEN)
    with serve(foreign) as url:  # type: ignore[arg-type]
        async with RemoteEngine(url) as remote:
            spelled = GenerationRequest(typed[:-8], "spelled", max_new_tokens=4, prefix=" acknowl")
            generation = await remote.submit(spelled)
            deltas = [delta async for delta in generation]
            prefixed = await generation.result()
            healed = await complete(remote, GenerationRequest(typed, "healed", max_new_tokens=4, heal=True))
    plain = (await post(engine.url, {"prompt": typed, "max_tokens": 4, "temperature": 0})).json()
    assert [body["prompt"] for body in foreign.bodies] == [typed, typed]
    assert not any("prefix" in body or "heal" in body for body in foreign.bodies)
    expected = plain["choices"][0]["text"]
    assert prefixed.alternatives[0].text == healed.alternatives[0].text == expected
    assert not expected.startswith(" acknowl")
    assert [d.tokens for d in deltas] == list(range(1, len(deltas) + 1)), "one token per chunk, counted here"
    assert (remote.model.name, remote.model.device) == ("proxied", "remote")


# against a scripted server: what other servers send, and what no server should


async def test_a_foreign_server_gets_openai_fields_and_the_prefix_in_the_prompt(
    fake: tuple[FakeOpenAI, str],
) -> None:
    server, url = fake
    server.answers = [Answer(parts=streamed("edged", " by", " all"))]
    request = GenerationRequest(
        "It is a truth universally",
        "alice:doc:tab",
        max_new_tokens=3,
        temperature=0.7,
        top_k=50,
        stop=("\n",),
        seed=3,
        prefix=" acknowl",
        owner="alice",
    )
    async with RemoteEngine(url) as remote:
        generation = await remote.submit(request)
        deltas = [delta async for delta in generation]
        completion = await generation.result()
    [call] = server.completions()
    assert call.body == {
        "model": "fake-model",
        "prompt": "It is a truth universally acknowl",
        "max_tokens": 3,
        "temperature": 0.7,
        "top_p": 1.0,
        "top_k": 50,
        "n": 1,
        "stop": ["\n"],
        "seed": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "alice:doc:tab",
        "prefix": " acknowl",
        "owner": "alice",
    }
    assert "authorization" not in call.headers
    assert [(d.text, d.tokens) for d in deltas] == [("edged", 1), (" by", 2), (" all", 3)]
    assert completion.status is Status.LENGTH and completion.alternatives[0].text == "edged by all"
    assert completion.alternatives[0].tokens == [], "a foreign server sends no token ids"


@pytest.mark.parametrize(
    ("status", "body", "expected", "says"),
    [
        (
            429,
            {"error": {"message": "slow down", "type": "rate_limit_exceeded"}},
            Status.LIMITED,
            "slow down",
        ),
        (503, {"error": {"message": "the queue is full"}}, Status.BUSY, "the queue is full"),
        (502, b"Bad Gateway", Status.BUSY, "HTTP 502"),
        (500, {"object": "error", "message": "CUDA out of memory"}, Status.ERROR, "CUDA out of memory"),
        (401, {"error": {"message": "no"}}, Status.ERROR, "COWRITE_ENGINE_TOKEN"),
        (404, {"error": {"message": "The model `x` does not exist."}}, Status.ERROR, "does not exist"),
    ],
)
async def test_refusals_map_to_statuses_with_the_reason(
    fake: tuple[FakeOpenAI, str], status: int, body: Any, expected: Status, says: str
) -> None:
    server, url = fake
    server.answers = [answer(status, body)]
    async with RemoteEngine(url) as remote:
        completion = await complete(remote, GenerationRequest(PROMPT, "refused", max_new_tokens=4))
    assert completion.status is expected and says in (completion.error or "")
    assert completion.alternatives[0].text == ""


@pytest.mark.parametrize(
    ("status", "body", "field", "message"),
    [
        (
            400,
            {"error": {"message": "max_tokens: too many", "param": "max_tokens"}},
            "max_new_tokens",
            "too many",
        ),
        (
            422,
            {"error": "Input validation error: bad temperature", "error_type": "validation"},
            "request",
            "Input validation error",
        ),
    ],
)
async def test_an_invalid_request_raises_invalid_request(
    fake: tuple[FakeOpenAI, str], status: int, body: Any, field: str, message: str
) -> None:
    server, url = fake
    server.answers = [answer(status, body)]
    async with RemoteEngine(url) as remote:
        with pytest.raises(InvalidRequest) as refused:
            await remote.submit(GenerationRequest(PROMPT, "invalid", max_new_tokens=4))
        assert remote.stats().open_requests == 0
    assert refused.value.field == field and refused.value.message.startswith(message)


def long_lines() -> Iterator[bytes]:
    while True:
        yield b": " + b"x" * 1000 + b"\n"


@pytest.mark.parametrize(
    ("parts", "says"),
    [
        ([b"data: " + b"x" * (70 << 10)], "a line over"),
        (endless("word "), "more than 768 characters"),
        (long_lines(), "more than"),
        ([chunk("a", index=2)], "alternative 2"),
        ([b"data: {nope\n\n"], "not JSON"),
        ([chunk("a"), {"error": {"message": "the model crashed"}}], "the model crashed"),
    ],
)
async def test_an_answer_past_its_bounds_or_the_protocol_fails_the_request_and_closes_it(
    fake: tuple[FakeOpenAI, str], parts: Any, says: str
) -> None:
    server, url = fake
    server.answers = [Answer(parts=parts, hold=True)]
    async with RemoteEngine(url) as remote:
        completion = await complete(remote, GenerationRequest(PROMPT, "hostile", max_new_tokens=8))
    assert completion.status is Status.ERROR and says in (completion.error or ""), completion.error
    assert await gone(server.completions()[0]), "the stream was closed, not read on"


async def test_a_stream_that_ends_early_fails_the_request(fake: tuple[FakeOpenAI, str]) -> None:
    server, url = fake
    server.answers = [Answer(parts=[chunk("half")])]
    async with RemoteEngine(url) as remote:
        completion = await complete(remote, GenerationRequest(PROMPT, "early", max_new_tokens=8))
    assert completion.status is Status.ERROR and "ended before" in (completion.error or "")
    assert completion.alternatives[0].text == "half"


async def test_a_cancel_closes_the_upstream_stream(fake: tuple[FakeOpenAI, str]) -> None:
    server, url = fake
    server.answers = [Answer(parts=[chunk("a")], hold=True)]
    async with RemoteEngine(url) as remote:
        generation = await remote.submit(GenerationRequest(PROMPT, "cancel", max_new_tokens=8))
        await first_delta(generation)
        generation.cancel()
        assert await gone(server.completions()[0])
        completion = await generation.result()
    assert completion.status is Status.CANCELLED and completion.alternatives[0].text == "a"


async def test_a_newer_request_closes_the_older_stream(fake: tuple[FakeOpenAI, str]) -> None:
    server, url = fake
    server.answers = [Answer(parts=[chunk("old")], hold=True), Answer(parts=streamed("new"))]
    async with RemoteEngine(url) as remote:
        old = await remote.submit(GenerationRequest(PROMPT, "typing", max_new_tokens=8))
        await first_delta(old)
        new = await complete(remote, GenerationRequest(PROMPT + " m", "typing", max_new_tokens=8))
        first, second = server.completions()
        assert await gone(first)
        assert (await old.result()).status is Status.SUPERSEDED
    assert new.status is Status.LENGTH and new.alternatives[0].text == "new"
    assert not second.gone.is_set()


async def test_the_time_budget_ends_a_silent_stream(fake: tuple[FakeOpenAI, str]) -> None:
    server, url = fake
    server.answers = [Answer(parts=[chunk("slow")], hold=True)]
    async with RemoteEngine(url) as remote:
        request = GenerationRequest(PROMPT, "silent", max_new_tokens=8, time_budget_s=0.5)
        completion = await complete(remote, request)
    assert completion.status is Status.TIME and completion.alternatives[0].text == "slow"
    assert await gone(server.completions()[0])


async def test_a_server_that_does_not_stream_is_read_whole(fake: tuple[FakeOpenAI, str]) -> None:
    server, url = fake
    whole = {
        "choices": [{"index": 0, "text": "all at once", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3},
    }
    server.answers = [answer(200, whole)]
    async with RemoteEngine(url) as remote:
        generation = await remote.submit(GenerationRequest(PROMPT, "whole", max_new_tokens=8))
        deltas = [delta.text async for delta in generation]
        completion = await generation.result()
    assert deltas == ["all at once"] and completion.status is Status.FINISHED
    assert completion.prompt_tokens == 7


async def test_alternatives_a_server_did_not_send_end_empty(fake: tuple[FakeOpenAI, str]) -> None:
    """llama.cpp's server ignores `n`: the other alternatives end with no text, not an error."""
    server, url = fake
    server.answers = [Answer(parts=streamed("one"))]
    async with RemoteEngine(url) as remote:
        completion = await complete(
            remote, GenerationRequest(PROMPT, "n", max_new_tokens=8, n=2, temperature=1)
        )
    assert [(a.text, a.status) for a in completion.alternatives] == [
        ("one", Status.LENGTH),
        ("", Status.FINISHED),
    ]


async def test_this_replica_caps_each_owner_and_its_requests_in_flight(fake: tuple[FakeOpenAI, str]) -> None:
    server, url = fake
    server.answers = [Answer(parts=[chunk("a")], hold=True), Answer(parts=[chunk("b")], hold=True)]
    limits = EngineLimits(max_rows=1, max_queue=1, owner_requests=1)
    async with RemoteEngine(url, limits=limits) as remote:
        held = [await remote.submit(GenerationRequest(PROMPT, "a", owner="alice"))]
        mine = await remote.submit(GenerationRequest(PROMPT, "a2", owner="alice"))
        held.append(await remote.submit(GenerationRequest(PROMPT, "b", owner="bob")))
        full = await remote.submit(GenerationRequest(PROMPT, "c", owner="carol"))
        assert remote.stats().open_requests == 2
    assert mine.completion is not None and mine.completion.status is Status.LIMITED
    assert full.completion is not None and full.completion.status is Status.BUSY
    assert "in flight" in (full.completion.error or "")
    assert len(server.completions()) == 2, "refused requests never reached the server"


async def test_the_model_comes_from_the_list_or_the_setting(fake: tuple[FakeOpenAI, str]) -> None:
    server, url = fake
    async with RemoteEngine(url) as listed:
        await complete(listed, GenerationRequest(PROMPT, "listed", max_new_tokens=4))
    server.models = None  # a server without `/v1/models`
    async with RemoteEngine(url, model="configured") as configured:
        await configured.warm_up()
        await complete(configured, GenerationRequest(PROMPT, "configured", max_new_tokens=4))
    assert [c.body["model"] for c in server.completions()] == ["fake-model", "configured"]
    assert (listed.model.name, listed.model.device) == ("fake-model", "remote")
    assert configured.warmed and configured.model.name == "configured"


async def test_a_long_session_key_travels_as_a_stable_digest(fake: tuple[FakeOpenAI, str]) -> None:
    server, url = fake
    async with RemoteEngine(url) as remote:
        for _ in range(2):
            await complete(remote, GenerationRequest(PROMPT, "k" * 200, max_new_tokens=4))
    first, second = (c.body["user"] for c in server.completions())
    assert first == second and first.startswith("sha256:") and len(first) <= 128


async def test_a_token_is_sent_as_a_bearer_and_credentials_in_the_url_as_basic_auth(
    fake: tuple[FakeOpenAI, str],
) -> None:
    server, url = fake
    async with RemoteEngine(url, TOKEN) as remote:
        await complete(remote, GenerationRequest(PROMPT, "token", max_new_tokens=4))
    assert {c.headers["authorization"] for c in server.calls} == {f"Bearer {TOKEN}"}
    server.calls.clear()
    async with RemoteEngine(url.replace("http://", "http://me:secret@")) as remote:
        await complete(remote, GenerationRequest(PROMPT, "basic", max_new_tokens=4))
    assert {c.headers["authorization"] for c in server.calls} == {"Basic bWU6c2VjcmV0"}


def test_the_url_is_reported_without_credentials_and_checked() -> None:
    remote = RemoteEngine("http://me:secret@127.0.0.1:9/engine/v1/")
    assert remote.url == "http://127.0.0.1:9/engine" and remote.model.where == remote.url
    with pytest.raises(ValueError, match="http"):
        RemoteEngine("ftp://127.0.0.1/")
