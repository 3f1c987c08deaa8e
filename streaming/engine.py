"""The engine: one decode loop that serves every request, step by step, in a shared batch.

Requests join between steps, prefill in chunks, reuse their session's KV, and leave the batch the
step after they end, are cancelled or are superseded. The model call runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

import torch

from streaming.errors import InvalidRequest
from streaming.kv import RowCache, common_prefix
from streaming.params import Alternative, Completion, Delta, GenerationRequest, Status
from streaming.runner import ModelRunner, RowInput
from streaming.sampling import sample_next
from streaming.sessions import Session, SessionTable
from streaming.text import TextStream
from streaming.vocabulary import Vocabulary

log = logging.getLogger(__name__)

Event = Delta | Completion


class Tokenizer(Protocol):
    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...
    def decode(self, ids: list[int], skip_special_tokens: bool = ...) -> str: ...


@dataclass(frozen=True)
class EngineLimits:
    """Bounds on the engine's work and memory."""

    max_rows: int = 32  # decode rows in one batch (each alternative is a row)
    max_queue: int = 64  # requests waiting for a row; past this, new ones get `busy`
    prefill_chunk: int = 256  # prompt tokens prefilled per step, shared by waiting requests
    context_tokens: int = 2048  # prompt + new tokens per row, capped by the model's own limit
    kv_budget_bytes: int = 2 << 30  # all rows' KV, active and cached sessions together
    max_sessions: int = 512


@dataclass(frozen=True)
class EngineStats:
    steps: int
    queued: int
    active_requests: int
    active_rows: int
    sessions: int
    kv_bytes: int
    open_requests: int


@dataclass(eq=False)
class AltState:
    """One alternative of a decoding job: its row, its tokens so far and its text."""

    index: int
    row: RowCache
    text: TextStream
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    forced: str = ""  # what is left of the request's prefix for the next tokens to spell out
    pending: int | None = None  # sampled, not yet fed to the model
    status: Status | None = None


@dataclass(eq=False)
class Job:
    """The engine's state for one request, from submit to completion."""

    id: str
    request: GenerationRequest
    prompt_ids: list[int]
    events: asyncio.Queue[Event]
    submitted_at: float
    deadline: float
    session: Session | None = None
    row: RowCache | None = None  # the prompt row: the session's, then alternative 0's
    reused: int = 0
    alts: list[AltState] = field(default_factory=list)
    first_token_at: float | None = None
    last_step: int = 0  # the last engine step whose forward included this job
    ended_at_step: int | None = None
    in_flight_at_end: int = 0  # 1 when a step including this job was running as it ended
    completion: Completion | None = None

    @property
    def done(self) -> bool:
        return self.completion is not None

    @property
    def decoding(self) -> bool:
        return bool(self.alts)

    def live_alts(self) -> list[AltState]:
        return [a for a in self.alts if a.status is None]


class Generation:
    """A caller's handle on one request: iterate for deltas, await `result()` for the outcome.

    Use it as an async context manager so that a caller that goes away cancels the request.
    """

    def __init__(self, engine: Engine, job: Job) -> None:
        self._engine = engine
        self._job = job

    @property
    def id(self) -> str:
        return self._job.id

    @property
    def last_step(self) -> int:
        return self._job.last_step

    @property
    def ended_at_step(self) -> int | None:
        return self._job.ended_at_step

    @property
    def completion(self) -> Completion | None:
        """The outcome once the request has ended (at once for `busy`), else None."""
        return self._job.completion

    async def __aiter__(self) -> AsyncIterator[Delta]:
        while not self._job.events.empty() or not self._job.done:
            event = await self._job.events.get()
            if isinstance(event, Completion):
                return
            yield event

    async def result(self) -> Completion:
        async for _ in self:
            pass
        assert self._job.completion is not None
        return self._job.completion

    def cancel(self) -> None:
        self._engine.cancel(self._job.id)

    async def __aenter__(self) -> Generation:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cancel()


