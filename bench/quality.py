"""Suggestion quality (`make bench`): are the words on screen the ones the writer types next?

Online (the default): simulated writers type real prose from each book in ../shared/corpus/ at a
human pace, as bench/writers.py's do (same pauses, same takes, `--writers 1 8`), against a real
Cowrite server started once per variant with its policy in COWRITE_SUGGEST_* settings; `--peer`
plays the same writers against llama-server on the same GGUF. Offline (`--offline`): no server;
the model runs in-process behind an Engine, and at `--positions` pauses spread through each book
(2,000 characters of text so far ending as bench.writers' `pause_points` end a phrase: half after
the space, half right after the word) the request is built as the socket builds it
(`policy.to_request`) and its text kept as the socket keeps it (`policy.final_text`). Books are
reflowed first: one line per paragraph, as a writer types them, not Project Gutenberg's wrapping.

Figures, per book (a pause is one suggestion; what is "on screen" is the `done` text when the
suggestion ended before the writer resumed, else what had streamed by then):
- keystroke savings: characters taken with Tab, less one Tab per take, over the characters of the
  text produced. Offline, each position is a pause after a phrase of 3 to 9 words: the text
  produced there is that phrase plus what was taken, so Σ(taken - 1 per take) / Σ(phrase + taken).
- word precision: of the whole words on screen, the share that are what the writer types next,
  counted from the suggestion's start up to the first that is not (leading space as `taken`
  treats it). A trailing word counts only where it is known to be whole: Cowrite releases whole
  words only (its policy's `whole_words`); llama-server's last word is whole when it stopped by
  itself (end of text, a stop string, a sentence end), not at its token limit or a confidence cut.
- pauses with a take: the share where the writer took at least one word.
- shown: the share with any text on screen when the writer resumed.
- repetition: of the suggestions shown, the share with a word 3-gram (case and punctuation aside)
  that appeared before, within the suggestion or in the 200 characters before the cursor.
- online only: first text p50 (a pause with no text before the writer resumed is a miss, as in
  bench.writers), and answered in time: text on screen, or a `done` with none (a decision to show
  nothing), before the writer resumed.

Variants: `--policy default plain` names starting points; `--max-tokens 8 16 --span free sentence
--confidence 0 0.3` (and --run-confidence, --no-repeat, --repetition-penalty, --temperature) run
the cross product of every knob given over each of them. llama-server gets the knobs it has:
temperature, max tokens, `repeat_penalty`, and client-side, from its `n_probs` probabilities, the
same confidence and sentence cuts (streaming/stopping.py's rules); not Cowrite's token healing,
repetition guard, whole words or final filter, which is what its rows leave out. Offline,
Cowrite's requests are seeded by position, so variants at temperature > 0 sample alike where they
can, and have all the time they need (the engine is kept full on purpose).

Results: bench/results/quality.json (offline: quality-offline.json) and a Markdown table per book.
Online with the defaults takes about 15 minutes a variant on 2 cores (twice that with `--peer`);
offline about a minute a book and variant (llama-server's rows about the same, far more where the
machine is busy: its threads spin).
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import itertools
import json
import math
import random
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.common import CORPUS, FALLBACK, ROOT, percentile
from bench.peer import serve as serve_peer
from bench.peer import wait_peer_ready
from bench.writers import (
    FRESH_CONNECTIONS,
    MISSED,
    Attempt,
    CowriteSuggester,
    PeerSuggester,
    Suggester,
    WriterResult,
    finite,
    material,
    pause_points,
    taken,
    type_and_pause,
)
from harness.accounts import account_async
from harness.processes import free_port, start_server, wait_ready
from server.suggest.policy import Policy, final_text, to_request
from server.suggest.protocol import Suggest, SuggestSettings
from streaming.engine import Engine, EngineLimits
from streaming.loader import load_model
from streaming.params import Span, Status
from streaming.runner import ModelRunner
from streaming.stopping import StopRules

RESULTS = ROOT / "bench" / "results" / "quality.json"
OFFLINE_RESULTS = ROOT / "bench" / "results" / "quality-offline.json"
CORPUS_DIR = CORPUS.parent
CONTEXT_CHARS = 2000  # the text so far at an offline position
UPCOMING_CHARS = 400  # what the writer types next, as far as any suggestion could reach
REPEAT_WINDOW = 200  # characters before the cursor that a suggestion may not repeat from
REPEAT_N = 3
BOOK_MIN_CHARS = 240_000  # the online writers' material reaches 230,000 characters in
IN_FLIGHT = 16  # offline requests in the engine at once
OFFLINE_BUDGET_S = 600.0  # offline, a full engine is the point: no request runs out of time
PEER_IN_FLIGHT = 8
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# a trailing word is whole when the text ended by itself there; a token limit or a confidence cut
# may end it mid-word (Cowrite drops such a word when its policy says `whole_words`)
NATURAL_ENDS = {"finished", "stop", "sentence", "eos", "word"}
SETTINGS = SuggestSettings()


# the books


def reflow(text: str) -> str:
    """Prose as a writer types it: each paragraph on one line, a blank line between paragraphs;
    a Project Gutenberg header and licence (where a file keeps them) and illustrations left out."""
    start = text.find("*** START OF")
    if start >= 0:
        text = text[text.index("\n", start) + 1 :]
    end = text.find("*** END OF")
    if end >= 0:
        text = text[:end]
    paragraphs = (" ".join(part.split()) for part in re.split(r"\n\s*\n", text))
    return "\n\n".join(p for p in paragraphs if p and not p.startswith("[Illustration"))


def books(folder: Path = CORPUS_DIR) -> dict[str, str]:
    """Every book of the corpus by name, reflowed; the tests' short prose where there is none."""
    paths = sorted(folder.glob("*.txt")) or [FALLBACK]
    return {path.stem: reflow(path.read_text(encoding="utf-8")) for path in paths}


