"""Simulated writers over the real suggestion socket of a real server (`make bench`, part two).

Each writer opens its own document holding a few paragraphs of the novel (the editor primes the
model with them), then types the text that follows, character by character, pausing between
phrases. As the editor does, it asks for a suggestion 300 ms into each pause (sending all the
text before the cursor), saves its text through the document API, and cancels a suggestion still generating
when it types again. Measured per pause: the time from `suggest` to the first text, and whether
it arrived before the writer resumed. The writers open their documents together and start
typing once the server has read all of them; that opening is timed on its own.
Runs 1 writer (the baseline) and 8 writers in the same command; writes bench/results/writers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.engine import CORPUS, FALLBACK, ROOT, percentile
from tests.accounts import account_async
from tests.processes import free_port, start_server, wait_ready

RESULTS = ROOT / "bench" / "results" / "writers.json"
TRIGGER_S = 0.3  # the editor's default pause before asking


@dataclass
class Pause:
    latency_s: float | None  # suggest to first text; None if none came during the pause
    in_time: bool
    empty: bool = False  # the suggestion ended before any text (the model had nothing to add)


@dataclass
class WriterResult:
    pauses: list[Pause] = field(default_factory=list)


def phrases(text: str, rng: random.Random, count: int) -> list[str]:
    """Cut `text` into `count` phrases of 3 to 9 words, each ending before a space."""
    words = text.split(" ")
    out, i = [], 0
    for _ in range(count):
        take = rng.randint(3, 9)
        out.append(" ".join(words[i : i + take]) + " ")
        i += take
    return out


async def writer(
    base: str,
    index: int,
    novel: str,
    args: argparse.Namespace,
    result: WriterResult,
    opened: asyncio.Barrier,
    go: asyncio.Event,
) -> None:
    rng = random.Random(1000 + index)
    offset = 20_000 + index * 25_000
    opening = novel[offset : offset + args.opening_chars]
    opening = opening[: opening.rfind(" ") + 1]
    to_type = phrases(novel[offset + len(opening) : offset + len(opening) + 4000], rng, args.pauses)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        me = await account_async(http, f"writer{index}")
        http.headers.update(me)
        doc = (await http.post("/api/documents", json={"title": f"Writer {index}"})).json()["id"]
        await http.patch(f"/api/documents/{doc}", json={"text": opening})
        ws_url = base.replace("http", "ws", 1) + f"/ws/suggest/{doc}"
        async with websockets.connect(ws_url, max_size=2**20, additional_headers=me) as ws:
            json.loads(await ws.recv())  # hello
            # as the editor does on opening a document: read the context ahead of the first pause
            await ws.send(json.dumps({"v": 1, "type": "prime", "before": opening}))
            text = opening
            await opened.wait()
            await go.wait()
            for number, phrase in enumerate(to_type):
                for char in phrase:
                    text += char
                    await asyncio.sleep(rng.uniform(0.6, 1.4) * args.char_s)
                save = asyncio.create_task(http.patch(f"/api/documents/{doc}", json={"text": text}))
                pause = rng.uniform(args.pause_min_s, args.pause_max_s)
                await asyncio.sleep(TRIGGER_S)
                request_id = f"w{index}-{number}"
                sent = time.perf_counter()
                await ws.send(
                    json.dumps(
                        {
                            "v": 1,
                            "type": "suggest",
                            "id": request_id,
                            "before": text,
                            "after": "",
                            "settings": {"max_tokens": args.max_tokens, "temperature": 0.7, "n": 1},
                        }
                    )
                )
                resume_at = sent + pause - TRIGGER_S
                first, done = await first_token(ws, request_id, resume_at)
                latency = None if first is None else first - sent
                result.pauses.append(
                    Pause(latency, first is not None and first <= resume_at, done and first is None)
                )
                await asyncio.sleep(max(0.0, resume_at - time.perf_counter()))
                if not done:
                    await ws.send(json.dumps({"v": 1, "type": "cancel", "id": request_id}))
                    await drain(ws, request_id)
                await save


async def first_token(ws: Any, request_id: str, resume_at: float) -> tuple[float | None, bool]:
    """When the first delta arrived (None if not before the writer resumes), and whether it is done."""
    while True:
        remaining = resume_at - time.perf_counter()
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=max(remaining, 0.001)))
        except TimeoutError:
            return None, False
        if frame.get("id") != request_id:
            continue
        if frame["type"] == "delta":
            return time.perf_counter(), False
        if frame["type"] == "done":
            return None, True


async def drain(ws: Any, request_id: str) -> None:
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("id") == request_id and frame["type"] == "done":
            return


async def run(base: str, writers: int, novel: str, args: argparse.Namespace) -> tuple[list[Pause], float]:
    """All writers open their documents at once; once every prime is read, they start typing."""
    results = [WriterResult() for _ in range(writers)]
    opened, go = asyncio.Barrier(writers + 1), asyncio.Event()
    # a task group: a writer that fails ends the run instead of leaving the others at the barrier
    async with asyncio.TaskGroup() as group:
        for i in range(writers):
            group.create_task(writer(base, i, novel, args, results[i], opened, go))
        started = time.perf_counter()
        await opened.wait()
        async with httpx.AsyncClient(base_url=base) as http:
            while True:
                health = (await http.get("/healthz")).json()
                if health["active_requests"] == 0 and health["queue_depth"] == 0:
                    break
                await asyncio.sleep(0.05)
        primed_s = time.perf_counter() - started
        go.set()
    return [p for r in results for p in r.pauses], primed_s


def summarize(pauses: list[Pause]) -> dict[str, float]:
    latencies = [p.latency_s for p in pauses if p.latency_s is not None]
    return {
        "pauses": len(pauses),
        "first_token_p50_ms": percentile(latencies, 50) * 1000 if latencies else float("nan"),
        "first_token_p95_ms": percentile(latencies, 95) * 1000 if latencies else float("nan"),
        "in_time_share": sum(p.in_time for p in pauses) / len(pauses),
        "empty_share": sum(p.empty for p in pauses) / len(pauses),
        "late_share": sum(not p.in_time and not p.empty for p in pauses) / len(pauses),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pauses", type=int, default=10, help="pauses per writer per run")
    parser.add_argument("--char-s", type=float, default=0.06, help="mean seconds between keystrokes")
    parser.add_argument("--pause-min-s", type=float, default=1.0)
    parser.add_argument("--pause-max-s", type=float, default=2.5)
    parser.add_argument("--opening-chars", type=int, default=2000)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    novel = (CORPUS if CORPUS.exists() else FALLBACK).read_text(encoding="utf-8")
    if len(novel) < 20_000 + args.writers * 25_000 + 10_000:
        novel = novel * (1 + (20_000 + args.writers * 25_000 + 10_000) // len(novel))
    report: dict[str, Any] = {"settings": {k: str(v) for k, v in vars(args).items() if k != "output"}}
    with tempfile.TemporaryDirectory() as data_dir:
        port = args.port or free_port()
        server = start_server(port, Path(data_dir))
        base = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(wait_ready(base, server))
            for writers in (1, args.writers):
                runs = []
                for _ in range(args.runs):
                    pauses, primed_s = asyncio.run(run(base, writers, novel, args))
                    runs.append(summarize(pauses) | {"open_and_prime_s": primed_s})
                report[f"writers_{writers}"] = {
                    key: statistics.median(r[key] for r in runs) for key in runs[0]
                } | {"runs": len(runs)}
                print(f"{writers} writers: {report[f'writers_{writers}']}", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    one, many = report["writers_1"], report[f"writers_{args.writers}"]
    print("\n| writers | suggest → first token p50 | p95 | first token before the writer resumed |")
    print("|---:|---:|---:|---:|")
    for label, row in (("1", one), (str(args.writers), many)):
        print(
            f"| {label} | {row['first_token_p50_ms']:.0f} ms | {row['first_token_p95_ms']:.0f} ms "
            f"| {row['in_time_share'] * 100:.0f}% of {row['pauses']:.0f} pauses |"
        )
    met_latency = many["first_token_p95_ms"] <= 300
    met_share = many["in_time_share"] >= 0.9
    print(f"\ntarget p95 ≤ 300 ms with {args.writers} writers: {'met' if met_latency else 'NOT met'}")
    print(f"target ≥ 90% of pauses in time with {args.writers} writers: {'met' if met_share else 'NOT met'}")


if __name__ == "__main__":
    main()
