"""Many people in one document (`make bench`, part three): update propagation over loopback.

A real server runs as a subprocess. `--clients` y-websocket clients (pycrdt, one process) join one
document; each types real prose at `--rate` characters a second for `--seconds`, one character
per update, at its own place in the text. For every update, the time from its sender making it to
each other client receiving it is measured (by the sender's clock in each receiver's state
vector). At the end every client's text and the server's stored text must be identical and hold
every character typed. Writes bench/results/collab.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import CORPUS, FALLBACK, ROOT, percentile
from harness.accounts import account_async
from harness.processes import free_port, start_server, wait_ready
from harness.yclient import YClient, decode_state_vector

RESULTS = ROOT / "bench" / "results" / "collab.json"


class Typist:
    """One client, its send times by clock, and what it has seen of the others."""

    def __init__(
        self, url: str, headers: dict[str, str], latencies: list[float], typists: dict[int, Typist]
    ) -> None:
        self.client = YClient(url, on_update=self._received, headers=headers)
        self.sent_at: dict[int, float] = {}
        self.seen: dict[int, int] = {}
        self.latencies = latencies
        self.typists = typists
        self.typed = 0

    def _received(self, client: YClient) -> None:
        now = time.perf_counter()
        for sender, clock in decode_state_vector(client.doc.get_state()).items():
            typist = self.typists.get(sender)
            if typist is None or typist is self:
                continue
            for c in range(self.seen.get(sender, 0) + 1, clock + 1):
                sent = typist.sent_at.get(c)
                if sent is not None:
                    self.delivered(typist, now - sent)
            self.seen[sender] = max(self.seen.get(sender, 0), clock)

    def delivered(self, sender: Typist, latency: float) -> None:
        """One of `sender`'s updates reached this client `latency` seconds after it was made."""
        self.latencies.append(latency)

    async def type(self, prose: str, marker: str, rate: float, seconds: float, rng: random.Random) -> None:
        text = self.client.text
        # each typist writes after its own marker, so everyone types into the same document at once
        deadline = time.perf_counter() + seconds
        chars = iter(prose)
        while time.perf_counter() < deadline:
            char = next(chars)
            current = str(text)
            at = current.index(marker) + len(marker) + self.typed
            text.insert(len(current[:at].encode()), char)
            self.typed += 1
            self.sent_at[decode_state_vector(self.client.doc.get_state())[self.client.client_id]] = (
                time.perf_counter()
            )
            await asyncio.sleep(rng.expovariate(rate))


async def run(base: str, args: argparse.Namespace, novel: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        # each client is its own account, an editor of the host's document
        host = await account_async(http, "host")
        people = [await account_async(http, f"typist{i}") for i in range(args.clients)]
        document = (await http.post("/api/documents", json={"title": "Everyone"}, headers=host)).json()["id"]
        for i in range(args.clients):
            invite = {"username": f"typist{i}", "role": "editor"}
            await http.post(f"/api/documents/{document}/members", json=invite, headers=host)
        markers = [f"[{i}]" for i in range(args.clients)]
        await http.patch(f"/api/documents/{document}", json={"text": "\n".join(markers)}, headers=host)
    url = base.replace("http", "ws", 1) + f"/ws/doc/{document}"
    latencies: list[float] = []
    typists: dict[int, Typist] = {}
    members = [Typist(url, people[i], latencies, typists) for i in range(args.clients)]
    for member in members:
        await member.client.__aenter__()
        typists[member.client.client_id] = member
    try:
        for member in members:
            await asyncio.wait_for(member.client.synced.wait(), 30)
        await asyncio.gather(
            *(
                m.type(novel[10_000 + i * 2_000 :], markers[i], args.rate, args.seconds, random.Random(i))
                for i, m in enumerate(members)
            )
        )
        for member in members:
            await member.client.wait_saved(within_s=30)
        expected_clocks = {m.client.client_id: max(m.sent_at) for m in members}
        for member in members:
            await member.client.wait_for(
                lambda c: all(
                    decode_state_vector(c.doc.get_state()).get(k, 0) >= v for k, v in expected_clocks.items()
                ),
                within_s=30,
            )
        texts = {str(m.client.text) for m in members}
    finally:
        for member in members:
            await member.client.__aexit__(None, None, None)
    typed = sum(m.typed for m in members)
    final = texts.pop() if len(texts) == 1 else None
    async with httpx.AsyncClient(base_url=base, headers=host) as http:
        for _ in range(100):  # the plain text is saved beside the log on a one-second schedule
            stored = (await http.get(f"/api/documents/{document}")).json()["text"]
            if stored == final:
                break
            await asyncio.sleep(0.1)
    expected_length = len("\n".join(markers)) + typed
    return {
        "clients": args.clients,
        "updates": typed,
        "deliveries": len(latencies),
        "latency_p50_ms": percentile(latencies, 50) * 1000,
        "latency_p95_ms": percentile(latencies, 95) * 1000,
        "latency_max_ms": max(latencies) * 1000,
        "identical": final is not None,
        "nothing_lost": final is not None and len(final) == expected_length,
        "stored_matches": stored == final,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rate", type=float, default=5.0, help="characters a second per client")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    novel = (CORPUS if CORPUS.exists() else FALLBACK).read_text(encoding="utf-8")
    novel = novel * (1 + (10_000 + args.clients * 2_000 + 10_000) // len(novel))
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        server = start_server(port, Path(data_dir))
        base = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(wait_ready(base, server))
            baseline = asyncio.run(run(base, argparse.Namespace(**{**vars(args), "clients": 2}), novel))
            result = asyncio.run(run(base, args, novel))
        finally:
            server.terminate()
            server.wait(timeout=30)
    report = {
        "settings": {k: str(v) for k, v in vars(args).items() if k != "output"},
        "two_clients": baseline,
    }
    report[f"{args.clients}_clients"] = result
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print("| clients | updates | deliveries | p50 | p95 | max | identical | nothing lost | stored matches |")
    print("|---:|---:|---:|---:|---:|---:|---|---|---|")
    for row in (baseline, result):
        print(
            f"| {row['clients']} | {row['updates']} | {row['deliveries']} | {row['latency_p50_ms']:.1f} ms "
            f"| {row['latency_p95_ms']:.1f} ms | {row['latency_max_ms']:.0f} ms | {row['identical']} "
            f"| {row['nothing_lost']} | {row['stored_matches']} |"
        )
    met = result["latency_p95_ms"] <= 100 and result["identical"] and result["nothing_lost"]
    print(f"\ntarget p95 ≤ 100 ms with zero lost or diverged edits: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