# the figures


@dataclass(frozen=True)
class Judged:
    """One pause, judged against what the writer typed next."""

    taken: int  # characters taken with Tab
    right: int  # whole words on screen that the writer typed next, from the start
    whole: int  # whole words on screen
    shown: bool
    repeated: bool
    typed: int = 0  # offline: characters of the phrase typed before the pause
    first_text_s: float = MISSED  # online: from the request to the first text
    in_time: bool = False  # online: text, or a decision to show none, before the writer resumed


def on_screen(shown: str, after_space: bool) -> str:
    return shown.lstrip(" ") if after_space else shown  # as `taken`: no doubled space


def word_counts(shown: str, upcoming: str, after_space: bool, trailing_whole: bool) -> tuple[int, int]:
    """(right, whole): how many whole words `shown` holds, and how many of them, from its start to
    the first that differs, are exactly what the writer types next (`upcoming`)."""
    shown = on_screen(shown, after_space)
    right = whole = 0
    matching = True
    for word in WORD.finditer(shown):
        end = word.end()
        if end == len(shown) and not trailing_whole:
            break  # it may go on: not a whole word
        whole += 1
        if matching:
            typed = WORD.match(upcoming, word.start())
            matching = shown[:end] == upcoming[:end] and typed is not None and typed.end() == end
            right += int(matching)
    return right, whole


def repeats(shown: str, before: str, n: int = REPEAT_N) -> bool:
    """Whether `shown` holds a word n-gram seen before: in itself, or in the REPEAT_WINDOW
    characters before the cursor (one that runs across the cursor counts as the suggestion's)."""
    context = before[-REPEAT_WINDOW:]
    if len(before) > REPEAT_WINDOW and not before[-REPEAT_WINDOW - 1].isspace():
        context = context[len(context.split(maxsplit=1)[0]) :]  # a word cut in two is not a word
    words = [(w.group().lower(), w.end()) for w in WORD.finditer(context + shown)]
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - n + 1):
        gram = tuple(word for word, _ in words[i : i + n])
        if words[i + n - 1][1] > len(context) and gram in seen:
            return True
        seen.add(gram)
    return False


def judge(shown: str, before: str, upcoming: str, trailing_whole: bool, **rest: Any) -> Judged:
    after_space = before.endswith(" ")
    right, whole = word_counts(shown, upcoming, after_space, trailing_whole)
    visible = bool(shown.strip())
    return Judged(
        taken=taken(shown, upcoming, after_space),
        right=right,
        whole=whole,
        shown=visible,
        repeated=visible and repeats(shown, before),
        **rest,
    )


