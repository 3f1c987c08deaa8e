"""Who wrote since a room's text was last saved (`server.collab.authors`), on a clock the test turns."""

from __future__ import annotations

import pytest

from server.collab.authors import RecentAuthors


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_save_takes_everyone_in_the_order_they_last_wrote() -> None:
    clock = Clock()
    authors = RecentAuthors(clock)
    for name in ("ann", "bob", "ann", "cy"):
        clock.now += 1
        authors.wrote(name)
    assert authors.take() == ["bob", "ann", "cy"]
    assert authors.take() == []


def test_a_failed_save_puts_back_who_it_took_after_anyone_who_wrote_meanwhile() -> None:
    clock = Clock()
    authors = RecentAuthors(clock)
    authors.wrote("ann")
    clock.now = 1
    authors.wrote("bob")
    taken = authors.take()
    clock.now = 2
    authors.wrote("bob")  # during the save
    clock.now = 3
    authors.keep(taken)
    assert authors.take() == ["bob", "ann"]


async def test_a_hand_over_names_those_quiet_long_enough_and_forgets_them() -> None:
    clock = Clock()
    authors = RecentAuthors(clock)
    authors.wrote("ann")
    clock.now = 5
    authors.wrote("bob")
    clock.now = 10
    recorded: list[list[str]] = []

    async def record(names: list[str]) -> None:
        recorded.append(names)
        authors.wrote("ann")  # she writes again while her name is being recorded

    await authors.hand_over(6.0, record)
    assert recorded == [["ann"]]
    assert authors.take() == ["bob", "ann"]  # ann's new edit is named by the next save


async def test_a_failed_hand_over_forgets_no_one() -> None:
    clock = Clock()
    authors = RecentAuthors(clock)
    authors.wrote("ann")
    clock.now = 10

    async def record(names: list[str]) -> None:
        raise OSError("the database went away")

    with pytest.raises(OSError):
        await authors.hand_over(1.0, record)
    nobody: list[list[str]] = []

    async def never(names: list[str]) -> None:
        nobody.append(names)

    await authors.hand_over(20.0, never)  # nobody is quiet that long: nothing to record
    assert nobody == []
    assert authors.take() == ["ann"]
