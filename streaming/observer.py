"""What the engine tells an observer as it works (the server counts it for its metrics).

The engine knows nothing of Prometheus: it calls these methods, if it was given an observer.
"""

from __future__ import annotations

from typing import Protocol

from streaming.params import Status


class EngineObserver(Protocol):
    """Told of the decode loop's work as it happens.

    Called on the event loop, inside the loop's own bookkeeping: each call must be cheap and must
    not raise (an exception there counts as a fault of the decode loop, which then restarts).
    """

    def step(self, seconds: float, rows: int) -> None:
        """One step ran: its forward pass and sampling took `seconds` over `rows` rows."""

    def first_token(self, seconds: float) -> None:
        """A request's first token came `seconds` after it was submitted (tokenizing and queueing
        included)."""

    def ended(self, status: Status, tokens: int) -> None:
        """A request ended with `status`, having generated `tokens` tokens over its alternatives.

        Called once per request, refused ones (`busy`, `limited`) included.
        """
