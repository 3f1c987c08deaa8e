"""Simulated writers against a real server (`make bench`, part two; `--peer` adds llama.cpp).

Each writer opens its own document holding a stretch of the novel and starts typing the text that
follows at once (the editor's `prime` is sent, nobody waits for it), character by character,
pausing between phrases. As the editor does, it asks for a suggestion 300 ms into each pause and
stops it when it types again. When the pause ends the writer takes the whole words shown so far
that match what they were about to type (one Tab for them), and types on from there.

Measured per pause, and reported per run and as medians over runs:
- first text: from the request to the first visible text. A pause that saw no text before the
  writer resumed is a miss, and counts in every percentile: a percentile that lands on one is
  reported as "missed".
- whole suggestion: from the request to its end (all `--max-tokens`, or a stop), a miss likewise
  when it had not ended before the writer resumed.
- shown: the share of pauses with text on screen before the writer resumed.
- keystroke savings: characters the writer did not type, less one Tab per acceptance, over all
  the characters of the text they produced.

`--temperature 0 0.3 0.7` and `--notes-chars 0 1000` compare Cowrite variants: every run plays
each combination in turn, with the same writers and text (a writer's document gets that many
characters of notes for suggestions, the brief the engine reads before the text).

`--peer` runs the same workload, alternately and with the same writers, against llama.cpp's
`llama-server` on the same GGUF file (`make bench-peer` builds it; see bench/peer.py) over its
streamed `/v1/completions`, cancelled by closing the stream, and reports the ratios. Results go to
bench/results/writers.json (bench/results/writers-peer.json with `--peer`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import re
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import websockets

from bench.common import CORPUS, FALLBACK, ROOT, percentile
from bench.peer import serve as serve_peer
from bench.peer import wait_peer_ready
from harness.accounts import account_async
from harness.processes import free_port, start_server, wait_ready

RESULTS = ROOT / "bench" / "results" / "writers.json"
PEER_RESULTS = ROOT / "bench" / "results" / "writers-peer.json"
TRIGGER_S = 0.3  # the editor's default pause before asking
WORD_END = re.compile(r"[\s.,;:!?\"')\]-]")
MISSED = math.inf
# llama-server closes idle keep-alive connections; a request sent on one as it closes would fail
FRESH_CONNECTIONS = httpx.Limits(max_keepalive_connections=0)


@dataclass
class Attempt:
    """One suggestion as the writer sees it: when it was asked for, its text as it arrived."""

    sent: float
    chunks: list[tuple[float, str]] = field(default_factory=list)
    ended: float | None = None
    first_tokens: int | None = None  # tokens generated when the first text came (Cowrite says)

    def shown_by(self, moment: float) -> str:
        return "".join(text for at, text in self.chunks if at <= moment)

    def first_text(self) -> float | None:
        return next((at for at, text in self.chunks if text), None)


@dataclass
class Pause:
    first_text_s: float  # MISSED when no text came before the writer resumed
    whole_s: float  # MISSED when the suggestion had not ended before the writer resumed
    saved: int  # characters taken with Tab, less the Tab
    after_word: bool = False  # the writer paused right after a word, before its space
    glued: bool = False  # ... and the suggestion went on with letters, gluing them onto it
    extra_steps: int | None = None  # steps before the first text beyond the first (token healing)


@dataclass
class WriterResult:
    pauses: list[Pause] = field(default_factory=list)
    characters: int = 0  # of the text produced, typed or taken


class Suggester(Protocol):
    """One writer's connection to a server that makes suggestions."""

    async def prime(self, before: str) -> None: ...
    async def suggest(self, before: str) -> Attempt: ...
    async def stop(self) -> None: ...


