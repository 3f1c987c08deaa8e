"""A request inside an engine (`Job`, with one `AltState` per alternative), the session whose cached
row it uses (`Session`), and the caller's handle on it (`Generation`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType

import torch

from streaming.kv import RowCache
from streaming.params import Alternative, Completion, Delta, GenerationRequest, Status
from streaming.stopping import RepeatGuard, StopRules
from streaming.text import TextStream

Event = Delta | Completion


@dataclass(eq=False)
class AltState:
    """One alternative of a decoding job: its row, its tokens so far and its text."""

    index: int
    row: RowCache
    text: TextStream
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    forced: str = ""  # what is left of the request's prefix for the next tokens to spell out
    healing: int | None = None  # the healed token, until the first token (which must begin with it)
    pending: int | None = None  # sampled, not yet fed to the model
    status: Status | None = None
    rules: StopRules = field(default_factory=StopRules)
    guard: RepeatGuard | None = None  # the n-grams it may not repeat, with `no_repeat_ngram`
    probs: list[float] = field(default_factory=list)  # each token's probability, as the model gave it


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
    healed: int | None = None  # the prompt's last token, taken off to be healed (`request.heal`)
    alts: list[AltState] = field(default_factory=list)
    first_token_at: float | None = None
    last_step: int = 0  # the last engine step whose forward included this job
    ended_at_step: int | None = None
    in_flight_at_end: int = 0  # 1 when a step including this job was running as it ended
    completion: Completion | None = None
    shortened: bool = False  # taken while the engine was crowded: fewer tokens, one alternative

    @property
    def done(self) -> bool:
        return self.completion is not None

    @property
    def decoding(self) -> bool:
        return bool(self.alts)

    @property
    def prompt_left(self) -> int:
        """Prompt tokens its row has yet to read; 0 once it decodes."""
        if self.decoding:
            return 0
        assert self.row is not None, "a running job holds its session's row"
        return len(self.prompt_ids) - self.row.length

    def live_alts(self) -> list[AltState]:
        return [a for a in self.alts if a.status is None]

    def decoded(self, status: Status) -> list[Alternative]:
        """Its alternatives as decoded so far; each `status` if none has started."""
        if not self.alts:
            return [Alternative(index, status=status) for index in range(self.request.n)]
        return [Alternative(a.index, a.text.text, list(a.tokens), a.status, list(a.probs)) for a in self.alts]

    def end(
        self,
        status: Status,
        alternatives: list[Alternative],
        *,
        prompt_tokens: int,
        reused_tokens: int,
        error: str | None = None,
    ) -> Completion:
        """End the job: its completion, timed from its submission, is kept and sent after its deltas."""
        assert self.completion is None, f"request {self.id} ended twice"
        ttft = None if self.first_token_at is None else self.first_token_at - self.submitted_at
        self.completion = Completion(
            id=self.id,
            status=status,
            alternatives=alternatives,
            prompt_tokens=prompt_tokens,
            reused_tokens=reused_tokens,
            ttft_s=ttft,
            total_s=time.monotonic() - self.submitted_at,
            error=error,
            shortened=self.shortened,
        )
        self.events.put_nowait(self.completion)
        return self.completion


@dataclass(eq=False)
class Session:
    """One session key's cached row and the job currently using it, if any."""

    key: str
    owner: str = ""
    row: RowCache | None = None
    job: Job | None = None
    last_used: float = 0.0  # when a request last started or ended in it (the engine's clock)
    closed: bool = False  # its caller is gone: free it once no request uses it


class Generation:
    """A caller's handle on one request: iterate for deltas, await `result()` for the outcome.

    Use it as an async context manager so that a caller that goes away cancels the request.
    """

    def __init__(self, job: Job, cancel: Callable[[str], object]) -> None:
        self._job = job
        self._cancel = cancel

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
        self._cancel(self._job.id)

    async def __aenter__(self) -> Generation:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cancel()
