"""Two web replicas and an engine process (`make bench`, part four): co-editing across replicas, and
suggestions through the engine tier.

It starts its own topology as processes, on the PostgreSQL server and Redis it is given (a fresh
database of its own): `cowrite serve-engine`; replicas A and B, which use that engine
(`COWRITE_ENGINE_URL`); and replica L, which runs the model in-process as a single server does.

Co-editing: `--editors` people (each an account) in `--documents` documents, each document's
editors split evenly between A and B, each typing real prose at `--rate` characters a second for
`--seconds`, one character per update. Each update is stamped by its sender's Yjs clock and the
time it was made; every other editor of the document times its arrival, and the delivery counts
as across replicas or within one by where the receiver sits. A delivery that never arrives is a
miss and counts in every percentile (shown as "missed" where one lands on it). At the end every
client and the database (the update log, read directly) must hold every edit the replicas
acknowledged: the edits one of them lacks are counted as lost.

Suggestions: a writer typing on through a passage of the novel and pausing every `--step-chars`
characters; each pause asks for a suggestion, over the suggestion socket, alternately through
replica A (the engine tier) and replica L (in-process), the same prompt to both, in `--runs` runs.
The time to the first text is compared. Targets: cross-replica delivery p95 ≤ 50 ms, engine-tier overhead
≤ 15 ms at p50. Writes bench/results/cluster.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import secrets
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import websockets
from pycrdt import Doc, Text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from bench.collab import Typist
from bench.common import CORPUS, FALLBACK, ROOT, percentile
from bench.writers import CowriteSuggester
from harness.accounts import account_async
from harness.processes import free_port, start_server, wait_ready
from harness.yclient import YClient, decode_state_vector, document_socket
from storage.collab import load_updates
from storage.database import make_engine

RESULTS = ROOT / "bench" / "results" / "cluster.json"
DATABASE = "cowrite_bench_cluster"
# a Redis database of its own: the bench's sign-ups and limits stay out of db 0's counters
DEFAULT_REDIS = "redis://127.0.0.1:6379/1"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CROSS_P95_TARGET_MS = 50.0
OVERHEAD_P50_TARGET_MS = 15.0
MISSED = math.inf
WARM_UP = 3  # suggestion pairs before each run's measured ones


class Editor(Typist):
    """A typist connected to one replica, sorting what it receives by where the sender sits."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        replica: str,
        marker: str,
        deliveries: dict[str, list[float]],
        typists: dict[int, Typist],
    ) -> None:
        super().__init__(url, headers, [], typists)
        self.replica = replica
        self.marker = marker  # where in the document it types
        self.deliveries = deliveries

    def delivered(self, sender: Typist, latency: float) -> None:
        assert isinstance(sender, Editor)
        self.deliveries["within" if sender.replica == self.replica else "across"].append(latency)


@dataclass
class Document:
    id: str
    editors: list[Editor] = field(default_factory=list)


@dataclass
class Topology:
    """The processes and where they answer."""

    replicas: dict[str, str]  # "A", "B", "L" -> base URL
    database_url: str
    processes: list[subprocess.Popen[bytes]]


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


async def ready(url: str, process: subprocess.Popen[bytes], folder: Path) -> None:
    """`wait_ready`, saying why when the server does not come up (its log is deleted with the run)."""
    try:
        await wait_ready(url, process, within_s=300)
    except (AssertionError, TimeoutError) as exc:
        log = (folder / "server.log").read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(f"{folder.name} did not start ({exc}); its log ends:\n" + "\n".join(log)) from None


