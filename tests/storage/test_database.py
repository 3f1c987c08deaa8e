"""`Store`: its observer hears of every transaction run through `run`, failed ones included."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from storage import accounts
from storage.accounts import UsernameTaken
from storage.database import Store


async def test_the_observer_is_told_each_query_and_its_time(database_url: str) -> None:
    heard: list[tuple[str, float]] = []

    def observe(operation: str, seconds: float) -> None:
        heard.append((operation, seconds))

    async with Store(database_url, observer=observe) as store:
        await store.run(accounts.create_user, "ann", "hash-of-ann")
        with pytest.raises(UsernameTaken):
            await store.run(accounts.create_user, "ann", "another-hash")
        assert await store.run(accounts.count_users) == 1

    assert [operation for operation, _ in heard] == ["create_user", "create_user", "count_users"]
    assert all(seconds > 0 for _, seconds in heard)


async def test_a_store_without_an_observer_runs_as_before(database_url: str) -> None:
    def answer(session: Session) -> int:
        return 42

    async with Store(database_url) as store:
        assert await store.run(answer) == 42
