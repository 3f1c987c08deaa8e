"""The engine: one decode loop that serves every request, step by step, in a shared batch.

Requests join between steps, prefill in chunks, reuse their session's KV, and leave the batch the
step after they end, are cancelled or are superseded. Who joins and what each step reads is the
`Scheduler`'s answer; the engine carries it out. The model call runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from types import TracebackType

import torch

from streaming.admission import Refusal
from streaming.errors import InvalidRequest
from streaming.jobs import AltState, Generation, Job
from streaming.kv import common_prefix
from streaming.observer import EngineObserver
from streaming.params import Delta, GenerationRequest, Status
from streaming.runner import ModelRunner, RowInput
from streaming.sampling import discourage, probability, sample_next
from streaming.scheduler import IdleSession, Progress, Scheduler, Ticket
from streaming.sessions import SessionTable
from streaming.stopping import REPEAT_WINDOW_TOKENS, RepeatGuard, StopRules
from streaming.text import TextStream, continues_word
from streaming.tokenizing import PromptTokenizer, Tokenizer, end_ids, leading_special
from streaming.vocabulary import Vocabulary

log = logging.getLogger(__name__)

STABLE_S = 60.0  # a decode loop that ran this long before failing restarts after the shortest delay
MAX_RESTART_DELAY_S = 60.0


@dataclass(frozen=True)
class EngineLimits:
    """Bounds on the engine's work and memory."""

    max_rows: int = 32  # decode rows in one batch (each alternative is a row)
    max_queue: int = 64  # requests waiting for a row; past this, new ones get `busy`
    prefill_chunk: int = 256  # prompt tokens read per step, shared by waiting requests in whole chunks
    context_tokens: int = 2048  # prompt + new tokens per row, capped by the model's own limit
    kv_budget_bytes: int = 2 << 30  # all rows' KV, active and cached sessions together
    max_sessions: int = 512
    # per owner (requests without one are not capped); 0 turns a cap off
    owner_requests: int = 4  # requests in the engine at once (tokenizing, queued or decoding)
    owner_rows: int = 4  # rows those requests ask for (each alternative is a row)
    owner_sessions: int = 8  # cached sessions; a new one evicts the owner's least recently used
    session_idle_s: float = 300.0  # a session unused this long is freed; 0 keeps it until evicted
    prompt_limit_chars: int = 100_000  # longer prompts are refused before they are tokenized
    prompt_limit_tokens: int = 32_768  # ... and prompts of more tokens after
    restart_delay_s: float = 1.0  # after the decode loop fails, doubling up to a minute
    # under load, shorter before refusing: once this many rows are decoding or asked for, a new
    # request gets at most `short_tokens` tokens and one alternative (0 turns it off)
    crowded_rows: int = 12
    short_tokens: int = 8


@dataclass(frozen=True)
class EngineStats:
    steps: int
    queued: int
    active_requests: int
    active_rows: int
    sessions: int
    kv_bytes: int
    open_requests: int