def fresh_database(server_url: str) -> str:
    """Drop and make `DATABASE` on the PostgreSQL server of `server_url`; returns its URL."""
    url = make_url(server_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{DATABASE}"')
    return url.set(database=DATABASE).render_as_string(hide_password=False)


def start_topology(args: argparse.Namespace, data_dir: Path, stack: contextlib.ExitStack) -> Topology:
    database_url = fresh_database(args.postgres)
    token = secrets.token_urlsafe(32)
    shared = {
        "COWRITE_DATABASE_URL": database_url,
        "COWRITE_REDIS_URL": args.redis,
        "COWRITE_SECRET_KEY": secrets.token_urlsafe(32),
        # one address signs up every editor and asks for every suggestion
        "COWRITE_SIGNUPS_PER_ADDRESS": "100000",
        "COWRITE_SUGGESTIONS_PER_MINUTE": "100000",
    }
    processes: list[subprocess.Popen[bytes]] = []

    def start(
        name: str, env: dict[str, str], command: tuple[str, ...] = ()
    ) -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        folder = data_dir / name
        folder.mkdir()
        process = start_server(port, folder, env, command=command)
        processes.append(process)
        stack.callback(stop, process)
        return f"http://127.0.0.1:{port}", process

    engine_url, engine = start("engine", {"COWRITE_ENGINE_TOKEN": token}, ("serve-engine",))
    asyncio.run(ready(engine_url, engine, data_dir / "engine"))
    tier = {"COWRITE_ENGINE_URL": engine_url, "COWRITE_ENGINE_TOKEN": token}
    started = {
        "A": start("replica-a", shared | tier),
        "B": start("replica-b", shared | tier),
        "L": start("replica-l", shared),
    }

    async def all_ready() -> None:
        await asyncio.gather(
            *(
                ready(url, process, data_dir / f"replica-{name.lower()}")
                for name, (url, process) in started.items()
            )
        )

    asyncio.run(all_ready())
    return Topology({name: url for name, (url, _) in started.items()}, database_url, processes)


# --- co-editing --------------------------------------------------------------------------------


async def make_documents(
    topology: Topology, args: argparse.Namespace
) -> tuple[list[Document], dict[int, Typist]]:
    """The accounts, documents and connected editors; editor i of a document sits on A or B by i's
    parity, and signs up there."""
    per_document = args.editors // args.documents
    a, b = topology.replicas["A"], topology.replicas["B"]
    async with httpx.AsyncClient(timeout=120) as http:

        async def person(d: int, i: int) -> dict[str, str]:
            http_for = httpx.AsyncClient(base_url=a if i % 2 == 0 else b, timeout=120)
            async with http_for:
                return await account_async(http_for, f"d{d}e{i}")

        people = await asyncio.gather(
            *(person(d, i) for d in range(args.documents) for i in range(per_document))
        )
        documents: list[Document] = []
        typists: dict[int, Typist] = {}
        deliveries: dict[str, list[float]] = {"within": [], "across": []}
        for d in range(args.documents):
            mine = people[d * per_document : (d + 1) * per_document]
            owner = mine[0]
            created = await http.post(f"{a}/api/documents", json={"title": f"Bench {d}"}, headers=owner)
            assert created.status_code == 201, created.text
            document = Document(created.json()["id"])
            for i in range(1, per_document):
                invite = {"username": f"d{d}e{i}", "role": "editor"}
                added = await http.post(
                    f"{a}/api/documents/{document.id}/members", json=invite, headers=owner
                )
                assert added.status_code == 201, added.text
            text = "\n".join(f"[{i}]" for i in range(per_document))
            patched = await http.patch(f"{a}/api/documents/{document.id}", json={"text": text}, headers=owner)
            assert patched.status_code == 200, patched.text
            for i in range(per_document):
                replica = "A" if i % 2 == 0 else "B"
                url = document_socket(topology.replicas[replica], document.id)
                document.editors.append(Editor(url, mine[i], replica, f"[{i}]", deliveries, typists))
            documents.append(document)
    return documents, typists


async def type_from(editor: Editor, prose: str, args: argparse.Namespace, rng: random.Random) -> None:
    """Type for `--seconds`, starting at a random moment of the first keystroke interval: people
    do not all press their first key at once (and a bench where they do measures that burst)."""
    offset = rng.uniform(0, 1 / args.rate)
    await asyncio.sleep(offset)
    await editor.type(prose, editor.marker, args.rate, args.seconds - offset, rng)


async def loop_lag(samples: list[float], tick_s: float = 0.01) -> None:
    """How late this process's event loop wakes from a short sleep, until cancelled: the clients
    share one loop, so a receiver can be late by its own backlog, not the servers'."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(tick_s)
        samples.append(time.perf_counter() - before - tick_s)


def clock_of(doc: Doc[Text], client_id: int) -> int:
    return decode_state_vector(doc.get_state()).get(client_id, 0)


def holds(marker: str) -> Callable[[YClient], bool]:
    return lambda client: marker in str(client.text)


def holds_all(clocks: dict[int, int]) -> Callable[[YClient], bool]:
    """Whether a client has every one of these senders' edits up to these clocks."""
    return lambda client: all(clock_of(client.doc, sender) >= clock for sender, clock in clocks.items())


async def coedit(topology: Topology, args: argparse.Namespace, novel: str) -> dict[str, Any]:
    documents, typists = await make_documents(topology, args)
    editors = [e for d in documents for e in d.editors]
    deliveries = editors[0].deliveries
    async with contextlib.AsyncExitStack() as stack:
        for editor in editors:
            await stack.enter_async_context(editor.client)
            typists[editor.client.client_id] = editor
        for editor in editors:
            await editor.client.wait_for(holds(editor.marker), within_s=60)
        started = time.perf_counter()
        lag: list[float] = []
        watch = asyncio.create_task(loop_lag(lag))
        try:
            await asyncio.gather(
                *(
                    type_from(e, novel[10_000 + n * 2_000 :], args, random.Random(n))
                    for n, e in enumerate(editors)
                )
            )
        finally:
            watch.cancel()
        typing_s = time.perf_counter() - started
        # what the replicas acknowledged storing, per editor: its own clock in the last ack
        unacknowledged = 0
        for editor in editors:
            with contextlib.suppress(TimeoutError):
                await editor.client.wait_saved(within_s=args.settle_s)
            unacknowledged += editor.client.updates_sent - editor.client.updates_acknowledged
        acknowledged = {e.client.client_id: e.client.server_state.get(e.client.client_id, 0) for e in editors}
        # every client should come to hold every acknowledged edit of its document
        deadline = time.perf_counter() + args.settle_s
        for document in documents:
            wanted = {e.client.client_id: acknowledged[e.client.client_id] for e in document.editors}
            for editor in document.editors:
                with contextlib.suppress(TimeoutError):
                    await editor.client.wait_for(
                        holds_all(wanted), within_s=max(0.1, deadline - time.perf_counter())
                    )
        lost_on_clients = sum(
            max(0, acknowledged[other.client.client_id] - clock_of(editor.client.doc, other.client.client_id))
            for d in documents
            for editor in d.editors
            for other in d.editors
        )
        identical = all(len({str(e.client.text) for e in d.editors}) == 1 for d in documents)
        texts = {d.id: str(d.editors[0].client.text) for d in documents}
    lost_in_database, stored_matches = await asyncio.to_thread(
        check_database, topology, documents, acknowledged, texts
    )
    expected = {"within": 0, "across": 0}
    for document in documents:
        for sender in document.editors:
            for receiver in document.editors:
                if receiver is not sender:
                    kind = "within" if receiver.replica == sender.replica else "across"
                    expected[kind] += len(sender.sent_at)
    return {
        "editors": len(editors),
        "documents": len(documents),
        "typing_s": typing_s,
        # the bench's own event loop, late by this much: every delivery time includes some of it
        "bench_loop_lag_p50_ms": percentile(lag, 50) * 1000,
        "bench_loop_lag_p95_ms": percentile(lag, 95) * 1000,
        "updates": sum(len(e.sent_at) for e in editors),
        **{f"{kind}": delivery_figures(deliveries[kind], expected[kind]) for kind in ("within", "across")},
        "unacknowledged": unacknowledged,
        "lost_on_clients": lost_on_clients,
        "lost_in_database": lost_in_database,
        "identical": identical,
        "stored_matches": stored_matches,
    }


def check_database(
    topology: Topology, documents: list[Document], acknowledged: dict[int, int], texts: dict[str, str]
) -> tuple[int, bool]:
    """Edits the replicas acknowledged that the stored log of their document lacks, and whether
    every stored document reads as its clients' copy does."""
    engine = make_engine(topology.database_url)
    lost, matches = 0, True
    try:
        for document in documents:
            with Session(engine) as session:
                stored = load_updates(session, document.id)
            doc: Doc[Text] = Doc()
            for update in stored.updates:
                doc.apply_update(update)
            for editor in document.editors:
                client = editor.client.client_id
                lost += max(0, acknowledged[client] - clock_of(doc, client))
            matches = matches and str(doc.get("content", type=Text)) == texts[document.id]
    finally:
        engine.dispose()
    return lost, matches


def delivery_figures(latencies: list[float], expected: int) -> dict[str, float | int | None]:
    """Percentiles over every expected delivery, a missing one counting as a miss (None)."""
    missed = max(0, expected - len(latencies))
    every = latencies + [MISSED] * missed
    if not every:
        return {"deliveries": 0, "missed": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}

    def ms(value: float) -> float | None:
        return None if value == MISSED else value * 1000

    return {
        "deliveries": len(latencies),
        "missed": missed,
        "p50_ms": ms(percentile(every, 50)),
        "p95_ms": ms(percentile(every, 95)),
        "max_ms": ms(max(every)),
    }


# --- suggestions -------------------------------------------------------------------------------


async def suggestion_socket(base: str, headers: dict[str, str], document: str, tab: str) -> Any:
    url = base.replace("http", "ws", 1) + f"/ws/suggest/{document}?tab={tab}"
    ws = await websockets.connect(url, max_size=2**20, additional_headers=headers)
    json.loads(await ws.recv())  # hello
    return ws


async def first_text(suggester: CowriteSuggester, prompt: str) -> float:
    """Seconds from asking to the first text (MISSED when none came before it ended)."""
    attempt = await suggester.suggest(prompt)
    await asyncio.wait_for(suggester.ended.wait(), 60)
    suggester.current = None
    first = attempt.first_text()
    return MISSED if first is None else first - attempt.sent


async def suggestions(topology: Topology, args: argparse.Namespace, novel: str) -> dict[str, Any]:
    """The same prompts alternately through the engine tier (A) and in-process (L)."""
    sides = {"engine_tier": topology.replicas["A"], "in_process": topology.replicas["L"]}
    async with httpx.AsyncClient(base_url=sides["engine_tier"], timeout=60) as http:
        me = await account_async(http, "suggester")
        created = await http.post("/api/documents", json={"title": "Suggestions"}, headers=me)
        document = created.json()["id"]
    suggesters: dict[str, CowriteSuggester] = {}
    readers: list[asyncio.Task[None]] = []
    sockets = []
    for side, base in sides.items():
        ws = await suggestion_socket(base, {**me, "origin": base}, document, side)
        sockets.append(ws)
        suggesters[side] = CowriteSuggester(ws, args.max_tokens, args.temperature)
        readers.append(asyncio.create_task(suggesters[side].read()))
    start = novel.find("It is a truth universally acknowledged")
    runs: list[dict[str, Any]] = []
    try:
        for run in range(args.runs):
            timings: dict[str, list[float]] = {side: [] for side in sides}
            # a writer typing on through a passage, pausing every `--step-chars`: each prompt
            # extends the one before, so both sides read only what is new (the session's cache)
            at = start + run * 20_000
            for n in range(WARM_UP + args.suggestions):
                prompt = novel[at : at + args.prompt_chars + n * args.step_chars]
                prompt = prompt[: prompt.rfind(" ") + 1]
                order = list(sides) if n % 2 == 0 else list(reversed(sides))
                for side in order:  # the same prompt to both, each first half the time
                    seconds = await first_text(suggesters[side], prompt)
                    if n >= WARM_UP:
                        timings[side].append(seconds)
            figures = {side: percentile(values, 50) * 1000 for side, values in timings.items()}
            runs.append(
                {
                    "first_text_p50_ms": figures,
                    "first_text_p95_ms": {side: percentile(v, 95) * 1000 for side, v in timings.items()},
                    "overhead_p50_ms": figures["engine_tier"] - figures["in_process"],
                    "paired_overhead_p50_ms": statistics.median(
                        (tier - local) * 1000
                        for tier, local in zip(timings["engine_tier"], timings["in_process"])
                    ),
                }
            )
            print(f"suggestions, run {run + 1}: {json.dumps(runs[-1])}", flush=True)
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for ws in sockets:
            await ws.close()
    return {
        "runs": runs,
        "first_text_p50_ms": {
            side: statistics.median(r["first_text_p50_ms"][side] for r in runs) for side in sides
        },
        "overhead_p50_ms": statistics.median(r["overhead_p50_ms"] for r in runs),
    }


# --- the report --------------------------------------------------------------------------------


def shown(value: float | None) -> str:
    return "missed" if value is None or value == MISSED else f"{value:.1f} ms"


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def table(result: dict[str, Any]) -> str:
    edit, suggest = result["coediting"], result["suggestions"]
    across, within = edit["across"], edit["within"]
    cross_p95 = across["p95_ms"]
    lost = edit["lost_on_clients"] + edit["lost_in_database"]
    overhead = suggest["overhead_p50_ms"]
    rows = [
        "| measure | p50 | p95 | max | target | |",
        "|---|---:|---:|---:|---|---|",
        f"| delivery across replicas ({across['deliveries']} delivered, {across['missed']} missed) "
        f"| {shown(across['p50_ms'])} | {shown(cross_p95)} | {shown(across['max_ms'])} | p95 ≤ 50 ms "
        f"| {verdict(cross_p95 is not None and cross_p95 <= CROSS_P95_TARGET_MS)} |",
        f"| delivery within one replica ({within['deliveries']} delivered, {within['missed']} missed) "
        f"| {shown(within['p50_ms'])} | {shown(within['p95_ms'])} | {shown(within['max_ms'])} | | |",
        f"| edits lost (clients {edit['lost_on_clients']}, database {edit['lost_in_database']}) "
        f"| {lost} | | | 0 | {verdict(lost == 0 and edit['identical'] and edit['stored_matches'])} |",
        f"| first text, in-process | {shown(suggest['first_text_p50_ms']['in_process'])} | | | | |",
        f"| first text, through the engine tier | {shown(suggest['first_text_p50_ms']['engine_tier'])} "
        "| | | | |",
        f"| engine-tier overhead | {shown(overhead)} | | | p50 ≤ 15 ms "
        f"| {verdict(overhead <= OVERHEAD_P50_TARGET_MS)} |",
    ]
    rows.append(
        f"\n(the bench's own event loop woke late by {edit['bench_loop_lag_p50_ms']:.1f} ms at p50, "
        f"{edit['bench_loop_lag_p95_ms']:.1f} ms at p95: part of every delivery time)"
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--editors", type=int, default=200)
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=1.0, help="characters a second per editor")
    parser.add_argument(
        "--settle-s", type=float, default=15.0, help="how long stragglers may take at the end"
    )
    parser.add_argument("--runs", type=int, default=3, help="suggestion runs")
    parser.add_argument("--suggestions", type=int, default=20, help="prompts per run, each to both sides")
    parser.add_argument("--prompt-chars", type=int, default=1500, help="the first prompt of a run")
    parser.add_argument("--step-chars", type=int, default=80, help="what each next prompt adds")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.7, help="the editor's default")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("COWRITE_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
        help=f"a PostgreSQL server (env COWRITE_BENCH_POSTGRES_URL); the bench makes {DATABASE} on it",
    )
    parser.add_argument(
        "--redis",
        default=os.environ.get("COWRITE_BENCH_REDIS_URL", DEFAULT_REDIS),
        help="Redis (env COWRITE_BENCH_REDIS_URL)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.editors % args.documents or args.editors // args.documents < 2:
        parser.error("--editors must be a multiple of --documents, at least two per document")
    novel = (CORPUS if CORPUS.exists() else FALLBACK).read_text(encoding="utf-8")
    needed = 10_000 + args.editors * 2_000 + 10_000
    novel = novel * (1 + needed // len(novel))
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        topology = start_topology(args, data_dir, stack)
        coediting = asyncio.run(coedit(topology, args, novel))
        print(f"co-editing: {json.dumps(coediting)}", flush=True)
        suggested = asyncio.run(suggestions(topology, args, novel))
    result = {
        "settings": {k: str(v) for k, v in vars(args).items() if k not in ("output", "postgres", "redis")},
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            # everything runs on this one machine: how busy it was besides, before and after
            "load_average_1_5_15_before": load_before,
            "load_average_1_5_15_after": os.getloadavg(),
        },
        "coediting": coediting,
        "suggestions": suggested,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(table(result))


if __name__ == "__main__":
    main()
