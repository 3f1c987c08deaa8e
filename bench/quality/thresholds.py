"""The confidence curve in one pass: `python -m bench.quality.thresholds [--model KEY]`.

Greedy decoding takes the same tokens whatever the threshold, up to where a threshold cuts, so one
greedy continuation per position (the default policy with its confidence cuts off, the model's
probability of each token recorded) gives every threshold's suggestion: it is cut before the first
token below a per-token threshold (`tok=`) or before the one that takes the running product below
a threshold (`run=`), its cut-off word left out and its text filtered as the socket does. Positions
and figures are offline mode's (bench/quality/inprocess.py, figures.py), at temperature 0.
Results: bench/results/quality-thresholds.json (or `--output`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import ROOT
from bench.quality.books import books
from bench.quality.figures import Judged, judge, offline_figures
from bench.quality.inprocess import IN_FLIGHT, OFFLINE_BUDGET_S, Position, positions
from server.suggest.policy import Policy, final_text, to_request
from server.suggest.protocol import Suggest, SuggestSettings
from streaming.engine import Engine, EngineLimits
from streaming.loader import load_model
from streaming.params import Alternative
from streaming.runner import ModelRunner
from streaming.text import OPEN_WORD, continues_word
from streaming.vocabulary import Vocabulary

RESULTS = ROOT / "bench" / "results" / "quality-thresholds.json"
TOKEN_THRESHOLDS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6)
RUN_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6)
COLUMNS = ["savings", "word precision", "pauses with a take", "shown", "repetition", "words shown"]


def cut_at(probs: list[float], kind: str, threshold: float) -> int:
    """How many tokens a threshold keeps."""
    run = 1.0
    for index, prob in enumerate(probs):
        run *= prob
        if (prob if kind == "tok" else run) < threshold:
            return index
    return len(probs)


def cut_text(alternative: Alternative, kept: int, healed: str, stop: tuple[str, ...], tokenizer: Any) -> str:
    """The suggestion's text with its first `kept` tokens, as the engine would have released it."""
    if kept == len(alternative.tokens):
        return alternative.text
    ids = alternative.tokens
    text = tokenizer.decode(ids[:kept], skip_special_tokens=True)[len(healed) :]
    piece = tokenizer.decode(ids[: kept + 1], skip_special_tokens=True)[len(healed) + len(text) :]
    for string in stop:
        if string in text:
            text = text[: text.index(string)]
    open_word = OPEN_WORD.search(text)
    if continues_word(piece) and open_word:  # the cut-off token would have gone on the last word
        text = text[: open_word.start()]
    return text


async def continuations(
    engine: Engine, tokenizer: Any, vocabulary: Vocabulary, spots: list[Position], policy: Policy
) -> list[tuple[Position, Alternative | None, str, tuple[str, ...]]]:
    """Each position's greedy continuation under `policy`, with its healed text and stop strings."""
    gate = asyncio.Semaphore(IN_FLIGHT)
    settings = SuggestSettings(max_tokens=24, temperature=0)

    async def one(number: int, spot: Position) -> tuple[Position, Alternative | None, str, tuple[str, ...]]:
        message = Suggest(v=1, type="suggest", id=f"t{number}", before=spot.before, settings=settings)
        request = to_request(message, f"threshold-{number}", "", "", policy)
        if request is None:
            return spot, None, "", ()
        # the engine heals the prompt's last token when it can: its text leads the first token's
        ids = tokenizer.encode(request.prompt, add_special_tokens=False)
        healed = vocabulary.text(ids[-1]) if len(ids) >= 2 and vocabulary.healable(ids[-1]) else ""
        async with gate:
            generation = await engine.submit(replace(request, time_budget_s=OFFLINE_BUDGET_S))
            completion = await generation.result()
            engine.close_session(request.session)
        return spot, completion.alternatives[0], healed, request.stop

    return await asyncio.gather(*(one(i, spot) for i, spot in enumerate(spots)))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quality.thresholds", description=__doc__)
    parser.add_argument("--model", default=None, help="a model key or folder (default: the default one)")
    parser.add_argument("--positions", type=int, default=150, help="pauses per book")
    parser.add_argument("--no-repeat", type=int, default=Policy().no_repeat_ngram)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    policy = Policy(confidence=0.0, run_confidence=0.0, no_repeat_ngram=args.no_repeat)
    loaded = load_model(args.model, "auto", "auto", ROOT / "data" / "models")
    vocabulary = Vocabulary(loaded.tokenizer, loaded.model.config.vocab_size)
    grid = [("tok", t) for t in TOKEN_THRESHOLDS] + [("run", t) for t in RUN_THRESHOLDS]
    report: dict[str, dict[str, dict[str, float | None]]] = {}

    async def run() -> None:
        limits = EngineLimits(max_rows=IN_FLIGHT, crowded_rows=0)
        async with Engine(ModelRunner(loaded.model), loaded.tokenizer, limits) as engine:
            for name, text in books().items():
                started = time.perf_counter()
                spots = positions(text, args.positions, random.Random(f"0-{name}"))
                found = await continuations(engine, loaded.tokenizer, vocabulary, spots, policy)
                report[name] = {}
                for kind, threshold in grid:
                    judged: list[Judged] = []
                    for spot, alternative, healed, stop in found:
                        shown = ""
                        if alternative is not None:
                            kept = cut_at(alternative.probs, kind, threshold)
                            cut = cut_text(alternative, kept, healed, stop, loaded.tokenizer)
                            shown = final_text(cut, spot.before)
                        judged.append(judge(shown, spot.before, spot.upcoming, True, typed=spot.typed))
                    report[name][f"{kind}={threshold:g}"] = offline_figures(judged)
                print(f"\n{name} ({time.perf_counter() - started:.0f} s, {len(spots)} positions)")
                print(f"| cut | {' | '.join(COLUMNS)} |\n|---|{'---:|' * len(COLUMNS)}")
                for label, f in report[name].items():
                    print(
                        f"| {label} | {100 * (f['keystroke_savings'] or 0):.1f}% | "
                        f"{100 * (f['word_precision'] or 0):.1f}% | {100 * (f['take_share'] or 0):.1f}% | "
                        f"{100 * (f['shown_share'] or 0):.1f}% | {100 * (f['repetition_rate'] or 0):.1f}% | "
                        f"{f['words_shown']:.0f} |",
                        flush=True,
                    )

    asyncio.run(run())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    settings = {"model": args.model or "default", "positions": args.positions, "no_repeat": args.no_repeat}
    args.output.write_text(json.dumps({"settings": settings, "books": report}, indent=2) + "\n")


if __name__ == "__main__":
    main()
