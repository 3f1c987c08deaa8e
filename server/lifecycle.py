"""`Lifecycle`: the base of the long-lived services entered in the app's lifespan (the rooms, the
Redis broker, the socket registry, periodic jobs), whose tasks and clean-ups live on one stack."""

from __future__ import annotations

from contextlib import AsyncExitStack
from types import TracebackType
from typing import Self


class Lifecycle:
    """An async context manager: entering runs `_start(stack)`, which starts what the service runs
    and pushes how each part stops; leaving unwinds that stack, last in first out. A start that
    fails unwinds whatever it had pushed, so nothing is left running."""

    _stack: AsyncExitStack | None = None

    async def _start(self, stack: AsyncExitStack) -> None:
        raise NotImplementedError(f"{type(self).__name__} must say how it starts (`_start`)")

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            await self._start(stack)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """RuntimeError when it is not running: enter it with `async with` first."""
        if self._stack is None:
            raise RuntimeError(f"{type(self).__name__} is not running: enter it with `async with` first")
        stack, self._stack = self._stack, None
        await stack.aclose()
