"""What every benchmark shares: where the repository, the corpus and its fallback are, and one
percentile, so that figures from different benchmarks are computed and compared alike.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the novel the benchmarks type and prompt from lives beside the checkout, not in it; a fresh clone
# without it still runs every benchmark on the short prose the tests use
CORPUS = ROOT.parent / "shared" / "corpus" / "pride-and-prejudice.txt"
FALLBACK = ROOT / "tests" / "data" / "prose.txt"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty list: always one of `values`, never an interpolation.

    A miss recorded as `math.inf` sorts last, so a percentile that lands on misses is `math.inf`.
    """
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]