class Engine:
    """Continuous batching over a `ModelRunner`; an async context manager."""

    def __init__(
        self,
        runner: ModelRunner,
        tokenizer: Tokenizer,
        limits: EngineLimits | None = None,
        observer: EngineObserver | None = None,
    ) -> None:
        self.runner = runner
        self.observer = observer  # told of steps, first tokens and ends (the server's metrics)
        self.tokenizer = tokenizer
        self.limits = limits or EngineLimits()
        model_limit = getattr(runner.config, "max_position_embeddings", None) or 2048
        self.context_tokens = min(self.limits.context_tokens, model_limit)
        self.eos_ids = end_ids(runner.model, tokenizer)
        self._bos = leading_special(tokenizer)
        self._vocabulary = Vocabulary(tokenizer, runner.config.vocab_size)
        self._sessions = SessionTable(self.limits.max_sessions, self.limits.owner_sessions)
        self._scheduler = Scheduler(
            max_rows=self.limits.max_rows,
            max_queue=self.limits.max_queue,
            prefill_chunk=self.limits.prefill_chunk,
            kv_budget_bytes=self.limits.kv_budget_bytes,
            bytes_per_token=runner.cache_shape.bytes_per_token,
            owner_requests=self.limits.owner_requests,
            owner_rows=self.limits.owner_rows,
        )
        self._active: list[Job] = []  # admitted jobs, in the order they joined, until their rows are freed
        self._jobs: dict[str, Job] = {}  # every request not yet ended: tokenizing, waiting, active
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        # looked up at each call, so that a test can wrap `prompt_tokens`
        self._tokenizing = PromptTokenizer(lambda request: self.prompt_tokens(request))
        self._ids = itertools.count(1)
        self.steps = 0
        self._forwarding = False
        self.recent: deque[Job] = deque(maxlen=64)  # ended jobs, newest last, for inspection
        self.failure: str | None = None  # why the decode loop is down, while it is
        self.last_failure: str | None = None
        self.restarts = 0
        self.serving = asyncio.Event()  # set while the decode loop runs
        self.warmed = False
        self._warming = False  # the warm-up's own requests are not held to the queue's bounds

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
        self._tokenizing.start()
        self._loop_task = asyncio.create_task(self._supervise(), name="cowrite-decode-loop")
        await asyncio.sleep(0)  # the supervisor starts its loops

    async def stop(self) -> None:
        task, self._loop_task = self._loop_task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        self.serving.clear()
        self._abandon(Status.CANCELLED, "the engine stopped")
        assert self._executor is not None
        self._executor.shutdown(wait=True)
        self._executor = None
        self._tokenizing.stop()

    async def warm_up(self) -> None:
        """Run three short generations before serving, so that no writer meets a cold model.

        Together they make a few-row step: the first forward passes (kernel selection, allocator,
        device start-up), greedy and seeded sampling with forks, and token healing's vocabulary.
        Raises RuntimeError if the model cannot generate.
        """
        started = time.perf_counter()
        text = "It is a truth universally acknowledged,"  # a few tokens: within any sane prompt limit
        requests = [
            GenerationRequest(text + " tha", "warm-up-greedy", max_new_tokens=4, heal=True),
            GenerationRequest(
                text, "warm-up-sampled", max_new_tokens=4, temperature=0.7, top_p=0.95, top_k=50, n=2, seed=0
            ),
            GenerationRequest(text, "warm-up-prefixed", max_new_tokens=2, prefix=" tha"),
        ]
        self._warming = True
        try:
            generations = await asyncio.gather(*(self.submit(request) for request in requests))
        finally:
            self._warming = False
        completions = await asyncio.gather(*(g.result() for g in generations))
        for request in requests:
            self.close_session(request.session)
        await self.wait_idle()
        failed = [c for c in completions if c.status not in (Status.FINISHED, Status.LENGTH, Status.STOP)]
        if failed:
            reason = failed[0].error or failed[0].status
            raise RuntimeError(f"the model failed its warm-up generation: {reason}")
        self.recent.clear()
        self.warmed = True
        log.info("model warmed up in %.2f s (%d steps)", time.perf_counter() - started, self.steps)

    # requests

    async def submit(self, request: GenerationRequest) -> Generation:
        """Tokenize (on a worker thread) and queue a request; InvalidRequest for a prompt out of bounds.

        A request that cannot be taken ends at once: `limited` when its owner has its most
        requests or rows in the engine, `busy` when the queue is full or the engine is restarting.
        """
        if self._loop_task is None:
            raise RuntimeError("engine not running; enter `async with engine:` or call start() first")
        now = time.monotonic()
        shortened = self._crowded() and (request.max_new_tokens > self.limits.short_tokens or request.n > 1)
        if shortened:
            request = replace(
                request, max_new_tokens=min(request.max_new_tokens, self.limits.short_tokens), n=1
            )
        job = Job(
            id=f"gen-{next(self._ids)}-{uuid.uuid4().hex[:8]}",
            request=request,
            prompt_ids=[],
            events=asyncio.Queue(),
            submitted_at=now,
            deadline=now + request.time_budget_s,
            shortened=shortened,
        )
        # a newer request in a session supersedes the older one, whatever stage that one is at
        for older in [j for j in self._jobs.values() if j.request.session == request.session]:
            self._finish(older, Status.SUPERSEDED)
        refusal = self._refusal_while_down() or self._scheduler.open_request(
            job.id, request.owner, request.n, exempt=self._warming
        )
        if refusal is not None:
            self._finish(job, refusal.status, error=refusal.reason)
            return Generation(job, self.cancel)
        self._jobs[job.id] = job  # open to cancel, supersede and abandon while it is tokenized
        try:
            job.prompt_ids = await self._tokenizing.tokens(request)
        except InvalidRequest:
            self._jobs.pop(job.id, None)
            self._scheduler.close_request(job.id)
            raise
        except Exception as exc:  # the tokenizer failed on this prompt: this request alone fails
            self._jobs.pop(job.id, None)
            self._fail(job, "tokenizing its prompt", exc)
            return Generation(job, self.cancel)
        except BaseException:  # the caller was cancelled
            self._jobs.pop(job.id, None)
            self._finish(job, Status.CANCELLED)
            raise
        if job.done:  # superseded, cancelled or abandoned while it was tokenized
            return Generation(job, self.cancel)
        if request.heal:
            self._take_healed(job)
        tokens = len(job.prompt_ids) + request.max_new_tokens
        ticket = Ticket(job.id, request.owner, request.session, request.n, tokens)
        refusal = self._refusal_while_down() or self._scheduler.queue_request(ticket, exempt=self._warming)
        if refusal is not None:
            self._finish(job, refusal.status, error=refusal.reason)
            return Generation(job, self.cancel)
        self._wake.set()
        return Generation(job, self.cancel)

    def _crowded(self) -> bool:
        """Whether the batch is full enough that new requests should be shorter, not refused."""
        if self._warming or not self.limits.crowded_rows:
            return False
        asked = sum(j.request.n for j in self._jobs.values() if not j.decoding and not j.done)
        return self._rows_in_use() + asked >= self.limits.crowded_rows

    def _take_healed(self, job: Job) -> None:
        """Token healing: the prompt's last token comes off, and the first token sampled must begin
        with its text (one step, the one that would read that token anyway)."""
        ids = job.prompt_ids
        if len(ids) - len(self._bos) >= 2 and self._vocabulary.healable(ids[-1]):
            job.healed = ids.pop()

    def cancel(self, request_id: str) -> bool:
        """Cancel a queued or running request; False if it is unknown or already over."""
        job = self._jobs.get(request_id)
        if job is None or job.done:
            return False
        self._finish(job, Status.CANCELLED)
        return True

    def close_session(self, session: str) -> None:
        """The session's caller is gone: free its KV now, or when its last request has ended.

        A session that a newer request is using (a reconnected caller's) is left to it.
        """
        self._sessions.close(session)
        self._wake.set()

    def prompt_tokens(self, request: GenerationRequest) -> list[int]:
        """The prompt's token ids, cut from the left in coarse steps to fit the context."""
        chars, tokens = self.limits.prompt_limit_chars, self.limits.prompt_limit_tokens
        if len(request.prompt) > chars:
            raise InvalidRequest("prompt", f"is {len(request.prompt)} characters long; the limit is {chars}")
        budget = self.context_tokens - request.max_new_tokens - len(self._bos)
        if budget < 1:
            raise InvalidRequest(
                "max_new_tokens", f"must leave room for the prompt in {self.context_tokens} tokens"
            )
        ids = self.tokenizer.encode(request.prompt, add_special_tokens=False)
        if not ids:
            raise InvalidRequest("prompt", "has no tokens")
        if len(ids) > tokens:
            raise InvalidRequest("prompt", f"is {len(ids)} tokens long; the limit is {tokens}")
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
        return EngineStats(
            steps=self.steps,
            queued=self._scheduler.queued,
            active_requests=len(self._active),
            active_rows=self._rows_in_use(),
            sessions=len(self._sessions),
            kv_bytes=self._kv_bytes(),
            open_requests=len(self._jobs),
        )

    def _refusal_while_down(self) -> Refusal | None:
        """`busy` while the decode loop is down, waiting to restart; never for the warm-up's own requests."""
        if self.failure is None or self._warming:
            return None
        return Refusal(Status.BUSY, f"the engine is restarting after a fault ({self.failure})")

    # the loop and its supervisor

    async def _supervise(self) -> None:
        """Run the decode loop; if it ever ends, fail what was in it and start it again."""
        failures = 0  # in a row: each doubles the delay before the next start, up to a minute
        while True:
            started = time.monotonic()
            self.serving.set()
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._run())
                    group.create_task(self._tokenizing.run())
                reason = "the decode loop returned"
            except Exception as exc:  # the loop's own bookkeeping failed: nothing in it is trusted
                first = exc.exceptions[0] if isinstance(exc, ExceptionGroup) else exc
                reason = f"{type(first).__name__}: {first}"
                log.error("the decode loop failed: %s", reason, exc_info=first)
            failures = 1 if time.monotonic() - started > STABLE_S else failures + 1
            delay = min(self.limits.restart_delay_s * 2 ** (failures - 1), MAX_RESTART_DELAY_S)
            self.failure = self.last_failure = reason
            self.serving.clear()
            self._abandon(Status.ERROR, f"the engine failed ({reason})")
            log.error("restarting the decode loop in %g s (restart %d)", delay, self.restarts + 1)
            await asyncio.sleep(delay)
            self.failure = None
            self.restarts += 1

    def _abandon(self, status: Status, reason: str) -> None:
        """End every request with `status` and free every row and session: a fresh start."""
        for job in [*self._jobs.values(), *self._active]:  # waiting jobs are among `_jobs`
            self._finish(job, status, error=None if status is Status.CANCELLED else reason)
        for job in self._active:
            for alt in job.alts[1:]:
                alt.row.release()
            if job.session is not None:
                job.session.job = None
            self.recent.append(job)
        for session in list(self._sessions):
            self._sessions.drop(session.key)
        self._active.clear()
        self._scheduler.clear()
        self._jobs.clear()
        self._forwarding = False
        self._idle.set()
        self._tokenizing.abandon()  # their jobs have ended above

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not await self._step(loop):
                self._wake.clear()
                self._idle.set()
                await self._sleep()
                continue
            # let sockets and new submissions run between steps
            await asyncio.sleep(0)

    async def _sleep(self) -> None:
        """Wait for work, or until the next idle session is due to expire."""
        timeout = None
        oldest = self._sessions.oldest_idle()
        if oldest is not None and self.limits.session_idle_s > 0:
            timeout = max(0.0, oldest + self.limits.session_idle_s - time.monotonic()) + 0.01
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _step(self, loop: asyncio.AbstractEventLoop) -> bool:
        """One step: free, expire, admit, plan, forward, sample. False when there was nothing to do.

        An exception in any part of it that concerns one request fails only that request.
        """
        now = time.monotonic()
        self._reap(now)
        self._expire(now)
        self._reap(now)
        if self.limits.session_idle_s > 0:
            self._sessions.expire(now - self.limits.session_idle_s)
        self._admit(now)
        inputs, owners = self._plan()
        if not inputs:
            return False
        self._idle.clear()
        self.steps += 1
        for job in {id(j): j for j, _ in owners}.values():
            job.last_step = self.steps
        started = time.perf_counter()
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
                if job.done:
                    continue
                try:
                    self._advance(job, alt, logits, now)
                except Exception as exc:
                    self._fail(job, "sampling its next token", exc)
        if self.observer is not None:
            self.observer.step(time.perf_counter() - started, len(inputs))
        return True

    async def _forward(
        self, loop: asyncio.AbstractEventLoop, inputs: list[RowInput]
    ) -> list[tuple[list[RowInput], torch.Tensor | BaseException]]:
        """Run one packed forward; after a failure, retry it in halves, to fail only the rows at fault.

        A row's KV only advances when a pass succeeds, so a retried row is computed afresh.
        """
        try:
            logits = await loop.run_in_executor(self._executor, self.runner.forward, inputs)
            return [(inputs, logits)]
        except (torch.OutOfMemoryError, MemoryError) as exc:
            log.warning("out of memory in a step of %d rows; retrying in halves", len(inputs))
            if self.runner.device.type == "cuda":
                torch.cuda.empty_cache()
            failure: BaseException = exc
        except Exception as exc:  # a model fault fails the rows it concerns, never the loop
            if len(inputs) == 1:
                log.error("model step failed for one row", exc_info=exc)
            else:
                log.warning("model step failed for %d rows (%s); retrying in halves", len(inputs), exc)
            failure = exc
        if len(inputs) == 1:
            return [(inputs, failure)]
        half = len(inputs) // 2
        first = await self._forward(loop, inputs[:half])
        return first + await self._forward(loop, inputs[half:])

    def _plan(self) -> tuple[list[RowInput], list[tuple[Job, AltState | None]]]:
        """This step's rows, as the scheduler plans them: every decoding row's next token, then
        prompt chunks. A job whose rows cannot be made fails alone, and the step is planned again
        without it, so its share of the prompt budget goes to the others."""
        while True:
            running = {j.id: j for j in self._active if not j.done}
            slots = self._scheduler.plan_step([Progress(j.id, j.prompt_left) for j in running.values()])
            inputs: list[RowInput] = []
            owners: list[tuple[Job, AltState | None]] = []
            for slot in slots:
                job = running[slot.id]
                try:
                    items = self._inputs(job, slot.prompt_tokens)
                except Exception as exc:
                    self._fail(job, "planning its step", exc)
                    break  # plan the step again, without it
                inputs += [item for item, _ in items]
                owners += [(job, alt) for _, alt in items]
            else:  # every planned job gave its rows
                return inputs, owners

    def _inputs(self, job: Job, prompt_tokens: int) -> list[tuple[RowInput, AltState | None]]:
        """One job's rows for this step: its alternatives' next tokens, or its next `prompt_tokens`."""
        if job.decoding:
            rows: list[tuple[RowInput, AltState | None]] = []
            for alt in job.live_alts():
                assert alt.pending is not None
                rows.append((RowInput(alt.row, [alt.pending]), alt))
            return rows
        assert job.row is not None
        start = job.row.length
        last = start + prompt_tokens == len(job.prompt_ids)
        return [(RowInput(job.row, job.prompt_ids[start : start + prompt_tokens], last), None)]

    def _admit(self, now: float) -> None:
        """Move waiting requests into the batch, one at a time, as the scheduler decides."""
        rows = self._rows_in_use()
        while self._scheduler.queued:
            idle = [IdleSession(s.key, 0 if s.row is None else s.row.nbytes) for s in self._sessions.idle()]
            admission = self._scheduler.next_admission(rows, self._kv_bytes(), idle)
            for key in admission.evict:
                self._sessions.drop(key)
            if admission.ticket is None:
                return
            job = self._jobs[admission.ticket.id]
            try:
                self._place(job, now)
            except Exception as exc:
                self._fail(job, "admitting it", exc)
                session = self._sessions.get(job.request.session)
                if session is not None and session.job in (job, None):
                    self._sessions.drop(session.key)
                continue
            rows += admission.ticket.rows

    def _place(self, job: Job, now: float) -> None:
        """Give an admitted job its session's row, reusing the longest prefix it already holds."""
        session = self._sessions.touch(job.request.session, job.request.owner, now)
        row = session.row or self.runner.new_row()
        reuse = min(common_prefix(row.tokens, job.prompt_ids), len(job.prompt_ids) - 1)
        row.truncate(reuse)
        session.row, session.job = row, job
        job.session, job.row, job.reused = session, row, reuse
        self._active.append(job)

    def _advance(self, job: Job, alt: AltState | None, logits: torch.Tensor, now: float) -> None:
        """Take one row's next-token logits: start the alternatives, or extend one of them."""
        request = job.request
        if alt is None:
            assert job.row is not None
            job.first_token_at = now
            if self.observer is not None:
                self.observer.first_token(now - job.submitted_at)
            for index in range(request.n):
                row = job.row if index == 0 else job.row.fork(request.max_new_tokens)
                generator = None
                if request.temperature > 0:
                    generator = torch.Generator()
                    seed = (
                        request.seed if request.seed is not None else int.from_bytes(uuid.uuid4().bytes[:7])
                    )
                    generator.manual_seed(seed + index)
                healed = self._vocabulary.text(job.healed) if job.healed is not None else ""
                skip = len(request.prefix) + len(healed)
                stream = TextStream(self.tokenizer, request.stop, skip=skip, whole_words=request.whole_words)
                guard = None
                if request.no_repeat_ngram:
                    context = job.prompt_ids[len(self._bos) :][-REPEAT_WINDOW_TOKENS:]
                    guard = RepeatGuard.over(
                        request.no_repeat_ngram, [self._vocabulary.word(t) for t in context]
                    )
                job.alts.append(
                    AltState(
                        index,
                        row,
                        stream,
                        generator,
                        forced=request.prefix,
                        healing=job.healed,
                        rules=StopRules.of(request),
                        guard=guard,
                    )
                )
            targets = job.alts
        else:
            targets = [alt]
        for target in targets:
            row_logits = logits.cpu()
            if target.healing is not None:
                row_logits = self._vocabulary.heal(row_logits, target.healing)
                target.healing = None
            elif target.forced:
                row_logits = self._vocabulary.restrict(row_logits, target.forced)
            writers_own = bool(target.forced)  # spelling out what the writer typed: no rule applies
            token = sample_next(
                self._discouraged(job, target, row_logits),
                request.temperature,
                request.top_k,
                request.top_p,
                target.generator,
            )
            if target.forced:
                target.forced = self._vocabulary.consume(target.forced, token)
            self._extend(job, target, token, probability(row_logits, token), writers_own)
        if not job.live_alts():
            statuses = {a.status for a in job.alts if a.status is not None}
            status = statuses.pop() if len(statuses) == 1 else Status.FINISHED
            self._finish(job, status)

    def _discouraged(self, job: Job, alt: AltState, logits: torch.Tensor) -> torch.Tensor:
        """The logits to sample from, with the request's repetition rules applied (unless they
        would leave no token at all)."""
        request = job.request
        if request.repetition_penalty == 1.0 and alt.guard is None:
            return logits
        seen = (
            alt.tokens + job.prompt_ids[-REPEAT_WINDOW_TOKENS:] if request.repetition_penalty != 1.0 else []
        )
        banned: list[int] = []
        if alt.guard is not None:
            banned = [t for word in alt.guard.banned() for t in self._vocabulary.spelling(word)]
        adjusted = discourage(logits, seen, banned, request.repetition_penalty)
        return adjusted if bool(torch.isfinite(adjusted).any()) else logits

    def _extend(
        self, job: Job, alt: AltState, token: int, prob: float = 1.0, writers_own: bool = False
    ) -> None:
        """Append a sampled token to an alternative and stream the text it makes safe, or end it
        before the token where its stop rules say so."""
        complete = False  # whether the text's last word is whole when it ends here
        if token in self.eos_ids:
            alt.status = Status.FINISHED
            complete = True
        else:
            text = alt.text.decode([*alt.tokens, token])
            piece = text[len(alt.text.text) :] if text.startswith(alt.text.text) else text
            ending = None if writers_own else alt.rules.before(alt.text.text, piece, prob)
            if ending is not None:
                alt.status = ending
                complete = not continues_word(piece)
            else:
                alt.tokens.append(token)
                alt.probs.append(prob)
                if alt.guard is not None:
                    alt.guard.add(self._vocabulary.word(token))
                delta = alt.text.push(alt.tokens, text)
                if delta:
                    job.events.put_nowait(Delta(alt.index, delta, len(alt.tokens)))
                if alt.text.stopped:
                    alt.status = Status.STOP
                elif len(alt.tokens) >= job.request.max_new_tokens:
                    alt.status = Status.LENGTH
                else:
                    alt.pending = token
                    return
        tail = alt.text.flush(complete)
        if tail:
            job.events.put_nowait(Delta(alt.index, tail, len(alt.tokens)))

    def _expire(self, now: float) -> None:
        for job in self._active:
            if now >= job.deadline and not job.done:
                for alt in job.live_alts():
                    alt.status = Status.TIME
                    tail = alt.text.flush(complete=False)
                    if tail:
                        job.events.put_nowait(Delta(alt.index, tail, len(alt.tokens)))
                self._finish(job, Status.TIME)

    def _fail(self, job: Job, doing: str, exc: Exception) -> None:
        """A fault while `doing` something for one job ends that job alone, with the reason."""
        log.error("request %s failed while %s", job.id, doing, exc_info=exc)
        self._finish(job, Status.ERROR, error=f"failed while {doing}: {type(exc).__name__}: {exc}")

    def _finish(self, job: Job, status: Status, error: str | None = None) -> None:
        """End a job now: its completion goes out at once; its rows are freed by `_reap`."""
        if job.done:
            return
        for alt in job.live_alts():
            alt.status = status
        job.ended_at_step = self.steps
        job.in_flight_at_end = int(self._forwarding and job.last_step == self.steps)
        self._scheduler.close_request(job.id)
        alternatives = job.decoded(status)
        job.end(
            status, alternatives, prompt_tokens=len(job.prompt_ids), reused_tokens=job.reused, error=error
        )
        if self.observer is not None:
            self.observer.ended(status, sum(len(a.tokens) for a in job.alts))
        self._wake.set()

    def _reap(self, now: float) -> None:
        """Free the rows of jobs that ended; keep alternative 0's row as the session's cache."""
        self._jobs = {k: j for k, j in self._jobs.items() if not j.done}
        ended = [j for j in self._active if j.done]
        if ended:
            self._active = [j for j in self._active if not j.done]
        for job in ended:
            self.recent.append(job)
            session = job.session
            assert session is not None and job.completion is not None
            try:
                for alt in job.alts[1:]:
                    alt.row.release()
            except Exception as exc:  # the rows are lost to this job either way; the loop goes on
                log.error("freeing the rows of request %s failed", job.id, exc_info=exc)
            session.job = None
            session.last_used = now
            keep = job.request.keep_session and job.completion.status is not Status.ERROR
            if not keep or session.closed:
                self._sessions.drop(session.key)

    def _rows_in_use(self) -> int:
        """Rows the batch holds: a job's live alternatives, or its one prompt row."""
        return sum(len(j.live_alts()) or 1 for j in self._active)

    def _kv_bytes(self) -> int:
        """KV held: the sessions' cached rows (running jobs' prompt rows among them) and the forks."""
        forks = sum(a.row.nbytes for j in self._active for a in j.alts[1:])
        return self._sessions.cached_bytes() + forks


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return "out of memory on the model device"
    return f"model step failed: {type(exc).__name__}: {exc}"