class CowriteSuggester:
    """The editor's suggestion socket: `suggest`, `delta`/`done` frames, `cancel`."""

    def __init__(self, ws: Any, max_tokens: int, temperature: float) -> None:
        self.ws = ws
        self.settings = {"max_tokens": max_tokens, "temperature": temperature, "n": 1}
        self.current: tuple[str, Attempt] | None = None
        self.ended = asyncio.Event()
        self.count = 0

    async def read(self) -> None:
        async for raw in self.ws:
            frame = json.loads(raw)
            if self.current is None or frame.get("id") != self.current[0]:
                continue
            attempt = self.current[1]
            if frame["type"] == "delta":
                attempt.chunks.append((time.perf_counter(), frame["text"]))
                if attempt.first_tokens is None and frame["text"]:
                    attempt.first_tokens = frame.get("tokens")
            elif frame["type"] in ("done", "error"):
                attempt.ended = time.perf_counter()
                self.ended.set()

    async def prime(self, before: str) -> None:
        await self.ws.send(json.dumps({"v": 1, "type": "prime", "before": before}))

    async def suggest(self, before: str) -> Attempt:
        self.count += 1
        request_id = f"s{self.count}"
        attempt = Attempt(time.perf_counter())
        self.current, self.ended = (request_id, attempt), asyncio.Event()
        frame = {"v": 1, "type": "suggest", "id": request_id, "before": before, "after": ""}
        await self.ws.send(json.dumps(frame | {"settings": self.settings}))
        return attempt

    async def stop(self) -> None:
        """Typing again: cancel what is still generating and wait for its `done`."""
        if self.current is None:
            return
        request_id, attempt = self.current
        if attempt.ended is None:
            await self.ws.send(json.dumps({"v": 1, "type": "cancel", "id": request_id}))
            await asyncio.wait_for(self.ended.wait(), 30)
        self.current = None


class PeerSuggester:
    """llama-server's streamed `/v1/completions`; typing again closes the stream."""

    def __init__(self, http: httpx.AsyncClient, max_tokens: int, temperature: float) -> None:
        self.http = http
        self.params = {"max_tokens": max_tokens, "temperature": temperature, "top_p": 0.95, "top_k": 50}
        self.task: asyncio.Task[None] | None = None
        self.primes: set[asyncio.Task[Any]] = set()

    async def prime(self, before: str) -> None:
        # the equivalent of the editor's prime: read the context, ask for one token, do not wait
        body = {"prompt": before, "max_tokens": 1, "cache_prompt": True}
        task = asyncio.create_task(self.http.post("/v1/completions", json=body))
        self.primes.add(task)
        task.add_done_callback(self.primes.discard)

    async def suggest(self, before: str) -> Attempt:
        attempt = Attempt(time.perf_counter())
        body = self.params | {"prompt": before, "stream": True, "cache_prompt": True, "stop": ["\n\n"]}
        self.task = asyncio.create_task(self._stream(body, attempt))
        return attempt

    async def _stream(self, body: dict[str, Any], attempt: Attempt) -> None:
        async with self.http.stream("POST", "/v1/completions", json=body) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line.removeprefix("data: ")
                if data == "[DONE]":
                    break
                for choice in json.loads(data).get("choices", []):
                    if choice.get("text"):
                        attempt.chunks.append((time.perf_counter(), choice["text"]))
        attempt.ended = time.perf_counter()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()  # closes the connection: the server stops generating
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self.task
            self.task = None


def taken(shown: str, upcoming: str, after_space: bool) -> int:
    """How many characters of `upcoming` the writer takes from `shown`: the longest run of whole
    words that matches what they were about to type (0 when not even one word does)."""
    if after_space:
        shown = shown.lstrip(" ")  # a client never doubles the space the writer just typed
    best = 0
    limit = min(len(shown), len(upcoming))
    k = 0
    while k < limit and shown[k] == upcoming[k]:
        k += 1
        at_word_end = k == len(upcoming) or WORD_END.match(upcoming[k]) is not None
        if at_word_end and any(c.isalnum() for c in upcoming[:k]):
            best = k
    return best


