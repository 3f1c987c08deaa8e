"""What the server needs of an engine, wherever the model runs: `Engine` in this process, or
`RemoteEngine` in front of another server. Both satisfy `GenerationEngine`."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

if TYPE_CHECKING:
    from streaming.engine import EngineLimits, EngineStats
    from streaming.jobs import Generation
    from streaming.params import GenerationRequest

LOCAL = "local"


@dataclass
class ModelInfo:
    """Which model serves the suggestions, on what, and where: `where` is "local" (this process)
    or the engine's URL without credentials. A remote engine fills it in as its server answers."""

    name: str
    device: str
    dtype: str
    where: str = LOCAL


class GenerationEngine(Protocol):
    """Prompts in, streams of deltas out: submit, iterate, cancel; an async context manager."""

    limits: EngineLimits  # the owners' shares, as `server/` reports them in a refusal
    failure: str | None  # why the engine cannot serve now, while it cannot
    last_failure: str | None
    restarts: int
    warmed: bool

    async def submit(self, request: GenerationRequest) -> Generation:
        """Start a request; InvalidRequest for one out of bounds. A request that cannot be taken
        ends at once (`busy`, `limited`); a newer one under the same session supersedes it."""
        ...

    def cancel(self, request_id: str) -> bool:
        """Cancel a request; False if it is unknown or already over."""
        ...

    def close_session(self, session: str) -> None:
        """The session's caller is gone: its cached context may be freed."""
        ...

    def stats(self) -> EngineStats: ...

    async def warm_up(self) -> None:
        """Get ready before the first writer asks."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
