"""`python -m bench.quality`: the command line (its help is the package docstring), one run online
or offline over the chosen books and variants, and its results written as JSON and tables."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

from bench import quality
from bench.common import ROOT
from bench.quality.books import books
from bench.quality.inprocess import offline
from bench.quality.online import online
from bench.quality.report import plural, table
from bench.quality.servers import peer_server
from bench.quality.variant import KNOBS, PRESETS, Variant, server_env, variants
from bench.writers import finite
from streaming.params import Span

RESULTS = ROOT / "bench" / "results" / "quality.json"
OFFLINE_RESULTS = ROOT / "bench" / "results" / "quality-offline.json"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quality",  # not `__main__.py`, argparse's guess from sys.argv
        description=quality.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--offline", action="store_true", help="no server: the model in-process")
    parser.add_argument("--positions", type=int, default=60, help="offline: pauses per book")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--runs", type=int, default=3, help="online: runs per variant, book and writers")
    parser.add_argument("--pauses", type=int, default=10, help="online: pauses per writer per run")
    parser.add_argument("--char-s", type=float, default=0.06, help="mean seconds between keystrokes")
    parser.add_argument("--pause-min-s", type=float, default=1.0)
    parser.add_argument("--pause-max-s", type=float, default=2.5)
    parser.add_argument("--opening-chars", type=int, default=2000)
    parser.add_argument("--policy", nargs="+", default=["default"], choices=sorted(PRESETS))
    for dest, _, kind in KNOBS:
        flag = "--" + dest.replace("_", "-")
        parser.add_argument(flag, dest=dest, type=kind, nargs="+", default=[], help="values to sweep")
    parser.add_argument("--model", default=None, help="a model key or folder (default: the bundled one)")
    parser.add_argument("--books", nargs="+", default=None, help="only these books of the corpus (by name)")
    parser.add_argument("--peer", action="store_true", help="also llama-server (`make bench-peer` builds it)")
    parser.add_argument("--peer-gguf", type=Path, default=None, help="its GGUF (default: the bundled one)")
    parser.add_argument("--seed", type=int, default=0, help="offline: where in each phrase positions fall")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    library = books()
    if args.books:
        library = {name: library[name] for name in args.books}
    chosen = variants(args)
    if args.peer and args.model and args.peer_gguf is None:
        parser.error("--peer with --model needs --peer-gguf: llama-server must serve the same model")
    if not args.offline:
        for variant in chosen:
            server_env(variant)  # refuses, before anything starts, what a server cannot be told
    settings = {k: str(v) for k, v in vars(args).items() if k != "output"}
    report: dict[str, Any] = {"settings": settings, "variants": {v.label: _json_knobs(v) for v in chosen}}
    if args.offline:
        output = args.output or OFFLINE_RESULTS
        with contextlib.ExitStack() as stack:
            peer_base = None
            if args.peer:
                data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                peer_base = stack.enter_context(peer_server(data_dir, args.peer_gguf))
            report["books"] = asyncio.run(
                offline(library, chosen, args.positions, args.model, peer_base, args.seed)
            )
        tables = [table(f"### {name} (offline)", rows, False) for name, rows in report["books"].items()]
    else:
        output = args.output or RESULTS
        report |= online(args, library, chosen)
        tables = [
            table(f"### {name}, {plural(n)}", {k: v["median"] for k, v in rows.items()}, True)
            for n in args.writers
            for name, rows in report[f"writers_{n}"].items()
        ]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(finite(report), indent=2) + "\n")
    print("\n".join(tables))
    where = f"{args.positions} positions per book" if args.offline else f"medians of {args.runs} runs"
    print(f"\n({where}; figures in bench/quality/__init__.py's docstring; raw: {output})")


def _json_knobs(variant: Variant) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Span) else v for k, v in variant.knobs().items()}


if __name__ == "__main__":
    main()