def pause_points(text: str, rng: random.Random, count: int) -> list[int]:
    """Where the writer pauses: after phrases of 3 to 9 words, half the time after the space that
    follows the last word and half the time right after the word itself."""
    points, i = [], 0
    for _ in range(count):
        for _ in range(rng.randint(3, 9)):
            nxt = text.find(" ", i)
            if nxt < 0:
                return points
            i = nxt + 1
        points.append(i if rng.random() < 0.5 else i - 1)
    return points


async def type_and_pause(
    suggester: Suggester,
    opening: str,
    to_type: str,
    rng: random.Random,
    args: argparse.Namespace,
    result: WriterResult,
    save: Callable[[str], Awaitable[Any]] | None = None,
) -> None:
    """Type `to_type` after `opening`, pausing at phrase ends; ask, wait, take what matches."""
    await suggester.prime(opening)
    points = pause_points(to_type, rng, args.pauses)
    done, text = 0, opening
    for point in points:
        if point <= done:
            continue  # taken with Tab already
        for char in to_type[done:point]:
            text += char
            await asyncio.sleep(rng.uniform(0.6, 1.4) * args.char_s)
        result.characters += point - done
        done = point
        # the editor saves as it goes; through the live document, like anyone's edits
        saving = asyncio.create_task(save(text)) if save is not None else None
        pause = rng.uniform(args.pause_min_s, args.pause_max_s)
        await asyncio.sleep(TRIGGER_S)
        attempt = await suggester.suggest(text)
        resume_at = attempt.sent + pause - TRIGGER_S
        await asyncio.sleep(max(0.0, resume_at - time.perf_counter()))
        resumed = time.perf_counter()
        await suggester.stop()
        if saving is not None:
            await saving
        first = attempt.first_text()
        shown = attempt.shown_by(resumed)
        k = taken(shown, to_type[done:], text.endswith(" "))
        after_word = text[-1:].isalpha() and not to_type[done : done + 1].isalpha()
        whole_text = "".join(chunk for _, chunk in attempt.chunks)
        result.pauses.append(
            Pause(
                first_text_s=MISSED if first is None or first > resumed else first - attempt.sent,
                whole_s=MISSED
                if attempt.ended is None or attempt.ended > resumed
                else attempt.ended - attempt.sent,
                saved=max(0, k - 1),
                after_word=after_word,
                glued=after_word and whole_text[:1].isalpha(),
                extra_steps=None if attempt.first_tokens is None else attempt.first_tokens - 1,
            )
        )
        if k:
            text += to_type[done : done + k]
            result.characters += k
            done += k


def material(novel: str, index: int, args: argparse.Namespace) -> tuple[str, str]:
    """A writer's opening (already in the document) and the text they go on to type."""
    offset = 20_000 + index * 25_000
    opening = novel[offset : offset + args.opening_chars]
    opening = opening[: opening.rfind(" ") + 1]
    start = offset + len(opening)
    return opening, novel[start : start + 6000]


@dataclass(frozen=True)
class Variant:
    """One way to run Cowrite's writers: a temperature, and how many characters of notes."""

    temperature: float
    notes_chars: int

    @property
    def label(self) -> str:
        return f"cowrite t={self.temperature:g} notes={self.notes_chars}"


def notes_for(novel: str, chars: int) -> str:
    """A brief for the writer's document: prose from far away in the corpus, whole words."""
    if chars <= 0:
        return ""
    brief = "Audience: readers of period fiction. Tone: dry, ironic. "
    notes = " ".join(novel[5_000 : 5_000 + chars + 200].split())
    return (brief + notes)[:chars]


