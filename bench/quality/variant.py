"""The variants a run compares: named presets, crossed with the command line's knobs, and the
settings that make a server (Cowrite's or, in part, llama-server) suggest under each."""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass, fields, replace
from typing import Any

from server.suggest.policy import Policy
from server.suggest.protocol import SuggestSettings
from streaming.params import Span

SETTINGS = SuggestSettings()


@dataclass(frozen=True)
class Variant:
    """One way to make suggestions: the engine's policy, and the frame's length and temperature."""

    policy: Policy = Policy()
    max_tokens: int = SETTINGS.max_tokens
    temperature: float = SETTINGS.temperature

    def knobs(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature} | {
            f.name: getattr(self.policy, f.name) for f in fields(self.policy)
        }

    @property
    def label(self) -> str:
        """The knobs that differ from the default, shortly: "max_tokens=8 span=free"."""
        default = Variant().knobs()
        changed = [f"{k}={_show_knob(v)}" for k, v in self.knobs().items() if v != default[k]]
        return " ".join(changed) or "default"

    @property
    def peer(self) -> Variant:
        """The variant as llama-server can play it: the knobs it lacks at their defaults."""
        policy = self.policy
        kept = Policy(
            confidence=policy.confidence,
            run_confidence=policy.run_confidence,
            span=policy.span,
            repetition_penalty=policy.repetition_penalty,
        )
        return Variant(kept, self.max_tokens, self.temperature)


def _show_knob(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def peer_label(variant: Variant) -> str:
    return f"llama-server {variant.peer.label}"


PRESETS = {
    "default": Variant(),
    # what the socket did before it had a policy: no confidence cut, free length, no repetition
    # guard, partial words
    "plain": Variant(Policy(run_confidence=0.0, span=Span.FREE, no_repeat_ngram=0, whole_words=False)),
    # the same as a server can be set today (it always releases whole words): online's baseline
    "loose": Variant(Policy(run_confidence=0.0, span=Span.FREE, no_repeat_ngram=0)),
}
# command-line knobs: (flag's dest, the Policy or Variant field it sets, how to read it)
KNOBS = [
    ("max_tokens", "max_tokens", int),
    ("temperature", "temperature", float),
    ("confidence", "confidence", float),
    ("run_confidence", "run_confidence", float),
    ("span", "span", Span),
    ("no_repeat", "no_repeat_ngram", int),
    ("repetition_penalty", "repetition_penalty", float),
]
# what a server takes from its environment; the rest of a Policy it cannot be told
SERVER_ENV = {
    "confidence": "COWRITE_SUGGEST_CONFIDENCE",
    "run_confidence": "COWRITE_SUGGEST_RUN_CONFIDENCE",
    "span": "COWRITE_SUGGEST_SPAN",
    "no_repeat_ngram": "COWRITE_SUGGEST_NO_REPEAT",
    "repetition_penalty": "COWRITE_SUGGEST_REPETITION_PENALTY",
}


def variants(args: argparse.Namespace) -> list[Variant]:
    """Each named preset, crossed with every value of every knob given on the command line."""
    given = [(field_name, values) for dest, field_name, _ in KNOBS if (values := getattr(args, dest))]
    out: list[Variant] = []
    for name in args.policy:
        for combo in itertools.product(*(values for _, values in given)):
            variant = PRESETS[name]
            for (field_name, _), value in zip(given, combo):
                if field_name in ("max_tokens", "temperature"):
                    variant = replace(variant, **{field_name: value})
                else:
                    variant = replace(variant, policy=replace(variant.policy, **{field_name: value}))
            if variant not in out:
                out.append(variant)
    return out


def server_env(variant: Variant) -> dict[str, str]:
    """The settings that make a server suggest under `variant`'s policy."""
    policy = variant.policy
    if policy.whole_words != Policy().whole_words:
        raise SystemExit(f"bench.quality: a server cannot be set to {variant.label}; try --offline")
    return {env: _show_knob(getattr(policy, name)) for name, env in SERVER_ENV.items()}
