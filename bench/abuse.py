"""What one hostile account costs everyone else, on a real server (`python -m bench.abuse`).

- `awareness`: the server's memory after 150 awareness messages of 4 MB under new client ids (the
  socket reconnects whenever the server closes it), against its memory before.
- `bomb`: `/healthz` latency, sampled every 50 ms, while a 1.6 MB insert and then a 3.2 MB update
  that is only a delete set (every other character) are sent to one document; then the same with
  a delete set just under the server's cap on one update's ranges (99,000), which is applied.

Not part of `make test`; writes bench/results/abuse.json.
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
from pycrdt import Doc, Text, create_awareness_message, create_update_message, write_message

from bench.common import ROOT, percentile
from harness.accounts import account_async
from harness.processes import free_port, start_server, wait_ready
from server.collab.yupdates import write_var_uint

RESULTS = ROOT / "bench" / "results" / "abuse.json"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc: measure on Linux")


async def new_document(http: httpx.AsyncClient, title: str) -> str:
    return str((await http.post("/api/documents", json={"title": title})).json()["id"])


async def flood_awareness(base: str, headers: dict[str, str], doc: str, messages: int, size: int) -> int:
    """Send `messages` awareness messages of `size` bytes, each under a new client id; returns
    how many connections the server closed on the way."""
    url = base.replace("http", "ws", 1) + f"/ws/doc/{doc}"
    closed, sent = 0, 0
    state = json.dumps({"user": {"name": "x"}, "pad": "x" * size}).encode()
    while sent < messages:
        async with websockets.connect(url, max_size=2**24, additional_headers=headers) as ws:
            try:
                while sent < messages:
                    entry = write_var_uint(1) + write_var_uint(50_000 + sent) + write_var_uint(1)
                    await ws.send(create_awareness_message(entry + write_message(state)))
                    sent += 1
                    await asyncio.sleep(0.01)
                await ws.close()
            except websockets.ConnectionClosed:
                closed += 1
    return closed


def delete_every_other(client_id: int, length: int, most: int | None = None) -> bytes:
    """A Yjs v1 update with no structs and a delete set removing every other character of one
    client's `length`-character insert (the first `most` of them, if given)."""
    ranges = range(1, length, 2)[:most]
    out = bytearray(write_var_uint(0))  # no structs
    out += write_var_uint(1) + write_var_uint(client_id) + write_var_uint(len(ranges))
    for clock in ranges:
        out += write_var_uint(clock) + write_var_uint(1)
    return bytes(out)


async def sample_health(base: str, stop: asyncio.Event, out: list[float]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        while not stop.is_set():
            started = time.perf_counter()
            await http.get("/healthz")
            out.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)


async def bomb(
    base: str, headers: dict[str, str], doc: str, chars: int, ranges: int | None = None
) -> dict[str, Any]:
    url = base.replace("http", "ws", 1) + f"/ws/doc/{doc}"
    source: Doc[Text] = Doc()
    text = source.get("content", type=Text)
    with source.transaction():
        text.insert(0, "ab" * (chars // 2))
    insert = source.get_update()
    delete = delete_every_other(int(source.client_id), chars, ranges)
    latencies: list[float] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_health(base, stop, latencies))
    closes: list[int | None] = []
    started = time.perf_counter()
    try:
        for update in (insert, delete):
            async with websockets.connect(url, max_size=2**24, additional_headers=headers) as ws:
                await ws.send(create_update_message(update))
                try:
                    async with asyncio.timeout(120):
                        while True:
                            message = await ws.recv()
                            if isinstance(message, bytes) and message[0] == 100:  # saved
                                break
                    closes.append(None)
                except websockets.ConnectionClosed as exc:
                    closes.append(exc.rcvd.code if exc.rcvd else None)
    finally:
        elapsed = time.perf_counter() - started
        stop.set()
        await sampler
    return {
        "insert_bytes": len(insert),
        "delete_set_bytes": len(delete),
        "closes": closes,  # None: acknowledged (stored); a number: the close code it got instead
        "seconds": round(elapsed, 2),
        "healthz_samples": len(latencies),
        "healthz_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "healthz_p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "healthz_max_ms": round(max(latencies) * 1000, 1),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(port, Path(data))
        try:
            await wait_ready(base, server)
            async with httpx.AsyncClient(base_url=base, timeout=120) as http:
                me = await account_async(http, "mallory")
                http.headers.update(me)
                if "awareness" in args.measure:
                    doc = await new_document(http, "Presence flood")
                    before = rss_mb(server.pid)
                    size = args.message_mb * 10**6 - 200  # under the 4 MiB message limit
                    closed = await flood_awareness(base, me, doc, args.messages, size)
                    await asyncio.sleep(1)  # let the server finish with the last connection
                    after = rss_mb(server.pid)
                    results["awareness"] = {
                        "messages": args.messages,
                        "message_mb": args.message_mb,
                        "connections_closed_by_server": closed,
                        "rss_before_mb": round(before, 1),
                        "rss_after_mb": round(after, 1),
                        "growth_mb": round(after - before, 1),
                    }
                    print("awareness:", results["awareness"], flush=True)
                if "bomb" in args.measure:
                    doc = await new_document(http, "Bomb")
                    results["bomb"] = await bomb(base, me, doc, args.bomb_chars)
                    print("bomb:", results["bomb"], flush=True)
                    # just under the server's cap on one update's structs and ranges: applied
                    doc = await new_document(http, "Capped bomb")
                    results["capped_bomb"] = await bomb(base, me, doc, args.bomb_chars, args.capped_ranges)
                    print("capped bomb:", results["capped_bomb"], flush=True)
                assert server.poll() is None, "the server died"
        finally:
            server.terminate()
            server.wait(timeout=60)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("measure", nargs="*", help="awareness, bomb (default: both)")
    parser.add_argument("--messages", type=int, default=150)
    parser.add_argument("--message-mb", type=int, default=4)
    parser.add_argument("--bomb-chars", type=int, default=1_600_000)  # a 3.2 MB delete set
    parser.add_argument("--capped-ranges", type=int, default=99_000)
    parsed = parser.parse_args()
    parsed.measure = parsed.measure or ["awareness", "bomb"]
    if not set(parsed.measure) <= {"awareness", "bomb"}:
        parser.error("measure: choose from awareness, bomb")
    outcome = asyncio.run(main(parsed))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(outcome, indent=2) + "\n")