async def cowrite_writer(
    base: str,
    index: int,
    novel: str,
    args: argparse.Namespace,
    result: WriterResult,
    variant: Variant,
) -> None:
    rng = random.Random(1000 + index)
    opening, to_type = material(novel, index, args)
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        me = await account_async(http, f"writer{index}")
        http.headers.update(me)
        doc = (await http.post("/api/documents", json={"title": f"Writer {index}"})).json()["id"]
        await http.patch(f"/api/documents/{doc}", json={"text": opening})
        if variant.notes_chars:
            notes = notes_for(novel, variant.notes_chars)
            (await http.patch(f"/api/documents/{doc}", json={"notes": notes})).raise_for_status()

        async def save(text: str) -> None:
            await http.patch(f"/api/documents/{doc}", json={"text": text})

        ws_url = base.replace("http", "ws", 1) + f"/ws/suggest/{doc}?tab=bench{index}"
        async with websockets.connect(ws_url, max_size=2**20, additional_headers=me) as ws:
            json.loads(await ws.recv())  # hello
            suggester = CowriteSuggester(ws, args.max_tokens, variant.temperature)
            reader = asyncio.create_task(suggester.read())
            try:
                await type_and_pause(suggester, opening, to_type, rng, args, result, save)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader


async def peer_writer(
    base: str, index: int, novel: str, args: argparse.Namespace, result: WriterResult
) -> None:
    rng = random.Random(1000 + index)
    opening, to_type = material(novel, index, args)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=FRESH_CONNECTIONS) as http:
        await type_and_pause(
            PeerSuggester(http, args.max_tokens, args.temperature[0]), opening, to_type, rng, args, result
        )


async def run(
    variant: Variant | None, base: str, writers: int, novel: str, args: argparse.Namespace
) -> list[WriterResult]:
    """One run of `writers` writers: Cowrite's in `variant`, or llama-server's (None)."""
    results = [WriterResult() for _ in range(writers)]
    async with asyncio.TaskGroup() as group:  # a writer that fails ends the run
        for i in range(writers):
            if variant is None:
                group.create_task(peer_writer(base, i, novel, args, results[i]))
            else:
                group.create_task(cowrite_writer(base, i, novel, args, results[i], variant))
    return results


def summarize(results: list[WriterResult]) -> dict[str, float]:
    pauses = [p for r in results for p in r.pauses]
    first = [p.first_text_s for p in pauses]
    whole = [p.whole_s for p in pauses]
    characters = sum(r.characters for r in results)
    after_word = [p for p in pauses if p.after_word]
    steps = [p.extra_steps for p in pauses if p.extra_steps is not None]
    return {
        "pauses": len(pauses),
        "first_text_p50_ms": percentile(first, 50) * 1000,
        "first_text_p95_ms": percentile(first, 95) * 1000,
        "whole_p50_ms": percentile(whole, 50) * 1000,
        "shown_share": sum(p.first_text_s != MISSED for p in pauses) / len(pauses),
        "keystroke_savings": sum(p.saved for p in pauses) / characters if characters else 0.0,
        "glued_share": sum(p.glued for p in after_word) / len(after_word) if after_word else 0.0,
        "extra_steps_mean": statistics.mean(steps) if steps else 0.0,
    }