class Engine:
    """Continuous batching over a `ModelRunner`; an async context manager."""

    def __init__(self, runner: ModelRunner, tokenizer: Tokenizer, limits: EngineLimits | None = None) -> None:
        self.runner = runner
        self.tokenizer = tokenizer
        self.limits = limits or EngineLimits()
        model_limit = getattr(runner.config, "max_position_embeddings", None) or 2048
        self.context_tokens = min(self.limits.context_tokens, model_limit)
        self.eos_ids = _eos_ids(runner, tokenizer)
        self._bos = _leading_special(tokenizer)
        self._vocabulary = Vocabulary(tokenizer, runner.config.vocab_size)
        self._sessions = SessionTable(self.limits.max_sessions)
        self._queue: deque[Job] = deque()
        self._active: list[Job] = []
        self._jobs: dict[str, Job] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._ids = itertools.count(1)
        self.steps = 0
        self._forwarding = False
        self.recent: deque[Job] = deque(maxlen=64)  # ended jobs, newest last, for inspection

    # lifecycle

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._loop_task is not None:
            raise RuntimeError("engine already started; call stop() before starting it again")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cowrite-model")
        self._loop_task = asyncio.create_task(self._run(), name="cowrite-decode-loop")

    async def stop(self) -> None:
        task, self._loop_task = self._loop_task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        for job in list(self._queue) + list(self._active):
            self._finish(job, Status.CANCELLED, error="the engine stopped")
        self._reap()
        self._queue.clear()
        assert self._executor is not None
        self._executor.shutdown(wait=True)
        self._executor = None

    # requests

    def submit(self, request: GenerationRequest) -> Generation:
        """Queue a request. A full queue answers at once with a `busy` completion."""
        if self._loop_task is None:
            raise RuntimeError("engine not running; enter `async with engine:` or call start() first")
        prompt_ids = self.prompt_tokens(request)
        now = time.monotonic()
        job = Job(
            id=f"gen-{next(self._ids)}-{uuid.uuid4().hex[:8]}",
            request=request,
            prompt_ids=prompt_ids,
            events=asyncio.Queue(),
            submitted_at=now,
            deadline=now + request.time_budget_s,
        )
        previous = self._sessions.get(request.session)
        if previous is not None and previous.job is not None:
            self._finish(previous.job, Status.SUPERSEDED)
        for queued in [j for j in self._queue if j.request.session == request.session]:
            self._finish(queued, Status.SUPERSEDED)
        if len(self._queue) >= self.limits.max_queue:
            self._finish(job, Status.BUSY)
            return Generation(self, job)
        self._jobs[job.id] = job
        self._queue.append(job)
        self._wake.set()
        return Generation(self, job)

    def cancel(self, request_id: str) -> bool:
        """Cancel a queued or running request; False if it is unknown or already over."""
        job = self._jobs.get(request_id)
        if job is None or job.done:
            return False
        self._finish(job, Status.CANCELLED)
        return True

    def prompt_tokens(self, request: GenerationRequest) -> list[int]:
        """The prompt's token ids, cut from the left in coarse steps to fit the context."""
        budget = self.context_tokens - request.max_new_tokens - len(self._bos)
        if budget < 1:
            raise InvalidRequest(
                "max_new_tokens", f"must leave room for the prompt in {self.context_tokens} tokens"
            )
        ids = self.tokenizer.encode(request.prompt, add_special_tokens=False)
        if not ids:
            raise InvalidRequest("prompt", "has no tokens")
        if len(ids) > budget:
            # cut in quarters of the budget, so the cut point (and the reusable prefix) moves rarely
            step = max(1, budget // 4)
            excess = len(ids) - budget
            ids = ids[-(-excess // step) * step :]
        return self._bos + ids

    async def wait_idle(self) -> None:
        """Return once every request has ended and its rows are freed."""
        self._wake.set()
        self._idle.clear()
        await self._idle.wait()

    def stats(self) -> EngineStats:
        rows = sum(len(j.live_alts()) or 1 for j in self._active)
        return EngineStats(
            steps=self.steps,
            queued=len(self._queue),
            active_requests=len(self._active),
            active_rows=rows,
            sessions=len(self._sessions),
            kv_bytes=self._kv_bytes(),
            open_requests=len(self._jobs),
        )

    # the loop

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._reap()
            self._expire(time.monotonic())
            self._reap()
            self._admit()
            inputs, owners = self._plan()
            if not inputs:
                self._wake.clear()
                self._idle.set()
                await self._wake.wait()
                continue
            self._idle.clear()
            self.steps += 1
            for job in {id(j): j for j, _ in owners}.values():
                job.last_step = self.steps
            self._forwarding = True
            try:
                results = await self._forward(loop, inputs)
            finally:
                self._forwarding = False
            now = time.monotonic()
            by_row = {id(i.row): owner for i, owner in zip(inputs, owners)}
            for group, outcome in results:
                if isinstance(outcome, BaseException):
                    for item in group:
                        job, _ = by_row[id(item.row)]
                        self._finish(job, Status.ERROR, error=_describe(outcome))
                    continue
                wanted = [item for item in group if item.want_logits]
                for item, logits in zip(wanted, outcome):
                    job, alt = by_row[id(item.row)]
                    if not job.done:
                        self._advance(job, alt, logits, now)
            # let sockets and new submissions run between steps
            await asyncio.sleep(0)

    async def _forward(
        self, loop: asyncio.AbstractEventLoop, inputs: list[RowInput]
    ) -> list[tuple[list[RowInput], torch.Tensor | BaseException]]:
        """Run one packed forward; after running out of memory, retry it in halves."""
        try:
            logits = await loop.run_in_executor(self._executor, self.runner.forward, inputs)
            return [(inputs, logits)]
        except (torch.OutOfMemoryError, MemoryError) as exc:
            log.warning("out of memory in a step of %d rows; retrying in halves", len(inputs))
            if self.runner.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(inputs) == 1:
                return [(inputs, exc)]
            half = len(inputs) // 2
            first = await self._forward(loop, inputs[:half])
            return first + await self._forward(loop, inputs[half:])
        except Exception as exc:  # a model fault fails this step's requests, never the loop
            log.exception("model step failed for %d rows", len(inputs))
            return [(inputs, exc)]

    def _plan(self) -> tuple[list[RowInput], list[tuple[Job, AltState | None]]]:
        inputs: list[RowInput] = []
        owners: list[tuple[Job, AltState | None]] = []
        for job in self._active:
            for alt in job.live_alts():
                assert alt.pending is not None
                inputs.append(RowInput(alt.row, [alt.pending]))
                owners.append((job, alt))
        budget = self.limits.prefill_chunk
        for job in self._active:
            if job.decoding or budget == 0:
                continue
            assert job.row is not None
            start = job.row.length
            take = min(len(job.prompt_ids) - start, budget)
            last = start + take == len(job.prompt_ids)
            inputs.append(RowInput(job.row, job.prompt_ids[start : start + take], last))
            owners.append((job, None))
            budget -= take
        return inputs, owners

    def _admit(self) -> None:
        rows = sum(len(j.live_alts()) or 1 for j in self._active)
        per_token = self.runner.cache_shape.bytes_per_token
        while self._queue:
            job = self._queue[0]
            need_rows = job.request.n
            if self._active and rows + need_rows > self.limits.max_rows:
                return
            session = self._sessions.touch(job.request.session)
            need = (len(job.prompt_ids) + job.request.max_new_tokens) * need_rows * per_token
            while self._kv_bytes() + need > self.limits.kv_budget_bytes:
                if not self._sessions.evict_one(keep=session):
                    break
            if self._active and self._kv_bytes() + need > self.limits.kv_budget_bytes:
                return
            self._queue.popleft()
            row = session.row or self.runner.new_row()
            reuse = min(common_prefix(row.tokens, job.prompt_ids), len(job.prompt_ids) - 1)
            row.truncate(reuse)
            session.row, session.job = row, job
            job.session, job.row, job.reused = session, row, reuse
            self._active.append(job)
            rows += need_rows

    def _advance(self, job: Job, alt: AltState | None, logits: torch.Tensor, now: float) -> None:
        """Take one row's next-token logits: start the alternatives, or extend one of them."""
        request = job.request
        if alt is None:
            assert job.row is not None
            job.first_token_at = now
            for index in range(request.n):
                row = job.row if index == 0 else job.row.fork(request.max_new_tokens)
                generator = None
                if request.temperature > 0:
                    generator = torch.Generator()
                    seed = (
                        request.seed if request.seed is not None else int.from_bytes(uuid.uuid4().bytes[:7])
                    )
                    generator.manual_seed(seed + index)
                stream = TextStream(self.tokenizer, request.stop, skip=len(request.prefix))
                job.alts.append(AltState(index, row, stream, generator, forced=request.prefix))
            targets = job.alts
        else:
            targets = [alt]
        for target in targets:
            row_logits = logits.cpu()
            if target.forced:
                row_logits = self._vocabulary.restrict(row_logits, target.forced)
            token = sample_next(
                row_logits, request.temperature, request.top_k, request.top_p, target.generator
            )
            if target.forced:
                target.forced = self._vocabulary.consume(target.forced, token)
            self._extend(job, target, token)
        if not job.live_alts():
            statuses = {a.status for a in job.alts if a.status is not None}
            status = statuses.pop() if len(statuses) == 1 else Status.FINISHED
            self._finish(job, status)

    def _extend(self, job: Job, alt: AltState, token: int) -> None:
        if token in self.eos_ids:
            alt.status = Status.FINISHED
        else:
            alt.tokens.append(token)
            delta = alt.text.push(alt.tokens)
            if delta:
                job.events.put_nowait(Delta(alt.index, delta, len(alt.tokens)))
            if alt.text.stopped:
                alt.status = Status.STOP
            elif len(alt.tokens) >= job.request.max_new_tokens:
                alt.status = Status.LENGTH
            else:
                alt.pending = token
                return
        tail = alt.text.flush()
        if tail:
            job.events.put_nowait(Delta(alt.index, tail, len(alt.tokens)))

    def _expire(self, now: float) -> None:
        for job in self._active:
            if now >= job.deadline and not job.done:
                for alt in job.live_alts():
                    alt.status = Status.TIME
                    tail = alt.text.flush()
                    if tail:
                        job.events.put_nowait(Delta(alt.index, tail, len(alt.tokens)))
                self._finish(job, Status.TIME)

    def _finish(self, job: Job, status: Status, error: str | None = None) -> None:
        """End a job now: its completion goes out at once; its rows are freed by `_reap`."""
        if job.done:
            return
        now = time.monotonic()
        for alt in job.live_alts():
            alt.status = status
        alternatives = [Alternative(a.index, a.text.text, list(a.tokens), a.status) for a in job.alts] or [
            Alternative(i, status=status) for i in range(job.request.n)
        ]
        job.completion = Completion(
            id=job.id,
            status=status,
            alternatives=alternatives,
            prompt_tokens=len(job.prompt_ids),
            reused_tokens=job.reused,
            ttft_s=None if job.first_token_at is None else job.first_token_at - job.submitted_at,
            total_s=now - job.submitted_at,
            error=error,
        )
        job.ended_at_step = self.steps
        job.in_flight_at_end = int(self._forwarding and job.last_step == self.steps)
        if job in self._queue:
            self._queue.remove(job)
        job.events.put_nowait(job.completion)
        self._wake.set()

    def _reap(self) -> None:
        """Free the rows of jobs that ended; keep alternative 0's row as the session's cache."""
        self._jobs = {k: j for k, j in self._jobs.items() if not j.done}
        ended = [j for j in self._active if j.done]
        if not ended:
            return
        self._active = [j for j in self._active if not j.done]
        for job in ended:
            self.recent.append(job)
            for alt in job.alts[1:]:
                alt.row.release()
            session = job.session
            assert session is not None
            session.job = None
            assert job.completion is not None
            if not job.request.keep_session or job.completion.status is Status.ERROR:
                self._sessions.drop(session.key)

    def _kv_bytes(self) -> int:
        forks = sum(a.row.nbytes for j in self._active for a in j.alts[1:])
        return self._sessions.cached_bytes() + forks


def _eos_ids(runner: ModelRunner, tokenizer: Tokenizer) -> frozenset[int]:
    ids: set[int] = set()
    config = getattr(runner.model, "generation_config", None)
    for source in (getattr(config, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple)):
            ids.update(int(i) for i in source)
    return frozenset(ids)


def _leading_special(tokenizer: Tokenizer) -> list[int]:
    """The tokens (a BOS) that the tokenizer puts before every text, kept through left cuts."""
    plain = tokenizer.encode("a", add_special_tokens=False)
    full = tokenizer.encode("a", add_special_tokens=True)
    return full[: len(full) - len(plain)] if full[len(full) - len(plain) :] == plain else []


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return "out of memory on the model device"
    return f"model step failed: {type(exc).__name__}: {exc}"
