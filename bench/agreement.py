"""How often bf16 greedy decoding agrees with fp32, and how fast each reads a prompt.

`python -m bench.agreement` takes `--prompts` stretches of the corpus (200 by default, 100 to 400
tokens each, spread over the novel), decodes `--tokens` greedy tokens (16) from each with the
engine's runner in fp32 and in bf16, and reports:
- first-token agreement: the share of prompts whose first greedy token is the same;
- token agreement: the share of all positions where both chose the same token, counting every
  position after the first disagreement as a disagreement (the continuations have parted);
- identical continuations: the share of prompts whose whole continuations are the same.

It then times reading 500-token contexts (prefill, prompt tokens/s) in each dtype, fresh rows,
`--prefill-runs` times each, alternately. Results go to bench/results/agreement.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import CORPUS, FALLBACK, ROOT
from streaming.loader import LoadedModel, cpu_runs_bf16, load_model
from streaming.runner import ModelRunner, RowInput

RESULTS = ROOT / "bench" / "results" / "agreement.json"


def corpus_prompts(loaded: LoadedModel, count: int) -> list[list[int]]:
    """`count` token stretches of 100 to 400 tokens, evenly spread over the corpus."""
    text = (CORPUS if CORPUS.exists() else FALLBACK).read_text(encoding="utf-8")
    ids = loaded.tokenizer.encode(text, add_special_tokens=False)
    stride = max(1, (len(ids) - 400) // count)
    return [ids[i * stride : i * stride + 100 + (i * 37) % 300] for i in range(count)]


@torch.inference_mode()
def greedy(runner: ModelRunner, prompt: list[int], tokens: int) -> list[int]:
    row = runner.new_row()
    logits = runner.forward([RowInput(row, prompt)])
    out: list[int] = []
    for _ in range(tokens):
        out.append(int(logits[0].argmax()))
        logits = runner.forward([RowInput(row, [out[-1]])])
    return out


def agreement(reference: list[list[int]], other: list[list[int]]) -> dict[str, float]:
    positions = sum(len(r) for r in reference)
    matching = 0
    for a, b in zip(reference, other):
        for x, y in zip(a, b):
            if x != y:
                break
            matching += 1
    return {
        "first_token_agreement": sum(a[:1] == b[:1] for a, b in zip(reference, other)) / len(reference),
        "token_agreement": matching / positions,
        "identical_continuations": sum(a == b for a, b in zip(reference, other)) / len(reference),
    }


@torch.inference_mode()
def prefill_tokens_per_s(runners: dict[str, ModelRunner], prompt: list[int], runs: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(runs):
        for name, runner in runners.items():
            row = runner.new_row()
            started = time.perf_counter()
            runner.forward([RowInput(row, prompt)])
            times[name].append(time.perf_counter() - started)
    return {name: round(len(prompt) / statistics.median(t), 1) for name, t in times.items()}


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--prefill-runs", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=ROOT / "data" / "models")
    args = parser.parse_args()
    torch.manual_seed(0)

    fp32 = load_model(None, "cpu", "float32", args.cache)
    bf16 = load_model(None, "cpu", "bfloat16", args.cache)
    runners = {"float32": ModelRunner(fp32.model), "bfloat16": ModelRunner(bf16.model)}
    prompts = corpus_prompts(fp32, args.prompts)
    started = time.perf_counter()
    outputs = {name: [greedy(r, p, args.tokens) for p in prompts] for name, r in runners.items()}
    result: dict[str, Any] = {
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "native_bf16": cpu_runs_bf16(),
        "prompts": len(prompts),
        "tokens": args.tokens,
        "bf16_vs_fp32": agreement(outputs["float32"], outputs["bfloat16"]),
        "decode_s": round(time.perf_counter() - started, 1),
    }
    context = (prompts[0] + [t for p in prompts[1:] for t in p])[:500]
    result["prefill_500_tokens_per_s"] = prefill_tokens_per_s(runners, context, args.prefill_runs)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
