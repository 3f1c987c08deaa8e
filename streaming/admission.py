"""Who may enter an engine: each owner's share of it (requests and rows in flight), and the refusal
that says why a request was not taken. `Engine` and `RemoteEngine` both admit by `OwnerShares`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from streaming.params import Status


@dataclass(frozen=True)
class Refusal:
    """A request not taken: it ends at once with `status` (`busy`, `limited`), `reason` saying why."""

    status: Status
    reason: str


class OwnerShares:
    """Each owner's requests and rows in flight, within `requests` and `rows` per owner (0: no cap).

    A request holds its share from `claim` to `release`; requests without an owner are not capped.
    """

    def __init__(self, requests: int, rows: int) -> None:
        assert requests >= 0 and rows >= 0
        self._max_requests = requests
        self._max_rows = rows
        self._held: dict[str, tuple[str, int]] = {}  # request id -> (owner, rows)
        self._requests: Counter[str] = Counter()
        self._rows: Counter[str] = Counter()

    def claim(self, request_id: str, owner: str, rows: int) -> Refusal | None:
        """Count the request against its owner's share, or say why it does not fit (`limited`)."""
        if owner:
            held, taken = self._requests[owner], self._rows[owner]
            if self._max_requests and held >= self._max_requests:
                return Refusal(Status.LIMITED, f"its owner has {held} requests in progress")
            if self._max_rows and taken + rows > self._max_rows:
                return Refusal(Status.LIMITED, f"its owner has {taken} of its {self._max_rows} rows in use")
        assert request_id not in self._held, f"request {request_id} claimed its share twice"
        self._held[request_id] = (owner, rows)
        self._requests[owner] += 1
        self._rows[owner] += rows
        return None

    def release(self, request_id: str) -> None:
        """The request has ended (or was never taken): its owner's share is free again."""
        held = self._held.pop(request_id, None)
        if held is None:
            return
        owner, rows = held
        self._requests[owner] -= 1
        self._rows[owner] -= rows
        if not self._requests[owner]:
            del self._requests[owner], self._rows[owner]

    def held(self, owner: str) -> tuple[int, int]:
        """The owner's requests and rows in flight."""
        return self._requests[owner], self._rows[owner]

    def clear(self) -> None:
        self._held.clear()
        self._requests.clear()
        self._rows.clear()
