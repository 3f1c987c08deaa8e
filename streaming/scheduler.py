"""The engine's scheduler: which requests are refused, the order the rest wait in, who joins the batch,
what each step reads and which cached sessions make room; synchronous answers, given as plain data.

It holds the waiting queue and each owner's share; the engine tells it what the batch holds now (rows,
KV bytes, idle sessions) and carries out what it answers. It never calls back into the engine.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from streaming.admission import OwnerShares, Refusal
from streaming.params import Status
from streaming.queues import FairQueue


@dataclass(frozen=True)
class Ticket:
    """A tokenized request as the scheduler sees it: whose, in which session, and the room it needs."""

    id: str
    owner: str
    session: str
    rows: int  # one per alternative
    tokens: int  # its prompt and its new tokens: the most KV each of its rows will hold


@dataclass(frozen=True)
class IdleSession:
    """A cached session that no request is using: `nbytes` of KV that may be evicted."""

    key: str
    nbytes: int


class Wait(enum.StrEnum):
    """Why no further request joins the batch in this step."""

    EMPTY = "no request is waiting"
    ROWS = "the next request's rows do not fit beside the running ones"
    KV = "the next request's KV does not fit the budget, even with the idle sessions evicted"


@dataclass(frozen=True)
class Admission:
    """One admission decision: evict the sessions in `evict`, then place `ticket` in the batch.

    Without a ticket no more requests join in this step, for the reason in `wait`; the evictions
    stand even then.
    """

    ticket: Ticket | None
    evict: tuple[str, ...] = ()
    wait: Wait | None = None


@dataclass(frozen=True)
class Progress:
    """A running request before a step: `prompt_left` prompt tokens still to read, 0 once it decodes."""

    id: str
    prompt_left: int = 0


@dataclass(frozen=True)
class Slot:
    """A request's part of one step: `prompt_tokens` of its prompt, or (0) its alternatives' next tokens."""

    id: str
    prompt_tokens: int = 0


class Scheduler:
    """Admission, fair queueing, step planning and KV accounting for one engine.

    Bounds: `max_rows` rows in the batch, `max_queue` requests waiting, `prefill_chunk` prompt tokens
    a step, `kv_budget_bytes` of KV for the batch and the cached sessions together (each token of a
    row holds `bytes_per_token`), and per owner `owner_requests` requests and `owner_rows` rows
    (0: no cap).
    """

    def __init__(
        self,
        *,
        max_rows: int,
        max_queue: int,
        prefill_chunk: int,
        kv_budget_bytes: int,
        bytes_per_token: int,
        owner_requests: int = 0,
        owner_rows: int = 0,
    ) -> None:
        self._max_rows = max_rows
        self._max_queue = max_queue
        self._prefill_chunk = prefill_chunk
        self._kv_budget = kv_budget_bytes
        self._bytes_per_token = bytes_per_token
        self._shares = OwnerShares(owner_requests, owner_rows)
        self._waiting: FairQueue[Ticket] = FairQueue()
        self._queued: dict[str, Ticket] = {}  # the same tickets, by request id

    @property
    def queued(self) -> int:
        """Requests waiting to join the batch."""
        return len(self._queued)

    def held(self, owner: str) -> tuple[int, int]:
        """The owner's requests and rows in the engine: tokenizing, waiting or running."""
        return self._shares.held(owner)

    # admission: a new request is taken in or refused at once

    def open_request(self, request_id: str, owner: str, rows: int, *, exempt: bool = False) -> Refusal | None:
        """Take a new request in, counted against its owner's share until `close_request`, or refuse
        it: `busy` while the queue is full, `limited` past its owner's requests or rows.

        `exempt` requests (the engine's own warm-up) are not held to the queue's bound.
        """
        if not exempt and self._queue_full():
            return self._full_refusal()
        return self._shares.claim(request_id, owner, rows)

    def queue_request(self, ticket: Ticket, *, exempt: bool = False) -> Refusal | None:
        """Queue a tokenized request to wait for rows, behind its owner's earlier ones; `busy` if the
        queue filled up while it was tokenized."""
        if not exempt and self._queue_full():
            return self._full_refusal()
        self._queued[ticket.id] = ticket
        self._waiting.push(ticket)
        return None

    def close_request(self, request_id: str) -> None:
        """The request has ended, wherever it was: it waits no more, and its owner's share is free."""
        self._shares.release(request_id)
        ticket = self._queued.pop(request_id, None)
        if ticket is not None:
            self._waiting.remove(ticket)

    def clear(self) -> None:
        """Forget every request: the engine has ended them all."""
        self._shares.clear()
        self._waiting.clear()
        self._queued.clear()

    # each step: who joins the batch, and what the step reads

    def next_admission(self, rows_in_use: int, kv_bytes: int, idle: Sequence[IdleSession]) -> Admission:
        """Whether the next waiting request joins the batch now: the head of the queue of the owner
        whose turn it is, so that one owner's backlog never stands before another owner's request.

        `rows_in_use` and `kv_bytes` are what the batch and the cached sessions hold now (with the
        requests admitted earlier in this step), `idle` the sessions no request uses, least recently
        used first. Idle sessions are evicted, never the request's own (its prefix is reused), until
        its KV fits. With nothing running a request joins whatever it needs, so that one larger
        than the budgets still runs, alone. A ticket returned has left the queue.
        """
        ticket = self._waiting.peek()
        if ticket is None:
            return Admission(None, wait=Wait.EMPTY)
        running = rows_in_use > 0
        if running and rows_in_use + ticket.rows > self._max_rows:
            return Admission(None, wait=Wait.ROWS)
        need = ticket.tokens * ticket.rows * self._bytes_per_token
        evict: list[str] = []
        for session in idle:
            if kv_bytes + need <= self._kv_budget:
                break
            if session.key != ticket.session:
                evict.append(session.key)
                kv_bytes -= session.nbytes
        if running and kv_bytes + need > self._kv_budget:
            return Admission(None, tuple(evict), Wait.KV)
        self._waiting.pop()
        del self._queued[ticket.id]
        return Admission(ticket, tuple(evict))

    def plan_step(self, running: Sequence[Progress]) -> list[Slot]:
        """This step's slots: every decoding request's, then prompt chunks while `prefill_chunk`
        tokens last, each in the order given (the order requests joined)."""
        slots = [Slot(p.id) for p in running if p.prompt_left == 0]
        budget = self._prefill_chunk
        for progress in running:
            if progress.prompt_left == 0:
                continue
            # a prompt is read in whole chunks from where its row starts, whatever else is in the
            # step, so that in bf16 a row's numbers do not depend on its neighbours
            chunk = min(progress.prompt_left, self._prefill_chunk)
            if chunk > budget:
                continue  # a later, shorter remainder may still fit; this one reads next step
            slots.append(Slot(progress.id, chunk))
            budget -= chunk
        return slots

    def _queue_full(self) -> bool:
        return len(self._queued) >= self._max_queue

    def _full_refusal(self) -> Refusal:
        return Refusal(Status.BUSY, f"the queue is full ({self._max_queue} requests waiting)")
