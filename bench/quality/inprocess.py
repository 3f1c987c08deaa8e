"""Offline mode (`--offline`): no server; the model in-process behind an Engine, asked at pauses
spread through each book as the socket asks it, and llama-server asked as a client would."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, replace
from typing import Any

import httpx

from bench.common import ROOT
from bench.quality.figures import NATURAL_ENDS, UPCOMING_CHARS, Judged, judge, offline_figures
from bench.quality.peerclient import peer_complete
from bench.quality.report import row
from bench.quality.variant import Variant, peer_label
from bench.writers import FRESH_CONNECTIONS, pause_points
from server.suggest.policy import final_text, to_request
from server.suggest.protocol import Suggest, SuggestSettings
from streaming.engine import Engine, EngineLimits
from streaming.loader import load_model
from streaming.params import Status
from streaming.runner import ModelRunner

CONTEXT_CHARS = 2000  # the text so far at an offline position
IN_FLIGHT = 16  # offline requests in the engine at once
OFFLINE_BUDGET_S = 600.0  # offline, a full engine is the point: no request runs out of time
PEER_IN_FLIGHT = 8


@dataclass(frozen=True)
class Position:
    """A pause in a book: the text so far, what follows, and the phrase typed just before."""

    before: str
    upcoming: str
    typed: int


def positions(book: str, count: int, rng: random.Random) -> list[Position]:
    """`count` pauses spread evenly through `book`, each at the end of a phrase as `pause_points`
    ends one (half after the space, half right after the word), with the text so far before it."""
    out = []
    room = len(book) - CONTEXT_CHARS - UPCOMING_CHARS - 1000
    for i in range(count):
        start = book.find(" ", CONTEXT_CHARS + room * i // count) + 1
        points = pause_points(book[start : start + 1000], rng, 1)
        if not start or not points:
            continue
        cursor = start + points[0]
        before = book[cursor - CONTEXT_CHARS : cursor]
        out.append(
            Position(before[before.find(" ") + 1 :], book[cursor : cursor + UPCOMING_CHARS], points[0])
        )
    return out


async def cowrite_offline(engine: Engine, variant: Variant, spots: list[Position]) -> list[Judged]:
    """Cowrite's suggestion at each position, requested and filtered as the socket does."""
    settings = SuggestSettings(max_tokens=variant.max_tokens, temperature=variant.temperature)
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(number: int, spot: Position) -> Judged:
        message = Suggest(v=1, type="suggest", id=f"q{number}", before=spot.before, settings=settings)
        session = f"quality-{number}"
        request = to_request(message, session, "", "", variant.policy)
        text, reason = "", str(Status.FINISHED)
        if request is not None:
            async with gate:
                generation = await engine.submit(
                    replace(request, seed=number, time_budget_s=OFFLINE_BUDGET_S)
                )
                completion = await generation.result()
                engine.close_session(session)
            alternative = completion.alternatives[0]
            text = final_text(alternative.text, spot.before, "")
            reason = str(alternative.status or completion.status)
        whole = variant.policy.whole_words or reason in NATURAL_ENDS
        return judge(text, spot.before, spot.upcoming, whole, typed=spot.typed)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(i, spot)) for i, spot in enumerate(spots)]
    return [task.result() for task in tasks]


async def peer_offline(base: str, variant: Variant, spots: list[Position]) -> list[Judged]:
    """llama-server's suggestion at each position, whole (not streamed), cut as a client would."""
    gate = asyncio.Semaphore(PEER_IN_FLIGHT)
    async with httpx.AsyncClient(base_url=base, timeout=600, limits=FRESH_CONNECTIONS) as http:

        async def one(number: int, spot: Position) -> Judged:
            async with gate:
                text, reason = await peer_complete(http, variant, spot.before, number)
            return judge(text, spot.before, spot.upcoming, reason in NATURAL_ENDS, typed=spot.typed)

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(i, spot)) for i, spot in enumerate(spots)]
    return [task.result() for task in tasks]


async def offline(
    library: dict[str, str],
    chosen: list[Variant],
    count: int,
    model: str | None = None,
    peer_base: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The offline report: for each book, each variant's figures (and llama-server's)."""
    spots = {name: positions(text, count, random.Random(f"{seed}-{name}")) for name, text in library.items()}
    loaded = load_model(model, "auto", "auto", ROOT / "data" / "models")
    # no shortening under load: the engine is full on purpose here, and it is quality we measure
    limits = EngineLimits(max_rows=IN_FLIGHT, crowded_rows=0)
    report: dict[str, Any] = {name: {} for name in library}
    peers_done: set[Variant] = set()
    async with Engine(ModelRunner(loaded.model), loaded.tokenizer, limits) as engine:
        for variant in chosen:
            for name in library:
                started = time.perf_counter()
                report[name][variant.label] = offline_figures(
                    await cowrite_offline(engine, variant, spots[name])
                )
                row(name, variant.label, report[name][variant.label], time.perf_counter() - started)
            if peer_base is None or variant.peer in peers_done:
                continue
            peers_done.add(variant.peer)
            label = peer_label(variant)
            for name in library:
                started = time.perf_counter()
                report[name][label] = offline_figures(
                    await peer_offline(peer_base, variant.peer, spots[name])
                )
                row(name, label, report[name][label], time.perf_counter() - started)
    return report
