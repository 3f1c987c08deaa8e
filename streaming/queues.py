"""The requests waiting for rows: one queue per owner, served in turn, so that one owner's backlog
never stands in front of another owner's first request."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar


class Owned(Protocol):
    @property
    def owner(self) -> str: ...


T = TypeVar("T", bound=Owned)


class FairQueue(Generic[T]):
    """Waiting items by owner; `peek`/`pop` give the head of the queue of the owner whose turn it is."""

    def __init__(self) -> None:
        self._by_owner: OrderedDict[str, deque[T]] = OrderedDict()  # owners in turn order

    def __len__(self) -> int:
        return sum(len(items) for items in self._by_owner.values())

    def __iter__(self) -> Iterator[T]:
        return (item for items in self._by_owner.values() for item in items)

    def push(self, item: T) -> None:
        self._by_owner.setdefault(item.owner, deque()).append(item)

    def peek(self) -> T | None:
        for items in self._by_owner.values():
            return items[0]
        return None

    def pop(self) -> T:
        """Take the next item; its owner's next one waits for the owner's next turn."""
        owner, items = next(iter(self._by_owner.items()))
        item = items.popleft()
        del self._by_owner[owner]
        if items:
            self._by_owner[owner] = items
        return item

    def remove(self, item: T) -> None:
        items = self._by_owner.get(item.owner)
        if items is not None and item in items:
            items.remove(item)
            if not items:
                del self._by_owner[item.owner]

    def clear(self) -> None:
        self._by_owner.clear()
