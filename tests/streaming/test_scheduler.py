"""The scheduler on its own, with no model and no event loop: admission under the row and KV budgets,
owners' caps and turns, the queue's bound, and step plans, all answered as decisions."""

from __future__ import annotations

from streaming.admission import Refusal
from streaming.params import Status
from streaming.scheduler import Admission, IdleSession, Progress, Scheduler, Slot, Ticket, Wait

BOUNDS = {
    "max_rows": 8,
    "max_queue": 8,
    "prefill_chunk": 256,
    "kv_budget_bytes": 1 << 20,
    "bytes_per_token": 1,
}


def make_scheduler(**bounds: int) -> Scheduler:
    return Scheduler(**{**BOUNDS, **bounds})


def submit(scheduler: Scheduler, request_id: str, owner: str = "", rows: int = 1, tokens: int = 10) -> Ticket:
    """Take a request in and queue it, as the engine does around tokenizing; it must be accepted."""
    assert scheduler.open_request(request_id, owner, rows) is None
    ticket = Ticket(request_id, owner, f"session-{request_id}", rows, tokens)
    assert scheduler.queue_request(ticket) is None
    return ticket


def admit_all(scheduler: Scheduler, rows_in_use: int = 0) -> list[str]:
    """Admit as the engine does in one step, with no KV held: the ids that joined, in order."""
    joined: list[str] = []
    while (admission := scheduler.next_admission(rows_in_use, 0, [])).ticket is not None:
        joined.append(admission.ticket.id)
        rows_in_use += admission.ticket.rows
    return joined


# admission: refused at once, or taken in


def test_a_request_past_the_queues_bound_is_busy_until_one_leaves_the_queue() -> None:
    scheduler = make_scheduler(max_queue=2)
    submit(scheduler, "a")
    submit(scheduler, "b")
    refused = scheduler.open_request("c", "", 1)
    assert refused == Refusal(Status.BUSY, "the queue is full (2 requests waiting)")
    assert scheduler.open_request("warm-up", "", 1, exempt=True) is None, "the warm-up is not bounded"

    scheduler.close_request("a")
    assert scheduler.queued == 1
    assert scheduler.open_request("c", "", 1) is None


def test_a_request_tokenized_while_the_queue_filled_is_busy() -> None:
    scheduler = make_scheduler(max_queue=1)
    assert scheduler.open_request("late", "ann", 1) is None  # taken in, then tokenized...
    submit(scheduler, "quick", "bob")  # ...while another filled the queue
    refused = scheduler.queue_request(Ticket("late", "ann", "s", 1, 10))
    assert refused is not None and refused.status is Status.BUSY
    assert scheduler.queued == 1


def test_an_owner_past_its_requests_or_rows_is_limited_and_others_are_not() -> None:
    scheduler = make_scheduler(owner_requests=2, owner_rows=3)
    submit(scheduler, "ann-1", "ann")
    submit(scheduler, "ann-2", "ann")
    assert scheduler.open_request("ann-3", "ann", 1) == Refusal(
        Status.LIMITED, "its owner has 2 requests in progress"
    )
    assert scheduler.open_request("bob-1", "bob", 3) is None

    scheduler.close_request("ann-2")
    assert scheduler.open_request("ann-4", "ann", 3) == Refusal(
        Status.LIMITED, "its owner has 1 of its 3 rows in use"
    )
    assert scheduler.open_request("ann-5", "ann", 2) is None
    assert scheduler.held("ann") == (2, 3) and scheduler.held("bob") == (1, 3)


def test_an_owner_holds_its_share_from_submission_to_its_end_wherever_the_request_is() -> None:
    scheduler = make_scheduler(owner_requests=1)
    submit(scheduler, "ann-1", "ann")
    assert admit_all(scheduler) == ["ann-1"]
    refused = scheduler.open_request("ann-2", "ann", 1)
    assert refused is not None and refused.status is Status.LIMITED, "a running request holds its share"
    scheduler.close_request("ann-1")
    assert scheduler.held("ann") == (0, 0)
    assert scheduler.open_request("ann-2", "ann", 1) is None


def test_requests_without_an_owner_are_not_capped() -> None:
    scheduler = make_scheduler(owner_requests=1, owner_rows=1)
    for index in range(5):
        submit(scheduler, f"anonymous-{index}", rows=2)
    assert scheduler.queued == 5


def test_a_refused_or_unknown_request_closes_without_freeing_anyone_elses_share() -> None:
    scheduler = make_scheduler(owner_requests=1)
    submit(scheduler, "ann-1", "ann")
    assert scheduler.open_request("ann-2", "ann", 1) is not None
    scheduler.close_request("ann-2")  # the engine ends the refused request like any other
    scheduler.close_request("never-seen")
    assert scheduler.held("ann") == (1, 1) and scheduler.queued == 1


# joining the batch: rows, KV and turns


def test_waiting_owners_join_in_turn() -> None:
    scheduler = make_scheduler(owner_requests=8)
    for index in range(3):
        submit(scheduler, f"ann-{index}", "ann")
    submit(scheduler, "bob-0", "bob")
    submit(scheduler, "cat-0", "cat")
    submit(scheduler, "bob-1", "bob")
    assert admit_all(scheduler) == ["ann-0", "bob-0", "cat-0", "ann-1", "bob-1", "ann-2"]


