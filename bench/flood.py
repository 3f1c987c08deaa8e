"""One account floods `/v1/completions`; how long do the others wait? `python -m bench.flood`

Starts `python -m server` (a fresh data folder), signs up a flooder and `--users` other accounts,
then measures the others' time to first text (streamed completions, one at a time per user) twice:
alone, and while the flooder keeps `--flood` requests of n=4, max_tokens=1024 in flight (each
re-sent as soon as it ends, after the `Retry-After` it was given if refused, as a greedy but
well-behaved client would). Prints both p50/p95 and every answer's status; writes
bench/results/flood.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.common import CORPUS, FALLBACK, ROOT, percentile
from harness.accounts import account_async
from harness.processes import free_port, start_server, wait_ready

RESULTS = ROOT / "bench" / "results" / "flood.json"


async def first_text(http: httpx.AsyncClient, prompt: str) -> tuple[float | None, int]:
    """Seconds from sending to the first text of a streamed completion (None if refused), status."""
    body = {"prompt": prompt, "max_tokens": 16, "temperature": 0.7, "stream": True}
    sent = time.perf_counter()
    async with http.stream("POST", "/v1/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            return None, response.status_code
        first = None
        async for line in response.aiter_lines():
            if first is None and line.startswith("data: {"):
                choice = json.loads(line.removeprefix("data: "))["choices"][0]
                if choice["text"]:
                    first = time.perf_counter() - sent
        return first, 200


async def others(base: str, users: list[dict[str, str]], prompts: list[str], rounds: int) -> dict[str, Any]:
    """Each user asks `rounds` times in a row; their first-text times and statuses."""
    times: list[float] = []
    statuses: Counter[int] = Counter()

    async def user(index: int, me: dict[str, str]) -> None:
        async with httpx.AsyncClient(base_url=base, headers=me, timeout=120) as http:
            for round_ in range(rounds):
                prompt = prompts[(index * rounds + round_) % len(prompts)]
                took, status = await first_text(http, prompt)
                statuses[status] += 1
                if took is not None:
                    times.append(took)
                await asyncio.sleep(0.2)  # a person reads before asking again

    await asyncio.gather(*(user(i, me) for i, me in enumerate(users)))
    return {
        "first_text_p50_ms": percentile(times, 50) * 1000 if times else None,
        "first_text_p95_ms": percentile(times, 95) * 1000 if times else None,
        "answers": dict(statuses),
    }


async def flood(
    base: str, me: dict[str, str], prompt: str, workers: int, stop: asyncio.Event
) -> Counter[int]:
    """`workers` requests of n=4, max_tokens=1024 kept in flight until `stop`."""
    statuses: Counter[int] = Counter()
    body = {"prompt": prompt, "max_tokens": 1024, "n": 4, "temperature": 1.0}

    async def worker(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            response = await http.post("/v1/completions", json=body)
            statuses[response.status_code] += 1
            if response.status_code != 200:
                with contextlib.suppress(TimeoutError):
                    wait = float(response.headers.get("retry-after", "1"))
                    await asyncio.wait_for(stop.wait(), timeout=wait)

    limits = httpx.Limits(max_connections=workers)
    async with httpx.AsyncClient(base_url=base, headers=me, timeout=600, limits=limits) as http:
        tasks = [asyncio.create_task(worker(http)) for _ in range(workers)]
        await stop.wait()
        for task in tasks:
            task.cancel()  # a request still generating is cancelled by its closed connection
        await asyncio.gather(*tasks, return_exceptions=True)
    return statuses


async def measure(base: str, args: argparse.Namespace, prompts: list[str]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        flooder = await account_async(http, "flooder")
        users = [await account_async(http, f"writer{i}") for i in range(args.users)]
    await others(base, users, prompts, 2)  # warm the HTTP paths; not counted
    alone = await others(base, users, prompts, args.rounds)
    stop = asyncio.Event()
    flooding = asyncio.create_task(flood(base, flooder, prompts[-1], args.flood, stop))
    await asyncio.sleep(args.settle_s)  # the flood is in full swing
    crowded = await others(base, users, prompts, args.rounds)
    stop.set()
    flooder_answers = await flooding
    return {"alone": alone, "flooded": crowded, "flooder_answers": dict(flooder_answers)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=4, help="other accounts, asking at the same time")
    parser.add_argument("--rounds", type=int, default=10, help="requests per other account per phase")
    parser.add_argument("--flood", type=int, default=80, help="the flooder's requests in flight")
    parser.add_argument("--settle-s", type=float, default=3.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    text = (CORPUS if CORPUS.exists() else FALLBACK).read_text(encoding="utf-8")
    start = max(0, text.find("It is a truth universally acknowledged"))
    prompts = [text[start + 300 * i : start + 300 * i + 280].rsplit(" ", 1)[0] for i in range(64)]
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        server = start_server(port, Path(data_dir))
        base = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(wait_ready(base, server))
            report = asyncio.run(measure(base, args, prompts))
        finally:
            server.terminate()
            server.wait(timeout=30)
    report["settings"] = {k: str(v) for k, v in vars(args).items() if k != "output"}
    alone, flooded = report["alone"], report["flooded"]
    if alone["first_text_p50_ms"] and flooded["first_text_p50_ms"]:
        report["p50_ratio"] = flooded["first_text_p50_ms"] / alone["first_text_p50_ms"]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for phase in ("alone", "flooded"):
        row = report[phase]
        p50, p95 = row["first_text_p50_ms"], row["first_text_p95_ms"]
        shown = "no answers" if p50 is None else f"p50 {p50:.0f} ms, p95 {p95:.0f} ms"
        print(f"other users, {phase}: first text {shown}; answers {row['answers']}")
    print(f"flooder's answers: {report['flooder_answers']}")
    if "p50_ratio" in report:
        print(f"p50 flooded / alone: {report['p50_ratio']:.2f}")


if __name__ == "__main__":
    main()
