"""The first suggestions on a just-started server: `python -m bench.coldstart`.

Starts `python -m server` (a fresh data folder, the shared converted weights), waits for
`/healthz`, then one writer opens a document's suggestion socket and asks for a few suggestions in
a row, as after pauses while typing. Prints each one's time to first text and to `done`; repeats
with a new server `--runs` times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

from harness.accounts import account_async
from harness.processes import free_port, start_server, wait_ready

OPENING = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife. However little known the feelings or views of such a man may be on "
    "his first entering a neighbourhood, this truth is so well fixed in the minds of the surrounding "
    "families, that he is considered the rightful property of some one or other of their daughters."
)
TYPED = [" My dear Mr. Bennet,", " said his lady to him one day, have you heard that", " Netherfield Pa"]


async def suggestions(base: str, count: int) -> list[tuple[float, float]]:
    """(first text, done) in seconds from sending, for `count` suggestions in a row."""
    timings = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        me = await account_async(http, "first")
        http.headers.update(me)
        doc = (await http.post("/api/documents", json={"title": "Cold"})).json()["id"]
        url = base.replace("http", "ws", 1) + f"/ws/suggest/{doc}"
        async with websockets.connect(url, additional_headers=me) as ws:
            json.loads(await ws.recv())  # hello
            text = OPENING
            for number in range(count):
                text += TYPED[number % len(TYPED)]
                request_id = f"s{number}"
                frame = {"v": 1, "type": "suggest", "id": request_id, "before": text, "after": ""}
                sent = time.perf_counter()
                await ws.send(json.dumps({**frame, "settings": {"max_tokens": 16, "temperature": 0.7}}))
                first: float | None = None
                while True:
                    message: dict[str, Any] = json.loads(await ws.recv())
                    if message.get("id") != request_id:
                        continue
                    if message["type"] == "delta" and first is None:
                        first = time.perf_counter() - sent
                    if message["type"] == "done":
                        done = time.perf_counter() - sent
                        timings.append((first if first is not None else done, done))
                        break
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="fresh servers to start")
    parser.add_argument("--suggestions", type=int, default=4, help="suggestions per fresh server")
    args = parser.parse_args()
    rows: list[list[tuple[float, float]]] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as data_dir:
            port = free_port()
            server = start_server(port, Path(data_dir))
            base = f"http://127.0.0.1:{port}"
            try:
                started = time.perf_counter()
                asyncio.run(wait_ready(base, server))
                ready_s = time.perf_counter() - started
                timings = asyncio.run(suggestions(base, args.suggestions))
            finally:
                server.terminate()
                server.wait(timeout=30)
        rows.append(timings)
        shown = ", ".join(f"{first * 1000:.0f}/{done * 1000:.0f}" for first, done in timings)
        print(f"ready in {ready_s:.1f} s; first text / done, ms: {shown}", flush=True)
    for number in range(args.suggestions):
        median = statistics.median(run[number][0] * 1000 for run in rows)
        print(f"suggestion {number + 1}: first text, median of {len(rows)} servers: {median:.0f} ms")


if __name__ == "__main__":
    main()