def finite(value: Any) -> Any:
    """`value` with every MISSED (infinity) as None, for JSON."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return None if value == MISSED else value


def show(value: float, unit: str = "ms") -> str:
    if value == MISSED:
        return "missed"
    return f"{value:.0f} {unit}" if unit == "ms" else f"{value * 100:.1f}%"


def ratio(ours: float, theirs: float) -> str:
    if MISSED in (ours, theirs) or theirs == 0:
        return "—"
    return f"{ours / theirs:.2f}×"


def median(runs: list[dict[str, float]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


METRICS = [
    ("first text, p50", "first_text_p50_ms", "ms"),
    ("first text, p95", "first_text_p95_ms", "ms"),
    ("whole suggestion, p50", "whole_p50_ms", "ms"),
    ("shown before the writer resumes", "shown_share", "%"),
    ("keystroke savings", "keystroke_savings", "%"),
    ("glued onto a finished word", "glued_share", "%"),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pauses", type=int, default=10, help="pauses per writer per run")
    parser.add_argument("--char-s", type=float, default=0.06, help="mean seconds between keystrokes")
    parser.add_argument("--pause-min-s", type=float, default=1.0)
    parser.add_argument("--pause-max-s", type=float, default=2.5)
    parser.add_argument("--opening-chars", type=int, default=2000)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument(
        "--temperature", type=float, nargs="+", default=[0.3], help="the editor's default; several compare"
    )
    parser.add_argument(
        "--notes-chars", type=int, nargs="+", default=[0], help="notes for suggestions; several compare"
    )
    parser.add_argument("--peer", action="store_true", help="also run llama-server, alternately")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    output = args.output or (PEER_RESULTS if args.peer else RESULTS)

    novel = (CORPUS if CORPUS.exists() else FALLBACK).read_text(encoding="utf-8")
    needed = 20_000 + max(args.writers) * 25_000 + 10_000
    if len(novel) < needed:
        novel = novel * (1 + needed // len(novel))
    variants = [Variant(t, n) for t in args.temperature for n in args.notes_chars]
    # the first variant is reported as "cowrite", the others by their label
    kinds = ["cowrite", *(v.label for v in variants[1:])] + (["peer"] if args.peer else [])
    variant_of: dict[str, Variant | None] = {"cowrite": variants[0], "peer": None}
    variant_of |= {v.label: v for v in variants[1:]}
    report: dict[str, Any] = {"settings": {k: str(v) for k, v in vars(args).items() if k != "output"}}
    with contextlib.ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        bases: dict[str, str] = {}
        cowrite_port = free_port()
        # every run signs its writers in again: more than the default 30 sign-ups an hour
        server = start_server(cowrite_port, data_dir, {"COWRITE_SIGNUPS_PER_ADDRESS": "10000"})
        stack.callback(lambda: (server.terminate(), server.wait(timeout=30)))
        bases["cowrite"] = f"http://127.0.0.1:{cowrite_port}"
        asyncio.run(wait_ready(bases["cowrite"], server))
        if args.peer:
            peer_port = free_port()
            peer = serve_peer(peer_port, data_dir / "llama-server.log")
            stack.callback(lambda: (peer.terminate(), peer.wait(timeout=30)))
            bases["peer"] = f"http://127.0.0.1:{peer_port}"
            wait_peer_ready(bases["peer"], peer)
        for writers in args.writers:
            runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
            for number in range(args.runs):
                for kind in kinds:  # alternately, so a noisy minute hurts both
                    base = bases["peer" if kind == "peer" else "cowrite"]
                    summary = summarize(asyncio.run(run(variant_of[kind], base, writers, novel, args)))
                    runs[kind].append(summary)
                    print(f"{writers} writers, run {number + 1}, {kind}: {json.dumps(summary)}", flush=True)
            report[f"writers_{writers}"] = {
                kind: {"runs": runs[kind], "median": {key: median(runs[kind], key) for key in runs[kind][0]}}
                for kind in kinds
            }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(finite(report), indent=2) + "\n")
    others = [v.label for v in variants[1:]]
    header = f"| writers | metric | {variants[0].label if others else 'Cowrite'} |"
    header += "".join(f" {other} | {other} / Cowrite |" for other in others)
    header += " llama-server | Cowrite / llama-server |" if args.peer else ""
    print("\n" + header)
    print("|---:|---|---:|" + "---:|---:|" * len(others) + ("---:|---:|" if args.peer else ""))
    for writers in args.writers:
        row = report[f"writers_{writers}"]
        for label, key, unit in METRICS:
            ours = row["cowrite"]["median"][key]
            line = f"| {writers} | {label} | {show(ours, unit)} |"
            for other in others:
                value = row[other]["median"][key]
                line += f" {show(value, unit)} | {ratio(value, ours)} |"
            if args.peer:
                theirs = row["peer"]["median"][key]
                line += f" {show(theirs, unit)} | {ratio(ours, theirs)} |"
            print(line)
    print(f"\n(medians of {args.runs} runs; {args.pauses} pauses per writer per run; misses count as misses)")


if __name__ == "__main__":
    main()
