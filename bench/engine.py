"""`make bench`: the engine against the common way to serve a model, in one process.

Baseline: transformers `generate` with a `TextIteratorStreamer`, one request at a time, no reuse.
Every scenario runs `--runs` times; the table shows medians and engine/baseline ratios.
Writes bench/results/engine.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.common import CORPUS, FALLBACK, ROOT, percentile
from streaming.engine import Engine, EngineLimits
from streaming.loader import LoadedModel, load_model
from streaming.params import GenerationRequest
from streaming.runner import ModelRunner

RESULTS = ROOT / "bench" / "results" / "engine.json"


@dataclass
class StreamTiming:
    ttft: float  # seconds from arrival to the first text
    end: float  # seconds from arrival to the last text
    tokens: int
    marks: list[tuple[float, int]] | None = None  # (seconds from arrival, tokens so far) per delta


class Prose:
    """Real prose from the corpus, cut into prompts of a given token length."""

    def __init__(self, loaded: LoadedModel, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        start = text.find("It is a truth universally acknowledged")
        self.text = text[max(0, start) :]
        self.tokenizer = loaded.tokenizer
        self.cursor = 0

    def prompt(self, tokens: int) -> str:
        """The next `tokens`-token stretch of the novel, decoded back to text."""
        if self.cursor + tokens * 8 > len(self.text):
            self.cursor = 0  # a short corpus is reused from its start
        window = self.text[self.cursor : self.cursor + tokens * 8]
        self.cursor += tokens * 6
        ids = self.tokenizer.encode(window, add_special_tokens=False)[:tokens]
        return str(self.tokenizer.decode(ids))


# the baseline: one request at a time through generate() and a streamer


def baseline_one(loaded: LoadedModel, prompt: str, max_new: int, arrived: float) -> StreamTiming:
    from transformers import TextIteratorStreamer

    ids = torch.tensor([loaded.tokenizer.encode(prompt, add_special_tokens=False)], device=loaded.device)
    streamer = TextIteratorStreamer(loaded.tokenizer, skip_prompt=True)
    output: list[torch.Tensor] = []

    def run() -> None:
        with torch.inference_mode():
            output.append(
                loaded.model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=max_new,
                    do_sample=False,
                    streamer=streamer,
                    pad_token_id=loaded.tokenizer.eos_token_id,
                )
            )

    thread = threading.Thread(target=run)
    thread.start()
    first = None
    for text in streamer:
        if text and first is None:
            first = time.perf_counter()
    thread.join()
    end = time.perf_counter()
    tokens = output[0].shape[1] - ids.shape[1]
    return StreamTiming((first or end) - arrived, end - arrived, tokens)


def baseline_many(loaded: LoadedModel, prompts: list[str], max_new: int) -> list[StreamTiming]:
    """All requests arrive together and are served one after another."""
    arrived = time.perf_counter()
    return [baseline_one(loaded, p, max_new, arrived) for p in prompts]


# the engine


async def engine_many(engine: Engine, requests: list[GenerationRequest]) -> list[StreamTiming]:
    """All requests submitted together; each is timed from its own consumer."""
    arrived = time.perf_counter()

    async def consume(request: GenerationRequest) -> StreamTiming:
        generation = await engine.submit(request)
        marks = []
        async for delta in generation:
            marks.append((time.perf_counter() - arrived, delta.tokens))
        completion = await generation.result()
        end = time.perf_counter() - arrived
        first = marks[0][0] if marks else end
        return StreamTiming(first, end, len(completion.alternatives[0].tokens), marks)

    return list(await asyncio.gather(*(consume(r) for r in requests)))


async def engine_cancel_latency(engine: Engine, prose: Prose, run: int) -> tuple[int, float]:
    """Steps that ran for a request after its cancel, and ms until its completion arrived."""
    victim = await engine.submit(GenerationRequest(prose.prompt(200), f"cancel-{run}", max_new_tokens=200))
    bystander = await engine.submit(
        GenerationRequest(prose.prompt(200), f"bystander-{run}", max_new_tokens=40)
    )
    seen = 0
    async for _ in victim:
        seen += 1
        if seen == 5:
            break
    started = time.perf_counter()
    victim.cancel()
    await victim.result()
    elapsed_ms = (time.perf_counter() - started) * 1000
    await bystander.result()
    await engine.wait_idle()
    job = next(j for j in engine.recent if j.id == victim.id)
    assert job.ended_at_step is not None
    steps_after = job.in_flight_at_end + max(0, job.last_step - job.ended_at_step)
    return steps_after, elapsed_ms


# transformers' ContinuousBatchingManager, measured once to inform the design


def manager_many(loaded: LoadedModel, prompts: list[str], max_new: int) -> list[StreamTiming]:
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=max_new, do_sample=False, eos_token_id=loaded.tokenizer.eos_token_id
    )
    manager = loaded.model.init_continuous_batching(generation_config=config)
    manager.start()
    try:
        arrived = time.perf_counter()
        ids = {}
        for i, prompt in enumerate(prompts):
            tokens = loaded.tokenizer.encode(prompt, add_special_tokens=False)
            ids[manager.add_request(tokens, request_id=f"r{i}", max_new_tokens=max_new, streaming=True)] = i
        first: dict[str, float] = {}
        done: dict[str, StreamTiming] = {}
        while len(done) < len(prompts):
            result = manager.get_result(timeout=60)
            assert result is not None, "the manager stopped answering"
            now = time.perf_counter()
            if result.generated_tokens and result.request_id not in first:
                first[result.request_id] = now
            if result.is_finished():
                start = first.get(result.request_id, now)
                done[result.request_id] = StreamTiming(
                    start - arrived, now - arrived, len(result.generated_tokens)
                )
        return [done[r] for r in ids]
    finally:
        manager.stop(block=True)
        loaded.model.destroy_cached_continuous_batching_manager()


def steady_decode_rate(run: list[StreamTiming]) -> float | None:
    """Tokens per second while every stream was decoding: from the last first token to the first end."""
    if any(not t.marks for t in run):
        return None
    start = max(t.ttft for t in run)
    stop = min(t.marks[-1][0] for t in run if t.marks)
    if stop - start < 0.2:
        return None

    def tokens_by(stream: StreamTiming, moment: float) -> int:
        return max((n for at, n in stream.marks or [] if at <= moment), default=0)

    produced = sum(tokens_by(t, stop) - tokens_by(t, start) for t in run)
    return produced / (stop - start)


def summarize(runs: list[list[StreamTiming]]) -> dict[str, float]:
    """Medians over runs of: aggregate tok/s, p50/p95 TTFT, and single-stream decode tok/s."""
    aggregate = [sum(t.tokens for t in run) / max(t.end for t in run) for run in runs]
    p50 = [percentile([t.ttft for t in run], 50) for run in runs]
    p95 = [percentile([t.ttft for t in run], 95) for run in runs]
    decode = [
        (run[0].tokens - 1) / (run[0].end - run[0].ttft)
        for run in runs
        if len(run) == 1 and run[0].tokens > 1
    ]
    out = {
        "aggregate_tok_s": statistics.median(aggregate),
        "ttft_p50_s": statistics.median(p50),
        "ttft_p95_s": statistics.median(p95),
        "runs": len(runs),
    }
    if decode:
        out["decode_tok_s"] = statistics.median(decode)
    steady = [rate for run in runs if len(run) > 1 and (rate := steady_decode_rate(run)) is not None]
    if steady:
        out["steady_decode_tok_s"] = statistics.median(steady)
    return out


async def run_engine_scenarios(loaded: LoadedModel, args: argparse.Namespace, prose: Prose) -> dict[str, Any]:
    limits = EngineLimits(max_rows=32, max_queue=64, prefill_chunk=args.prefill_chunk)
    results: dict[str, Any] = {}
    async with Engine(ModelRunner(loaded.model), loaded.tokenizer, limits) as engine:
        await engine_many(engine, [GenerationRequest(prose.prompt(32), "warmup", max_new_tokens=8)])
        for streams in (1, 8, 16):
            runs = []
            for run in range(args.runs):
                prompts = [prose.prompt(args.prompt_tokens) for _ in range(streams)]
                requests = [
                    GenerationRequest(
                        p, f"s{streams}-{run}-{i}", max_new_tokens=args.new_tokens, keep_session=False
                    )
                    for i, p in enumerate(prompts)
                ]
                runs.append(await engine_many(engine, requests))
            results[f"streams_{streams}"] = summarize(runs)

        cold, warm, reused = [], [], []
        for run in range(args.runs):
            context = prose.prompt(1000)
            session = f"reuse-{run}"
            first = await engine_many(engine, [GenerationRequest(context, session, max_new_tokens=8)])
            typed = context + prose.text[prose.cursor : prose.cursor + 5]
            second = await engine_many(engine, [GenerationRequest(typed, session, max_new_tokens=8)])
            cold.append(first[0].ttft)
            warm.append(second[0].ttft)
            reused.append(engine.recent[-1].reused)
        results["prefix_reuse"] = {
            "context_tokens": 1000,
            "cold_ttft_s": statistics.median(cold),
            "warm_ttft_s": statistics.median(warm),
            "reused_tokens": statistics.median(reused),
            "runs": args.runs,
        }

        latencies = [await engine_cancel_latency(engine, prose, run) for run in range(args.runs)]
        results["cancel"] = {
            "max_steps_after_cancel": max(s for s, _ in latencies),
            "median_ms_to_completion": statistics.median(ms for _, ms in latencies),
            "runs": args.runs,
        }
    return results


def run_baseline_scenarios(loaded: LoadedModel, args: argparse.Namespace, prose: Prose) -> dict[str, Any]:
    results: dict[str, Any] = {}
    baseline_many(loaded, [prose.prompt(32)], 8)  # warm-up
    for streams in (1, 8, 16):
        runs = [
            baseline_many(loaded, [prose.prompt(args.prompt_tokens) for _ in range(streams)], args.new_tokens)
            for _ in range(args.runs)
        ]
        results[f"streams_{streams}"] = summarize(runs)
    cold = [baseline_many(loaded, [prose.prompt(1000)], 8)[0].ttft for _ in range(args.runs)]
    results["prefix_reuse"] = {"cold_ttft_s": statistics.median(cold), "warm_ttft_s": statistics.median(cold)}
    return results


def table(engine: dict[str, Any], baseline: dict[str, Any], manager: dict[str, Any] | None) -> str:
    e1, b1 = engine["streams_1"], baseline["streams_1"]
    rows = [
        "| scenario | metric | engine | baseline | engine vs baseline |",
        "|---|---|---:|---:|---:|",
        f"| 1 stream | TTFT | {e1['ttft_p50_s'] * 1000:.0f} ms | {b1['ttft_p50_s'] * 1000:.0f} ms "
        f"| {b1['ttft_p50_s'] / e1['ttft_p50_s']:.1f}× faster |",
        f"| 1 stream | decode tok/s | {e1['decode_tok_s']:.1f} | {b1['decode_tok_s']:.1f} "
        f"| {e1['decode_tok_s'] / b1['decode_tok_s']:.2f}× |",
    ]
    for streams in (8, 16):
        e, b = engine[f"streams_{streams}"], baseline[f"streams_{streams}"]
        rows += [
            f"| {streams} streams | aggregate tok/s, end to end | {e['aggregate_tok_s']:.1f} "
            f"| {b['aggregate_tok_s']:.1f} | {e['aggregate_tok_s'] / b['aggregate_tok_s']:.1f}× |",
            f"| {streams} streams | aggregate tok/s, all decoding | {e.get('steady_decode_tok_s', 0):.1f} "
            f"| {b1['decode_tok_s']:.1f} "
            f"| {e.get('steady_decode_tok_s', 0) / b1['decode_tok_s']:.1f}× |",
            f"| {streams} streams | TTFT p50 | {e['ttft_p50_s']:.2f} s | {b['ttft_p50_s']:.2f} s "
            f"| {b['ttft_p50_s'] / e['ttft_p50_s']:.1f}× faster |",
            f"| {streams} streams | TTFT p95 | {e['ttft_p95_s']:.2f} s | {b['ttft_p95_s']:.2f} s "
            f"| {b['ttft_p95_s'] / e['ttft_p95_s']:.1f}× faster |",
        ]
    reuse, base_reuse = engine["prefix_reuse"], baseline["prefix_reuse"]
    rows += [
        f"| 1,000-token context | TTFT cold | {reuse['cold_ttft_s'] * 1000:.0f} ms "
        f"| {base_reuse['cold_ttft_s'] * 1000:.0f} ms | |",
        f"| 1,000-token context | TTFT after typing 5 characters | {reuse['warm_ttft_s'] * 1000:.0f} ms "
        f"| {base_reuse['warm_ttft_s'] * 1000:.0f} ms "
        f"| warm/cold = {reuse['warm_ttft_s'] / reuse['cold_ttft_s']:.2f} |",
        f"| cancel | steps run after cancel (max) | {engine['cancel']['max_steps_after_cancel']} | | |",
        f"| cancel | cancel to final status | {engine['cancel']['median_ms_to_completion']:.1f} ms | | |",
    ]
    if manager is not None:
        rows += [
            "| 8 streams, transformers ContinuousBatchingManager | aggregate tok/s "
            f"| {manager['aggregate_tok_s']:.1f} "
            f"| | TTFT p95 {manager['ttft_p95_s']:.2f} s |",
        ]
    targets = [
        (
            "16-stream aggregate (all decoding) ≥ 6× single-stream decode",
            engine["streams_16"].get("steady_decode_tok_s", 0) / e1["decode_tok_s"],
            6.0,
        ),
        (
            "16-stream aggregate (end to end, prefill included) ≥ 6× single stream end to end",
            engine["streams_16"]["aggregate_tok_s"] / e1["aggregate_tok_s"],
            6.0,
        ),
        (
            "8-stream p95 TTFT ≥ 5× better than baseline",
            baseline["streams_8"]["ttft_p95_s"] / engine["streams_8"]["ttft_p95_s"],
            5.0,
        ),
        ("prefix-reuse TTFT ≤ 1/5 of cold", reuse["cold_ttft_s"] / reuse["warm_ttft_s"], 5.0),
    ]
    rows += ["", "| target | measured | met |", "|---|---:|---|"]
    rows += [
        f"| {name} | {value:.1f}× | {'yes' if value >= goal else 'NO'} |" for name, value, goal in targets
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--prefill-chunk", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--model", default=None)
    parser.add_argument(
        "--no-manager", action="store_true", help="skip the ContinuousBatchingManager scenario"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--corpus", type=Path, default=CORPUS if CORPUS.exists() else FALLBACK)
    args = parser.parse_args()

    loaded = load_model(args.model, args.device, args.dtype, ROOT / "data" / "models")
    prose = Prose(loaded, args.corpus)
    started = time.perf_counter()
    print(
        f"model {loaded.name} on {loaded.device} ({loaded.dtype}); {args.runs} runs per scenario", flush=True
    )
    baseline = run_baseline_scenarios(loaded, args, prose)
    print("baseline done", flush=True)
    engine = asyncio.run(run_engine_scenarios(loaded, args, prose))
    print("engine done", flush=True)
    manager = None
    if not args.no_manager:
        manager = summarize(
            [manager_many(loaded, [prose.prompt(args.prompt_tokens) for _ in range(8)], args.new_tokens)]
        )
    report = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpus": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": str(loaded.device),
            "dtype": str(loaded.dtype),
        },
        "settings": {k: str(v) for k, v in vars(args).items() if k not in ("output", "corpus")},
        "corpus": args.corpus.name,
        "engine": engine,
        "baseline": baseline,
        "continuous_batching_manager_8_streams": manager,
        "seconds": time.perf_counter() - started,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(table(engine, baseline, manager))
    print(f"\nwrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")


if __name__ == "__main__":
    main()
