"""Online mode (the default): simulated writers type each book at a human pace against a real
server, Cowrite's or llama-server's, and every pause they resume from is judged."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.quality.figures import Judged, figures
from bench.quality.peerclient import PolicyPeerSuggester
from bench.quality.recorder import Recorder
from bench.quality.report import median, plural, row
from bench.quality.servers import cowrite_server, model_env, peer_server
from bench.quality.variant import Variant, peer_label, server_env
from bench.writers import FRESH_CONNECTIONS, CowriteSuggester, WriterResult, material, type_and_pause
from harness.accounts import account_async

BOOK_MIN_CHARS = 240_000  # the online writers' material reaches 230,000 characters in


class FrameTap:
    """The suggestion socket as CowriteSuggester reads it, telling the recorder of each `done`."""

    def __init__(self, ws: Any, recorder: Recorder) -> None:
        self.ws = ws
        self.recorder = recorder
        self.suggester: CowriteSuggester | None = None

    async def send(self, data: str) -> None:
        await self.ws.send(data)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[str]:
        async for raw in self.ws:
            frame = json.loads(raw)
            current = self.suggester.current if self.suggester is not None else None
            if frame["type"] == "done" and current is not None and frame.get("id") == current[0]:
                alternatives = frame.get("alternatives") or [{"text": ""}]
                self.recorder.ended(current[1], alternatives[0]["text"], frame.get("reason", ""))
            yield raw


async def cowrite_writer(
    base: str, index: int, book: str, args: argparse.Namespace, variant: Variant
) -> tuple[WriterResult, list[Judged]]:
    """One writer typing `book`'s material in their own document, watched pause by pause."""
    rng = random.Random(1000 + index)
    opening, to_type = material(book, index, args)
    result, recorder = WriterResult(), Recorder()
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        me = await account_async(http, f"writer{index}")
        http.headers.update(me)
        doc = (await http.post("/api/documents", json={"title": f"Writer {index}"})).json()["id"]
        await http.patch(f"/api/documents/{doc}", json={"text": opening})

        async def save(text: str) -> None:
            await http.patch(f"/api/documents/{doc}", json={"text": text})

        ws_url = base.replace("http", "ws", 1) + f"/ws/suggest/{doc}?tab=quality{index}"
        async with websockets.connect(ws_url, max_size=2**20, additional_headers=me) as ws:
            json.loads(await ws.recv())  # hello
            tap = FrameTap(ws, recorder)
            tap.suggester = CowriteSuggester(tap, variant.max_tokens, variant.temperature)
            recorder.inner = tap.suggester
            reader = asyncio.create_task(tap.suggester.read())
            try:
                await type_and_pause(recorder, opening, to_type, rng, args, result, save)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
    return result, recorder.judged(opening + to_type, variant.policy.whole_words)


async def peer_writer(
    base: str, index: int, book: str, args: argparse.Namespace, variant: Variant
) -> tuple[WriterResult, list[Judged]]:
    rng = random.Random(1000 + index)
    opening, to_type = material(book, index, args)
    result, recorder = WriterResult(), Recorder()
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=FRESH_CONNECTIONS) as http:
        recorder.inner = PolicyPeerSuggester(http, variant, recorder)
        await type_and_pause(recorder, opening, to_type, rng, args, result)
    return result, recorder.judged(opening + to_type, whole_words=False)


async def online_run(
    base: str, peer: bool, writers: int, book: str, args: argparse.Namespace, variant: Variant
) -> dict[str, float | None]:
    """One run of `writers` writers on `book`: Cowrite's, or llama-server's (`peer`)."""
    play = peer_writer if peer else cowrite_writer
    async with asyncio.TaskGroup() as group:  # a writer that fails ends the run
        tasks = [group.create_task(play(base, i, book, args, variant)) for i in range(writers)]
    outcomes = [task.result() for task in tasks]
    characters = sum(result.characters for result, _ in outcomes)
    judged = [j for _, js in outcomes for j in js]
    return figures(judged, characters, online=True)


def online(args: argparse.Namespace, library: dict[str, str], chosen: list[Variant]) -> dict[str, Any]:
    """The online report: per writers count and book, each variant's runs and their medians."""
    for name, text in library.items():
        if len(text) < BOOK_MIN_CHARS:  # the fallback prose: played again from its start
            library[name] = (text + "\n\n") * (1 + BOOK_MIN_CHARS // len(text))
    report: dict[str, Any] = {f"writers_{n}": {name: {} for name in library} for n in args.writers}
    with contextlib.ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        peer_base = stack.enter_context(peer_server(data_dir, args.peer_gguf)) if args.peer else None
        peers_done: set[Variant] = set()
        for variant in chosen:
            play_peer = peer_base is not None and variant.peer not in peers_done
            peers_done.add(variant.peer)
            with cowrite_server(data_dir, server_env(variant) | model_env(args.model)) as base:
                for writers, name in itertools.product(args.writers, library):
                    kinds = [(variant.label, base, False)]
                    if play_peer and peer_base is not None:
                        kinds.append((peer_label(variant), peer_base, True))
                    runs: dict[str, list[dict[str, float | None]]] = {label: [] for label, _, _ in kinds}
                    for number in range(args.runs):
                        for label, url, peer in kinds:  # alternately, so a noisy minute hurts both
                            runs[label].append(
                                asyncio.run(online_run(url, peer, writers, library[name], args, variant))
                            )
                            row(f"{name}, {plural(writers)}, run {number + 1}", label, runs[label][-1])
                    for label, got in runs.items():
                        report[f"writers_{writers}"][name][label] = {"runs": got, "median": median(got)}
    return report
