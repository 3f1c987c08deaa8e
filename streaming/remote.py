"""An engine on another machine: the interface of `Engine`, spoken over the OpenAI-compatible
streaming completions API to `cowrite serve-engine`, vLLM, TGI or llama.cpp's server.

Each request is one streamed `POST /v1/completions`, read by a task of its own. Cancelling or
superseding a request cancels that task, which closes the HTTP stream: the engine sees its client go
away and stops generating. The `user` field carries the session key, so that prefix reuse works
across the hop.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from dataclasses import dataclass
from types import TracebackType

import httpx

from streaming.admission import OwnerShares
from streaming.engine import EngineLimits, EngineStats
from streaming.errors import InvalidRequest
from streaming.interface import ModelInfo
from streaming.jobs import Generation, Job
from streaming.observer import EngineObserver
from streaming.openai import (
    ReadLimits,
    StreamChunk,
    UpstreamError,
    error_param,
    error_text,
    parse_chunk,
    parse_json,
    request_body,
    sse_data,
    upstream_user,
)
from streaming.params import Alternative, Delta, GenerationRequest, Status

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 3.0  # `/v1/models` as a health check and to learn the model
SMALL_BODY_BYTES = 64 << 10  # an error body, the model list
CLOSE_BATCH = 64  # session keys per `POST /v1/sessions/close`
MAX_PENDING_CLOSES = 4096  # beyond this, closes are dropped: the engine expires idle sessions anyway
# request fields as OpenAI spells them, back to the engine's names (for InvalidRequest.field)
ENGINE_NAMES = {"max_tokens": "max_new_tokens", "user": "session"}
UNREACHABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class EngineUnreachable(Exception):
    """The engine did not answer (refused, timed out, or answered 5xx)."""


class TokenRefused(Exception):
    """The engine refused this replica's token: a setting to fix, not a moment to wait out."""


@dataclass(frozen=True)
class Probe:
    """Whether the engine answers, and how fast."""

    answers: bool
    latency_s: float | None
    reason: str | None = None


@dataclass(eq=False)
class _Relay:
    """One request's stream from the engine: the job its caller holds, and what has arrived."""

    job: Job
    texts: list[str]
    counts: list[int]  # tokens per alternative, as the engine counts them or one per chunk
    token_ids: list[list[int]]  # Cowrite's engine sends them with an alternative's last chunk
    ends: list[Status | None]
    task: asyncio.Task[None] | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    done: bool = False  # the engine said `[DONE]`

    @classmethod
    def of(cls, job: Job) -> _Relay:
        n = job.request.n
        return cls(job, [""] * n, [0] * n, [[] for _ in range(n)], [None] * n)


