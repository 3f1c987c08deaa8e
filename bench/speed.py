"""Single-stream decode and prefill speed: Cowrite and llama-server side by side.

`python -m bench.speed` starts `python -m server` (its default dtype, or `--dtype`) and llama.cpp's
`llama-server` (`make bench-peer` builds it) on the same GGUF file, and asks each over its
streamed `/v1/completions`, alternately, `--runs` times:
- decode: a greedy 64-token continuation of a corpus context, one request alone; tokens/s from
  the first streamed token to the last, as a client sees them;
- prefill: a fresh 500-token corpus context (a different one each time, nothing cached), one
  token asked for; prompt tokens/s from the request to that first token.
Medians and Cowrite/llama-server ratios; results in bench/results/speed.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import CORPUS, FALLBACK, ROOT
from bench.peer import serve as serve_peer
from bench.peer import wait_peer_ready
from harness.accounts import account_async
from harness.processes import free_port, start_server, wait_ready

RESULTS = ROOT / "bench" / "results" / "speed.json"
CONTEXT_TOKENS = 500


async def stream(http: httpx.AsyncClient, body: dict[str, Any]) -> tuple[float, list[float]]:
    """Seconds to the first streamed text, and the time of every streamed piece of text."""
    sent = time.perf_counter()
    marks: list[float] = []
    async with http.stream("POST", "/v1/completions", json=body | {"stream": True}) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            data = line.removeprefix("data: ")
            if not line.startswith("data: ") or data == "[DONE]":
                continue
            for choice in json.loads(data).get("choices", []):
                if choice.get("text"):
                    marks.append(time.perf_counter())
    return (marks[0] - sent if marks else float("nan")), marks


async def one_run(http: httpx.AsyncClient, contexts: list[str], run: int) -> tuple[float, float]:
    """(decode tokens/s, prefill tokens/s) for one run against one server."""
    body = {"prompt": contexts[0], "temperature": 0, "cache_prompt": True, "user": "speed-decode"}
    await stream(http, body | {"max_tokens": 1})  # the context is read (and kept) first
    _, marks = await stream(http, body | {"max_tokens": 64, "ignore_eos": True})
    decode = (len(marks) - 1) / (marks[-1] - marks[0]) if len(marks) > 1 else float("nan")
    fresh = {"prompt": contexts[1 + run], "max_tokens": 1, "temperature": 0, "user": f"speed-prefill-{run}"}
    first, _ = await stream(http, fresh | {"cache_prompt": False})
    return decode, CONTEXT_TOKENS / first


async def measure(bases: dict[str, str], contexts: list[str], runs: int) -> dict[str, dict[str, float]]:
    """Each server in turn, run after run, so that a noisy minute hurts both."""
    # a new connection per request: llama-server closes idle keep-alive connections, and a request
    # sent on one as it closes fails ("Server disconnected")
    fresh = httpx.Limits(max_keepalive_connections=0)
    clients = {name: httpx.AsyncClient(base_url=u, timeout=120, limits=fresh) for name, u in bases.items()}
    cowrite = clients["cowrite"]
    cowrite.headers.update(await account_async(cowrite, "speed"))
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
    try:
        for run in range(runs):
            for name, http in clients.items():
                samples[name].append(await one_run(http, contexts, run))
                print(name, run + 1, samples[name][-1], flush=True)
    finally:
        for http in clients.values():
            await http.aclose()
    return {
        name: {
            "decode_tokens_per_s": statistics.median(d for d, _ in values),
            "prefill_tokens_per_s": statistics.median(p for _, p in values),
        }
        for name, values in samples.items()
    }


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dtype", default="auto", help="Cowrite's COWRITE_DTYPE")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from streaming.loader import convert_bundled

    tokenizer = AutoTokenizer.from_pretrained(convert_bundled(ROOT / "data" / "models"))
    text = (CORPUS if CORPUS.exists() else FALLBACK).read_text(encoding="utf-8")
    ids = tokenizer.encode(text, add_special_tokens=False)
    step = CONTEXT_TOKENS + 200
    contexts = [tokenizer.decode(ids[i * step : i * step + CONTEXT_TOKENS]) for i in range(1, args.runs + 2)]
    result: dict[str, Any] = {"runs": args.runs, "dtype": args.dtype}
    with contextlib.ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        port = free_port()
        server = start_server(port, data_dir, {"COWRITE_DTYPE": args.dtype})
        stack.callback(lambda: (server.terminate(), server.wait(timeout=30)))
        asyncio.run(wait_ready(f"http://127.0.0.1:{port}", server))
        peer_port = free_port()  # asked for once Cowrite holds its own, so the two differ
        peer = serve_peer(peer_port, data_dir / "llama-server.log")
        stack.callback(lambda: (peer.terminate(), peer.wait(timeout=30)))
        wait_peer_ready(f"http://127.0.0.1:{peer_port}", peer)
        bases = {"cowrite": f"http://127.0.0.1:{port}", "llama_server": f"http://127.0.0.1:{peer_port}"}
        result |= asyncio.run(measure(bases, contexts, args.runs))
    for key in ("decode_tokens_per_s", "prefill_tokens_per_s"):
        result[f"{key}_ratio"] = result["cowrite"][key] / result["llama_server"][key]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