def share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def figures(judged: list[Judged], characters: int, online: bool) -> dict[str, float | None]:
    """The report's figures over some pauses, `characters` being the text they produced."""
    shown = [j for j in judged if j.shown]
    out = {
        "pauses": float(len(judged)),
        "keystroke_savings": share(sum(max(0, j.taken - 1) for j in judged), characters),
        "word_precision": share(sum(j.right for j in judged), sum(j.whole for j in judged)),
        "take_share": share(sum(j.taken > 0 for j in judged), len(judged)),
        "shown_share": share(len(shown), len(judged)),
        "repetition_rate": share(sum(j.repeated for j in shown), len(shown)),
        "words_shown": float(sum(j.whole for j in judged)),
    }
    if online and judged:
        out["first_text_p50_ms"] = percentile([j.first_text_s for j in judged], 50) * 1000
        out["in_time_share"] = share(sum(j.in_time for j in judged), len(judged))
    return out


# the variants


@dataclass(frozen=True)
class Variant:
    """One way to make suggestions: the engine's policy, and the frame's length and temperature."""

    policy: Policy = Policy()
    max_tokens: int = SETTINGS.max_tokens
    temperature: float = SETTINGS.temperature

    def knobs(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature} | {
            f.name: getattr(self.policy, f.name) for f in fields(self.policy)
        }

    @property
    def label(self) -> str:
        """The knobs that differ from the default, shortly: "max_tokens=8 span=free"."""
        default = Variant().knobs()
        changed = [f"{k}={_show_knob(v)}" for k, v in self.knobs().items() if v != default[k]]
        return " ".join(changed) or "default"

    @property
    def peer(self) -> Variant:
        """The variant as llama-server can play it: the knobs it lacks at their defaults."""
        policy = self.policy
        kept = Policy(
            confidence=policy.confidence,
            run_confidence=policy.run_confidence,
            span=policy.span,
            repetition_penalty=policy.repetition_penalty,
        )
        return Variant(kept, self.max_tokens, self.temperature)