class RemoteEngine:
    """`Engine`'s interface over an OpenAI-compatible completions server; an async context manager.

    `url` is the server's base (`http://engine:8001`; a trailing `/v1` is accepted); `token` is sent
    as `Authorization: Bearer`; `model` is the name sent upstream (None: the first `/v1/models`
    lists). `limits` caps what this replica has in flight: `max_rows + max_queue` requests, and per
    owner `owner_requests` and `owner_rows` (the engine applies its own caps as well).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        model: str | None = None,
        limits: EngineLimits | None = None,
        *,
        observer: EngineObserver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        base = httpx.URL(url)
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError(f"the engine URL must be an http:// or https:// URL, not {url!r}")
        path = base.path.rstrip("/").removesuffix("/v1")
        self.base = base.copy_with(path=path or "/", username=None, password=None)
        self.url = str(self.base).rstrip("/")
        # credentials in the URL are HTTP basic auth (a proxy in front of another server), unless
        # there is a token: one Authorization header only
        self._auth = (
            httpx.BasicAuth(base.username, base.password) if base.username and token is None else None
        )
        self.limits = limits or EngineLimits()
        self.observer = observer  # told of first tokens and ends, as `Engine` tells it (no steps here)
        self.model = ModelInfo(name=model or "unknown", device="remote", dtype="unknown", where=self.url)
        self._configured_model = model
        self._model_name = model  # sent upstream; learned from `/v1/models` when not configured
        self._listed = False  # `/v1/models` has answered once
        self._cowrite = False  # the engine is another Cowrite, which takes session closes
        self._token = token
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._relays: dict[str, _Relay] = {}
        self._shares = OwnerShares(self.limits.owner_requests, self.limits.owner_rows)
        self._closing: dict[str, None] = {}  # session keys to close on the engine, oldest first
        self._close_wanted = asyncio.Event()
        self._closer: asyncio.Task[None] | None = None
        self._listing = asyncio.Lock()
        self._ids = itertools.count(1)
        self.failure: str | None = None  # why the engine did not answer last time, until it does
        self.last_failure: str | None = None
        self.restarts = 0  # the engine restarts on its own machine; this side never does
        self.warmed = False

    # lifecycle

    async def __aenter__(self) -> RemoteEngine:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._client is not None:
            raise RuntimeError("remote engine already started; call stop() before starting it again")
        headers = {"accept-encoding": "identity"}  # a compressed stream could not be bounded as read
        if self._token is not None:
            headers["authorization"] = f"Bearer {self._token}"
        in_flight = self.limits.max_rows + self.limits.max_queue
        self._client = httpx.AsyncClient(
            base_url=self.base,
            headers=headers,
            auth=self._auth,
            # no read timeout: a stream waits for its tokens as long as its request's time budget
            timeout=httpx.Timeout(connect=CONNECT_TIMEOUT_S, read=None, write=10.0, pool=CONNECT_TIMEOUT_S),
            limits=httpx.Limits(max_connections=in_flight + 4, max_keepalive_connections=in_flight),
            transport=self._transport,
        )
        self._closer = asyncio.create_task(self._close_sessions(), name="cowrite-remote-closer")

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        tasks = [r.task for r in self._relays.values() if r.task is not None]
        if self._closer is not None:
            tasks.append(self._closer)
            self._closer = None
        for relay in list(self._relays.values()):
            self._finish(relay, Status.CANCELLED, "the engine stopped")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()

    async def warm_up(self) -> None:
        """Ask the engine for its model. An engine that does not answer yet is logged, not fatal:
        this replica serves documents meanwhile, and suggestions answer `busy` until it does.
        Raises RuntimeError if the engine refuses the token."""
        try:
            latency = await self._list_models()
        except TokenRefused as exc:
            raise RuntimeError(str(exc)) from None
        except EngineUnreachable as exc:
            log.warning("the engine at %s does not answer yet: %s", self.url, exc)
            return
        self.warmed = True
        log.info("the engine at %s answers in %.0f ms: %s", self.url, latency * 1000, self.model.name)

    async def probe(self) -> Probe:
        """Whether the engine answers `/v1/models` with this replica's token, and how fast."""
        try:
            latency = await self._list_models()
        except (EngineUnreachable, TokenRefused) as exc:
            return Probe(False, None, str(exc))
        return Probe(True, latency)

    # requests

    async def submit(self, request: GenerationRequest) -> Generation:
        """Send a request to the engine and return once it has answered (its headers, or a refusal).

        InvalidRequest when the engine finds a field out of bounds (HTTP 400 or 422). A request
        that cannot be taken ends at once: `limited` past its owner's share (here or on the engine:
        429), `busy` past this replica's requests in flight or when the engine cannot be reached or
        answers 503.
        """
        if self._client is None:
            raise RuntimeError("remote engine not running; enter `async with engine:` or call start() first")
        now = time.monotonic()
        job = Job(
            id=f"remote-{next(self._ids)}-{uuid.uuid4().hex[:8]}",
            request=request,
            prompt_ids=[],
            events=asyncio.Queue(),
            submitted_at=now,
            deadline=now + request.time_budget_s,
        )
        relay = _Relay.of(job)
        # a newer request in a session supersedes the older one: its stream closes, its engine stops
        for older in [r for r in self._relays.values() if r.job.request.session == request.session]:
            self._finish(older, Status.SUPERSEDED)
        if self._refuse(relay):
            return Generation(job, self.cancel)
        self._relays[job.id] = relay
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        relay.task = asyncio.create_task(self._relay(relay, answered), name=f"cowrite-remote-{job.id}")
        try:
            await answered
        except InvalidRequest:
            raise
        except BaseException:  # the caller was cancelled: so is its request
            self._finish(relay, Status.CANCELLED)
            raise
        return Generation(job, self.cancel)

    def cancel(self, request_id: str) -> bool:
        """Cancel a request: it ends at once, and its stream closes; False if it is unknown or over."""
        relay = self._relays.get(request_id)
        if relay is None or relay.job.done:
            return False
        self._finish(relay, Status.CANCELLED)
        return True

    def close_session(self, session: str) -> None:
        """Ask a Cowrite engine to free the session's cached context (other servers keep none by
        session; theirs age out by their own rules)."""
        if not self._cowrite or len(self._closing) >= MAX_PENDING_CLOSES:
            return
        self._closing[session] = None
        self._close_wanted.set()

    def stats(self) -> EngineStats:
        """This replica's side: its requests in flight (the engine's own stats are on its /healthz)."""
        streaming = [r for r in self._relays.values() if r.job.first_token_at is not None]
        return EngineStats(
            steps=0,
            queued=len(self._relays) - len(streaming),
            active_requests=len(streaming),
            active_rows=sum(r.job.request.n for r in streaming),
            sessions=0,
            kv_bytes=0,
            open_requests=len(self._relays),
        )

    def _refuse(self, relay: _Relay) -> bool:
        """End a new request at once if this replica cannot send it now; True if it was. A request
        sent holds its owner's share until `_forget`."""
        job = relay.job
        in_flight = self.limits.max_rows + self.limits.max_queue
        if len(self._relays) >= in_flight:
            self._finish(relay, Status.BUSY, f"this replica has {in_flight} requests in flight to the engine")
            return True
        refusal = self._shares.claim(job.id, job.request.owner, job.request.n)
        if refusal is not None:
            self._finish(relay, refusal.status, refusal.reason)
            return True
        return False

    def _forget(self, relay: _Relay) -> None:
        """The request is over on this replica: it is no longer in flight, nor in its owner's share."""
        self._relays.pop(relay.job.id, None)
        self._shares.release(relay.job.id)

    # the relay: one task per request

    async def _relay(self, relay: _Relay, answered: asyncio.Future[None]) -> None:
        """Send the request and pass its stream on, until it ends, fails, or this task is cancelled
        (cancel, supersede), which closes the stream."""
        job = relay.job
        client = self._client
        assert client is not None
        try:
            async with asyncio.timeout(job.deadline - time.monotonic()):
                model = await self._model_for_requests()
                body = request_body(job.request, model)
                async with client.stream("POST", "/v1/completions", json=body) as response:
                    self._answered()
                    if response.status_code != 200:
                        await self._refused(relay, response, answered)
                        return
                    if not answered.done():
                        answered.set_result(None)
                    await self._read(relay, response)
            self._end(relay)
        except TimeoutError:
            self._finish(relay, Status.TIME)
        except (EngineUnreachable, *UNREACHABLE) as exc:
            self._finish(relay, Status.BUSY, self._unreachable(exc))
        except TokenRefused as exc:
            self._finish(relay, Status.ERROR, str(exc))
        except httpx.HTTPError as exc:
            self._finish(relay, Status.ERROR, f"the engine's stream broke: {type(exc).__name__}: {exc}")
        except UpstreamError as exc:
            self._finish(relay, Status.ERROR, str(exc))
        except Exception as exc:  # a fault in this request's relay fails this request alone
            log.error("relaying request %s failed", job.id, exc_info=exc)
            self._finish(relay, Status.ERROR, f"failed while relaying it: {type(exc).__name__}: {exc}")
        finally:
            if not answered.done():
                answered.set_result(None)

    async def _refused(self, relay: _Relay, response: httpx.Response, answered: asyncio.Future[None]) -> None:
        """The engine did not take the request: an invalid field, a share used up, busy or broken."""
        payload = parse_json(await _read_bounded(response, SMALL_BODY_BYTES))
        message, code = error_text(payload), response.status_code
        if code in (400, 422):
            param = error_param(payload)
            self._forget(relay)
            if not answered.done():
                name = ENGINE_NAMES.get(param or "", param or "request")
                answered.set_exception(InvalidRequest(name, message.removeprefix(f"{param}: ")))
        elif code == 429:
            self._finish(relay, Status.LIMITED, message)
        elif code in (502, 503, 504):
            self._finish(relay, Status.BUSY, f"the engine is unavailable (HTTP {code}): {message}")
        elif code in (401, 403):
            self._finish(relay, Status.ERROR, _token_refused(code, self.url))
        else:
            self._finish(relay, Status.ERROR, f"the engine answered HTTP {code}: {message}")

    async def _read(self, relay: _Relay, response: httpx.Response) -> None:
        if response.headers.get("content-encoding", "identity") != "identity":
            raise UpstreamError("the engine sent a compressed stream; it was asked for none")
        limits = ReadLimits.for_request(relay.job.request)
        if response.headers.get("content-type", "").startswith("application/json"):
            # a server that does not stream answers with the whole completion at once
            whole = await _read_bounded(response, limits.total_bytes)
            self._take(relay, parse_chunk(whole.decode("utf-8", errors="replace")), limits)
            relay.done = True
            return
        async for data in sse_data(response.aiter_bytes(), limits):
            if data.strip() == "[DONE]":
                relay.done = True  # read on to the end of the body, so the connection can be reused
            elif not relay.done:
                self._take(relay, parse_chunk(data), limits)

    def _take(self, relay: _Relay, chunk: StreamChunk, limits: ReadLimits) -> None:
        """Pass a chunk's text on as deltas; note the alternatives it ends."""
        job = relay.job
        for choice in chunk.choices:
            index = choice.index
            if index >= job.request.n:
                raise UpstreamError(f"the engine sent alternative {index} of a request for {job.request.n}")
            if relay.ends[index] is not None:
                continue
            if choice.text:
                relay.texts[index] += choice.text
                if len(relay.texts[index]) > limits.text_chars:
                    raise UpstreamError(f"the engine sent more than {limits.text_chars} characters")
                # a server that does not count tokens sends about one a chunk
                relay.counts[index] = relay.counts[index] + 1 if choice.tokens is None else choice.tokens
                if job.first_token_at is None:
                    job.first_token_at = time.monotonic()
                    if self.observer is not None:
                        self.observer.first_token(job.first_token_at - job.submitted_at)
                job.events.put_nowait(Delta(index, choice.text, relay.counts[index]))
            elif choice.tokens is not None:
                relay.counts[index] = choice.tokens
            if choice.token_ids is not None:
                relay.token_ids[index] = choice.token_ids
            if choice.finish is not None:
                relay.ends[index] = choice.finish
        if chunk.prompt_tokens is not None:
            relay.prompt_tokens = chunk.prompt_tokens
        if chunk.cached_tokens is not None:
            relay.cached_tokens = chunk.cached_tokens

    def _end(self, relay: _Relay) -> None:
        """The stream is over: end the request with its alternatives' statuses."""
        if not relay.done and None in relay.ends:
            raise UpstreamError("the engine's stream ended before the request did")
        # a server that stops short of `n` choices (llama.cpp's ignores `n`) leaves the rest empty
        ends = [end or Status.FINISHED for end in relay.ends]
        relay.ends = list(ends)
        statuses = set(ends)
        self._finish(relay, statuses.pop() if len(statuses) == 1 else Status.FINISHED)

    def _finish(self, relay: _Relay, status: Status, error: str | None = None) -> None:
        """End a request now: its completion goes out at once, and its stream is closed."""
        job = relay.job
        if job.done:
            return
        alternatives = [
            Alternative(i, relay.texts[i], relay.token_ids[i], relay.ends[i] or status)
            for i in range(job.request.n)
        ]
        job.end(
            status,
            alternatives,
            prompt_tokens=relay.prompt_tokens,
            reused_tokens=relay.cached_tokens,
            error=error,
        )
        self._forget(relay)
        if self.observer is not None:
            self.observer.ended(status, sum(relay.counts))
        if relay.task is not None and relay.task is not asyncio.current_task():
            relay.task.cancel()  # leaving `client.stream(...)` closes the connection mid-body

    # the model list: which model to ask for, whether the engine answers

    async def _model_for_requests(self) -> str | None:
        if self._model_name is None and not self._listed:
            await self._list_models()
        return self._model_name

    async def _list_models(self) -> float:
        """`GET /v1/models`: learn the model's name (and, from a Cowrite engine, its device and
        dtype); the seconds it took. EngineUnreachable or TokenRefused when it does not answer."""
        client = self._client
        if client is None:
            raise RuntimeError("remote engine not running; enter `async with engine:` first")
        async with self._listing:
            started = time.perf_counter()
            try:
                async with client.stream("GET", "/v1/models", timeout=PROBE_TIMEOUT_S) as response:
                    raw = await _read_bounded(response, SMALL_BODY_BYTES)
            except httpx.HTTPError as exc:
                raise EngineUnreachable(self._unreachable(exc)) from None
            except UpstreamError as exc:
                raise EngineUnreachable(str(exc)) from None
            latency = time.perf_counter() - started
            self._answered()
            code = response.status_code
            if code in (401, 403):
                raise TokenRefused(_token_refused(code, self.url))
            if (code == 404 and self._configured_model is None) or code not in (200, 404):
                raise EngineUnreachable(f"GET /v1/models answered HTTP {code}: {error_text(parse_json(raw))}")
            if code == 200:
                self._learn(parse_json(raw))
            # else a server without a model list: the configured name will do
            self._listed = self.warmed = True
            return latency

    def _learn(self, listing: object) -> None:
        data = listing.get("data") if isinstance(listing, dict) else None
        entries = [e for e in data if isinstance(e, dict) and isinstance(e.get("id"), str)] if data else []
        wanted = self._configured_model
        chosen = next((e for e in entries if e["id"] == wanted or wanted is None), None)
        if chosen is None:
            if wanted is None:
                log.warning("the engine at %s lists no models; requests name none", self.url)
            else:
                log.warning("the engine at %s does not list %r; asking for it anyway", self.url, wanted)
            return
        self._model_name = str(chosen["id"])[:256]
        self._cowrite = chosen.get("owned_by") == "cowrite"
        device, dtype = chosen.get("device"), chosen.get("dtype")
        self.model.name = self._model_name
        self.model.device = device[:32] if self._cowrite and isinstance(device, str) else "remote"
        self.model.dtype = dtype[:32] if self._cowrite and isinstance(dtype, str) else "unknown"

    def _answered(self) -> None:
        self.failure = None

    def _unreachable(self, exc: BaseException) -> str:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.HTTPError):
            reason = f"the engine at {self.url} cannot be reached ({type(exc).__name__}: {exc})"
        self.failure = self.last_failure = reason
        return reason

    # closing sessions on a Cowrite engine, in the background

    async def _close_sessions(self) -> None:
        while True:
            await self._close_wanted.wait()
            self._close_wanted.clear()
            while self._closing and self._client is not None:
                keys = list(itertools.islice(self._closing, CLOSE_BATCH))
                for key in keys:
                    del self._closing[key]
                users = [upstream_user(key) for key in keys]
                try:
                    response = await self._client.post(
                        "/v1/sessions/close", json={"users": users}, timeout=PROBE_TIMEOUT_S
                    )
                except httpx.HTTPError as exc:  # the engine frees idle sessions by itself in time
                    log.info("closing %d sessions on the engine failed: %s", len(keys), exc)
                    continue
                if response.status_code != 204:
                    log.info("closing sessions on the engine answered HTTP %d", response.status_code)


async def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    """A whole (small) body; UpstreamError past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise UpstreamError(f"the engine sent a body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _token_refused(code: int, url: str) -> str:
    return (
        f"the engine at {url} refused this replica's token (HTTP {code}); "
        "COWRITE_ENGINE_TOKEN must be the engine's"
    )
