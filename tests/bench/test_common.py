"""bench/common.py: the percentile every benchmark reports, and the paths they read from."""

from __future__ import annotations

import math

import pytest

from bench.common import FALLBACK, ROOT, percentile


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0, 1.0), (10, 1.0), (50, 5.0), (51, 6.0), (95, 10.0), (100, 10.0)],
)
def test_percentile_is_nearest_rank(q: float, expected: float) -> None:
    # shuffled, so a result that ignored sorting would show
    values = [7.0, 2.0, 10.0, 1.0, 5.0, 9.0, 3.0, 8.0, 4.0, 6.0]
    assert percentile(values, q) == expected


def test_percentile_returns_a_value_never_an_interpolation() -> None:
    assert percentile([1.0, 2.0], 50) == 1.0
    assert percentile([1.0, 2.0], 75) == 2.0
    assert percentile([3.5], 95) == 3.5


def test_a_percentile_landing_on_a_miss_is_a_miss() -> None:
    # the writers and cluster benchmarks record a miss as infinity and report "missed"
    values = [0.1] * 18 + [math.inf] * 2
    assert percentile(values, 90) == 0.1
    assert percentile(values, 95) == math.inf


def test_percentile_leaves_its_input_alone() -> None:
    values = [3.0, 1.0, 2.0]
    percentile(values, 50)
    assert values == [3.0, 1.0, 2.0]


def test_paths_point_into_the_checkout() -> None:
    assert (ROOT / "bench" / "common.py").is_file()
    # the benchmarks fall back on this prose where the corpus is absent, so it must be there
    assert FALLBACK.is_file()