def _show_knob(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


PRESETS = {
    "default": Variant(),
    # what the socket did before it had a policy: free length, no repetition guard, partial words
    "plain": Variant(Policy(span=Span.FREE, no_repeat_ngram=0, whole_words=False)),
}
# command-line knobs: (flag's dest, the Policy or Variant field it sets, how to read it)
KNOBS = [
    ("max_tokens", "max_tokens", int),
    ("temperature", "temperature", float),
    ("confidence", "confidence", float),
    ("run_confidence", "run_confidence", float),
    ("span", "span", Span),
    ("no_repeat", "no_repeat_ngram", int),
    ("repetition_penalty", "repetition_penalty", float),
]
# what a server takes from its environment; the rest of a Policy it cannot be told
SERVER_ENV = {
    "confidence": "COWRITE_SUGGEST_CONFIDENCE",
    "span": "COWRITE_SUGGEST_SPAN",
    "no_repeat_ngram": "COWRITE_SUGGEST_NO_REPEAT",
    "repetition_penalty": "COWRITE_SUGGEST_REPETITION_PENALTY",
}


def variants(args: argparse.Namespace) -> list[Variant]:
    """Each named preset, crossed with every value of every knob given on the command line."""
    given = [(field_name, values) for dest, field_name, _ in KNOBS if (values := getattr(args, dest))]
    out: list[Variant] = []
    for name in args.policy:
        for combo in itertools.product(*(values for _, values in given)):
            variant = PRESETS[name]
            for (field_name, _), value in zip(given, combo):
                if field_name in ("max_tokens", "temperature"):
                    variant = replace(variant, **{field_name: value})
                else:
                    variant = replace(variant, policy=replace(variant.policy, **{field_name: value}))
            if variant not in out:
                out.append(variant)
    return out


def server_env(variant: Variant) -> dict[str, str]:
    """The settings that make a server suggest under `variant`'s policy."""
    policy = variant.policy
    if (policy.run_confidence, policy.whole_words) != (Policy().run_confidence, Policy().whole_words):
        raise SystemExit(f"bench.quality: a server cannot be set to {variant.label}; try --offline")
    return {env: _show_knob(getattr(policy, name)) for name, env in SERVER_ENV.items()}


# llama-server, under the knobs a client can apply


def peer_body(variant: Variant, prompt: str, stream: bool, seed: int | None = None) -> dict[str, Any]:
    """llama-server's native `/completion` request for `variant`, as Cowrite's `to_request` samples."""
    warm = variant.temperature > 0
    body: dict[str, Any] = {
        "prompt": prompt,
        "n_predict": variant.max_tokens,
        "temperature": variant.temperature,
        "top_p": 0.95 if warm else 1.0,
        "top_k": 50 if warm else 0,
        "repeat_penalty": variant.policy.repetition_penalty,
        "stop": ["\n\n"],
        "cache_prompt": True,
        "stream": stream,
    }
    if variant.policy.confidence or variant.policy.run_confidence:
        body["n_probs"] = 1  # the sampled token's probability, the model's own (temperature 1)
    return body | ({"seed": seed} if seed is not None else {})


def pieces_of(data: dict[str, Any]) -> list[tuple[str, float]]:
    """The text of a `/completion` answer (or streamed chunk), token by token with each token's
    probability, as far as the answer's `content` goes (a stop string is not part of it)."""
    content = str(data.get("content", ""))
    probs = data.get("completion_probabilities") or []
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span tokens
    pieces = [(decoder.decode(bytes(p["bytes"])), math.exp(p["logprob"])) for p in probs]
    if probs and "".join(piece for piece, _ in pieces).startswith(content):
        out, length = [], 0
        for piece, prob in pieces:
            if length >= len(content):
                break
            out.append((piece[: len(content) - length], prob))
            length += len(piece)
        return out
    # no probabilities asked for, or text held back a while (a stop string that was not): one piece
    return [(content, math.prod(prob for _, prob in pieces))] if content else []


class ClientCut:
    """A client's own stop rules over llama-server's tokens: streaming/stopping.py's, as Cowrite
    applies them in its engine (confidence, run confidence, sentence or clause end)."""

    def __init__(self, variant: Variant) -> None:
        policy = variant.policy
        self.rules = StopRules(policy.confidence, policy.run_confidence, policy.span)
        self.text = ""
        self.reason: str | None = None

    def add(self, pieces: Iterable[tuple[str, float]]) -> bool:
        """Take the pieces in turn until a rule ends the text; True once it has."""
        for piece, prob in pieces:
            if self.reason is not None:
                break
            status = self.rules.before(self.text, piece, prob)
            if status is not None:
                self.reason = str(status)
            else:
                self.text += piece
        return self.reason is not None


async def peer_complete(http: httpx.AsyncClient, variant: Variant, before: str, seed: int) -> tuple[str, str]:
    """llama-server's whole suggestion at `before`, cut as a client would: (text, how it ended)."""
    response = await http.post("/completion", json=peer_body(variant, before, stream=False, seed=seed))
    response.raise_for_status()
    data = response.json()
    cut = ClientCut(variant)
    cut.add(pieces_of(data))
    return cut.text, cut.reason or str(data.get("stop_type", ""))


class PolicyPeerSuggester(PeerSuggester):
    """llama-server's streamed `/completion` under a variant's knobs; a client cut closes the stream."""

    def __init__(self, http: httpx.AsyncClient, variant: Variant, recorder: Recorder) -> None:
        super().__init__(http, variant.max_tokens, variant.temperature)
        self.variant = variant
        self.recorder = recorder

    async def suggest(self, before: str) -> Attempt:
        attempt = Attempt(time.perf_counter())
        body = peer_body(self.variant, before, stream=True)
        self.task = asyncio.create_task(self._cut_stream(body, attempt))
        return attempt

    async def _cut_stream(self, body: dict[str, Any], attempt: Attempt) -> None:
        cut, stop_type = ClientCut(self.variant), ""
        async with self.http.stream("POST", "/completion", json=body) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = json.loads(line.removeprefix("data: "))
                shown = len(cut.text)
                ended = cut.add(pieces_of(data))
                if len(cut.text) > shown:
                    attempt.chunks.append((time.perf_counter(), cut.text[shown:]))
                stop_type = str(data.get("stop_type", ""))
                if ended or data.get("stop"):
                    break  # a cut leaves the stream: closing it stops the server
        attempt.ended = time.perf_counter()
        self.recorder.ended(attempt, cut.text, cut.reason or stop_type)


# online: writers against a server


@dataclass
class Heard:
    """One pause as the writer lived it: the text so far, the suggestion, when they resumed."""

    before: str
    attempt: Attempt
    resumed: float | None = None
    first_at: float | None = None  # the first text, as it streamed (a `done` may take it back)
    final: tuple[str, str] | None = None  # (text, reason) of a suggestion ended before resuming


class Recorder:
    """A writer's suggester, watched. A suggestion that ends before the writer resumes shows its
    final text from then on, as the editor does, so what type_and_pause takes is what was shown."""

    def __init__(self) -> None:
        self.inner: Suggester | None = None
        self.heard: list[Heard] = []

    async def prime(self, before: str) -> None:
        assert self.inner is not None, "set `inner` first"
        await self.inner.prime(before)

    async def suggest(self, before: str) -> Attempt:
        assert self.inner is not None, "set `inner` first"
        attempt = await self.inner.suggest(before)
        self.heard.append(Heard(before, attempt))
        return attempt

    async def stop(self) -> None:
        assert self.inner is not None, "set `inner` first"
        if self.heard and self.heard[-1].resumed is None:
            self.heard[-1].resumed = time.perf_counter()
        await self.inner.stop()

    def ended(self, attempt: Attempt, text: str, reason: str) -> None:
        """`attempt` ended with `text`, final, for `reason`."""
        heard = self.heard[-1] if self.heard and self.heard[-1].attempt is attempt else None
        if heard is None or heard.resumed is not None:
            return  # ended by the writer's typing: what streamed is what they saw
        heard.first_at, heard.final = attempt.first_text(), (text, reason)
        if "".join(chunk for _, chunk in attempt.chunks) != text:
            at = attempt.chunks[0][0] if attempt.chunks else time.perf_counter()
            attempt.chunks[:] = [(at, text)] if text else []

    def judged(self, full: str, whole_words: bool) -> list[Judged]:
        """Every pause the writer resumed from, against `full`, the text they were typing."""
        out = []
        for heard in self.heard:
            if heard.resumed is None:
                continue
            first = heard.first_at if heard.final is not None else heard.attempt.first_text()
            on_time = first is not None and first <= heard.resumed
            reason = heard.final[1] if heard.final is not None else ""
            before = heard.before
            out.append(
                judge(
                    heard.attempt.shown_by(heard.resumed),
                    before,
                    full[len(before) : len(before) + UPCOMING_CHARS],
                    whole_words or reason in NATURAL_ENDS,
                    first_text_s=first - heard.attempt.sent if first is not None and on_time else MISSED,
                    in_time=on_time or heard.final is not None,
                )
            )
        return out


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


@contextlib.contextmanager
def cowrite_server(data_dir: Path, env: dict[str, str]) -> Iterator[str]:
    """A real Cowrite server with `env` added to its settings, for as long as the block runs."""
    port = free_port()
    # every run signs its writers in again: more than the default 30 sign-ups an hour
    server = start_server(port, data_dir, {"COWRITE_SIGNUPS_PER_ADDRESS": "10000"} | env)
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(wait_ready(base, server))
        yield base
    finally:
        _stop(server)


@contextlib.contextmanager
def peer_server(data_dir: Path, gguf: Path | None) -> Iterator[str]:
    port = free_port()
    peer = serve_peer(port, data_dir / "llama-server.log", gguf=gguf)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_peer_ready(base, peer)
        yield base
    finally:
        _stop(peer)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


# offline: the model in-process


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


def offline_figures(judged: list[Judged]) -> dict[str, float | None]:
    return figures(judged, sum(j.typed + j.taken for j in judged), online=False)


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


def peer_label(variant: Variant) -> str:
    return f"llama-server {variant.peer.label}"


# the report


COLUMNS = [
    ("keystroke savings", "keystroke_savings", "%"),
    ("word precision", "word_precision", "%"),
    ("pauses with a take", "take_share", "%"),
    ("shown", "shown_share", "%"),
    ("repetition", "repetition_rate", "%"),
    ("words shown", "words_shown", "n"),
]
ONLINE_COLUMNS = [("first text p50", "first_text_p50_ms", "ms"), ("in time", "in_time_share", "%")]


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if value == MISSED:
        return "missed"
    return {"%": f"{value * 100:.1f}%", "ms": f"{value:.0f} ms"}.get(unit, f"{value:.0f}")


def row(book: str, label: str, values: dict[str, float | None], seconds: float | None = None) -> None:
    """One variant's figures on one book, printed as they come."""
    shown = ", ".join(
        f"{name} {show(values.get(key), unit)}"
        for name, key, unit in COLUMNS + ONLINE_COLUMNS
        if key in values
    )
    took = f" ({seconds:.0f} s)" if seconds is not None else ""
    print(f"{book} | {label}: {shown}{took}", flush=True)


def table(title: str, rows: dict[str, dict[str, float | None]], online: bool) -> str:
    """A Markdown table: one row per variant, one column per figure."""
    columns = COLUMNS + (ONLINE_COLUMNS if online else [])
    lines = [f"\n{title}\n", "| variant | " + " | ".join(name for name, _, _ in columns) + " |"]
    lines.append("|---|" + "---:|" * len(columns))
    for label, values in rows.items():
        lines.append(
            f"| {label} | " + " | ".join(show(values.get(key), unit) for _, key, unit in columns) + " |"
        )
    return "\n".join(lines)


def median(runs: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Each figure's median over runs, those where it was undefined left out."""
    out: dict[str, float | None] = {}
    for key in runs[0]:
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = float(statistics.median(v for v in values if v is not None)) if values else None
    return out


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


def plural(writers: int) -> str:
    return f"{writers} writer{'s' if writers != 1 else ''}"


def model_env(model: str | None) -> dict[str, str]:
    return {"COWRITE_MODEL": model} if model else {}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--offline", action="store_true", help="no server: the model in-process")
    parser.add_argument("--positions", type=int, default=60, help="offline: pauses per book")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--runs", type=int, default=3, help="online: runs per variant, book and writers")
    parser.add_argument("--pauses", type=int, default=10, help="online: pauses per writer per run")
    parser.add_argument("--char-s", type=float, default=0.06, help="mean seconds between keystrokes")
    parser.add_argument("--pause-min-s", type=float, default=1.0)
    parser.add_argument("--pause-max-s", type=float, default=2.5)
    parser.add_argument("--opening-chars", type=int, default=2000)
    parser.add_argument("--policy", nargs="+", default=["default"], choices=sorted(PRESETS))
    for dest, _, kind in KNOBS:
        flag = "--" + dest.replace("_", "-")
        parser.add_argument(flag, dest=dest, type=kind, nargs="+", default=[], help="values to sweep")
    parser.add_argument("--model", default=None, help="a model key or folder (default: the bundled one)")
    parser.add_argument("--books", nargs="+", default=None, help="only these books of the corpus (by name)")
    parser.add_argument("--peer", action="store_true", help="also llama-server (`make bench-peer` builds it)")
    parser.add_argument("--peer-gguf", type=Path, default=None, help="its GGUF (default: the bundled one)")
    parser.add_argument("--seed", type=int, default=0, help="offline: where in each phrase positions fall")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    library = books()
    if args.books:
        library = {name: library[name] for name in args.books}
    chosen = variants(args)
    if args.peer and args.model and args.peer_gguf is None:
        parser.error("--peer with --model needs --peer-gguf: llama-server must serve the same model")
    if not args.offline:
        for variant in chosen:
            server_env(variant)  # refuses, before anything starts, what a server cannot be told
    settings = {k: str(v) for k, v in vars(args).items() if k != "output"}
    report: dict[str, Any] = {"settings": settings, "variants": {v.label: _json_knobs(v) for v in chosen}}
    if args.offline:
        output = args.output or OFFLINE_RESULTS
        with contextlib.ExitStack() as stack:
            peer_base = None
            if args.peer:
                data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                peer_base = stack.enter_context(peer_server(data_dir, args.peer_gguf))
            report["books"] = asyncio.run(
                offline(library, chosen, args.positions, args.model, peer_base, args.seed)
            )
        tables = [table(f"### {name} (offline)", rows, False) for name, rows in report["books"].items()]
    else:
        output = args.output or RESULTS
        report |= online(args, library, chosen)
        tables = [
            table(f"### {name}, {plural(n)}", {k: v["median"] for k, v in rows.items()}, True)
            for n in args.writers
            for name, rows in report[f"writers_{n}"].items()
        ]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(finite(report), indent=2) + "\n")
    print("\n".join(tables))
    where = f"{args.positions} positions per book" if args.offline else f"medians of {args.runs} runs"
    print(f"\n({where}; figures in bench/quality.py's docstring; raw: {output})")


def _json_knobs(variant: Variant) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Span) else v for k, v in variant.knobs().items()}


if __name__ == "__main__":
    main()