def test_one_row_at_a_time_a_backlog_does_not_stand_before_another_owners_request() -> None:
    scheduler = make_scheduler(max_rows=1, owner_requests=8)
    for index in range(3):
        submit(scheduler, f"ann-{index}", "ann")
    submit(scheduler, "bob-0", "bob")
    assert scheduler.next_admission(1, 0, []) == Admission(None, wait=Wait.ROWS)
    order: list[str] = []
    while scheduler.queued:  # each step, the one row frees and the next request takes it
        joined = admit_all(scheduler)
        assert len(joined) == 1, "one row: one request a step"
        order += joined
    assert order == ["ann-0", "bob-0", "ann-1", "ann-2"]


def test_a_request_waits_for_free_rows_and_its_turn_is_not_taken() -> None:
    scheduler = make_scheduler(max_rows=4)
    submit(scheduler, "ann-wide", "ann", rows=3)
    submit(scheduler, "bob-narrow", "bob", rows=1)
    assert scheduler.next_admission(2, 0, []) == Admission(None, wait=Wait.ROWS)
    assert scheduler.queued == 2, "bob's one row would fit, but it is ann's turn"
    assert admit_all(scheduler, rows_in_use=1) == ["ann-wide"]
    assert admit_all(scheduler, rows_in_use=0) == ["bob-narrow"]


def test_rows_admitted_in_a_step_count_against_the_rest_of_it() -> None:
    scheduler = make_scheduler(max_rows=4)
    for name in ("a", "b", "c"):
        submit(scheduler, name, name, rows=2)
    assert admit_all(scheduler) == ["a", "b"]
    assert scheduler.queued == 1


def test_with_nothing_running_a_request_joins_whatever_it_needs() -> None:
    scheduler = make_scheduler(max_rows=2, kv_budget_bytes=100)
    submit(scheduler, "huge", rows=4, tokens=1000)
    admission = scheduler.next_admission(0, 500, [IdleSession("old", 500)])
    assert admission.ticket is not None and admission.ticket.id == "huge"
    assert admission.evict == ("old",), "it still makes what room there is"


def test_idle_sessions_are_evicted_least_recently_used_first_until_the_kv_fits() -> None:
    scheduler = make_scheduler(kv_budget_bytes=1000, bytes_per_token=2)
    ticket = submit(scheduler, "next", rows=2, tokens=50)  # 2 rows x 50 tokens x 2 bytes = 200
    idle = [IdleSession("oldest", 100), IdleSession(ticket.session, 500), IdleSession("older", 200)]
    idle.append(IdleSession("newest", 300))
    admission = scheduler.next_admission(1, 1100, idle)
    # 1100 + 200 > 1000: "oldest" goes; its own session stays (its prefix is reused); 800 + 200 fits
    assert admission == Admission(ticket, ("oldest", "older"))
    assert scheduler.queued == 0


def test_a_request_whose_kv_cannot_fit_waits_and_its_evictions_stand() -> None:
    scheduler = make_scheduler(kv_budget_bytes=1000)
    submit(scheduler, "big", tokens=900)
    admission = scheduler.next_admission(1, 400, [IdleSession("a", 100), IdleSession("b", 100)])
    assert admission == Admission(None, ("a", "b"), Wait.KV)
    assert scheduler.queued == 1
    admission = scheduler.next_admission(1, 100, [])  # the next step, with the batch's KV freed
    assert admission.ticket is not None and admission.ticket.id == "big"


def test_decisions_are_returned_for_the_engine_to_carry_out_not_applied() -> None:
    scheduler = make_scheduler(kv_budget_bytes=1000)
    submit(scheduler, "big", tokens=700)
    idle = [IdleSession("old", 300)]
    first = scheduler.next_admission(1, 900, idle)
    assert first == Admission(None, ("old",), Wait.KV)
    assert idle == [IdleSession("old", 300)], "the caller's sessions are the caller's to evict"
    # the scheduler evicted nothing itself: told the same again, it answers the same
    assert scheduler.next_admission(1, 900, idle) == first
    assert scheduler.next_admission(1, 300, []).ticket is not None, "it fits once the KV is freed"


def test_an_empty_queue_admits_nothing() -> None:
    scheduler = make_scheduler()
    assert scheduler.next_admission(0, 0, [IdleSession("old", 1 << 30)]) == Admission(None, wait=Wait.EMPTY)


def test_clear_forgets_every_request_and_share() -> None:
    scheduler = make_scheduler(owner_requests=1)
    submit(scheduler, "ann-1", "ann")
    scheduler.clear()
    assert scheduler.queued == 0 and scheduler.held("ann") == (0, 0)
    assert scheduler.next_admission(0, 0, []).wait is Wait.EMPTY


# planning a step


def test_a_step_decodes_every_running_request_then_reads_prompts_within_the_chunk_budget() -> None:
    scheduler = make_scheduler(prefill_chunk=256)
    running = [
        Progress("long", 300),
        Progress("decoding-1"),
        Progress("short", 100),
        Progress("decoding-2"),
    ]
    assert scheduler.plan_step(running) == [
        Slot("decoding-1"),
        Slot("decoding-2"),
        Slot("long", 256),  # a whole chunk; the rest next step
    ]


def test_a_prompt_chunk_that_does_not_fit_waits_and_a_later_one_that_does_is_read() -> None:
    scheduler = make_scheduler(prefill_chunk=256)
    running = [Progress("first", 100), Progress("wide", 200), Progress("narrow", 100), Progress("tiny", 60)]
    assert scheduler.plan_step(running) == [Slot("first", 100), Slot("narrow", 100)]
    assert scheduler.plan_step([Progress("wide", 200), Progress("tiny", 60)]) == [Slot("wide", 200)]


def test_a_step_with_nothing_running_is_empty() -> None:
    assert make_scheduler().plan_step([]) == []
