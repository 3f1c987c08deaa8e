"""The requests waiting for rows: one queue per owner, served in turn, so that one owner's backlog
never stands in front of another owner's first request."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator

from streaming.jobs import Job


class FairQueue:
    """Waiting jobs by owner; `peek`/`pop` give the head of the queue of the owner whose turn it is."""

    def __init__(self) -> None:
        self._by_owner: OrderedDict[str, deque[Job]] = OrderedDict()  # owners in turn order

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._by_owner.values())

    def __iter__(self) -> Iterator[Job]:
        return (job for jobs in self._by_owner.values() for job in jobs)

    def push(self, job: Job) -> None:
        self._by_owner.setdefault(job.request.owner, deque()).append(job)

    def peek(self) -> Job | None:
        for jobs in self._by_owner.values():
            return jobs[0]
        return None

    def pop(self) -> Job:
        """Take the next job; its owner's next one waits for the owner's next turn."""
        owner, jobs = next(iter(self._by_owner.items()))
        job = jobs.popleft()
        del self._by_owner[owner]
        if jobs:
            self._by_owner[owner] = jobs
        return job

    def remove(self, job: Job) -> None:
        jobs = self._by_owner.get(job.request.owner)
        if jobs is not None and job in jobs:
            jobs.remove(job)
            if not jobs:
                del self._by_owner[job.request.owner]

    def clear(self) -> None:
        self._by_owner.clear()
