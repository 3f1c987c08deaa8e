"""Request validation: every out-of-range field is rejected with an error naming it."""

from __future__ import annotations

from typing import Any

import pytest

from streaming.errors import InvalidRequest
from streaming.params import GenerationRequest


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"session": ""}, "session"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 10_000}, "max_new_tokens"),
        ({"max_new_tokens": 2.5}, "max_new_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.01}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"seed": -5}, "seed"),
        ({"seed": True}, "seed"),
        ({"n": 0}, "n"),
        ({"n": 5}, "n"),
        ({"stop": ("",)}, "stop"),
        ({"stop": ("x" * 65,)}, "stop"),
        ({"stop": ("a", "b", "c", "d", "e")}, "stop"),
        ({"time_budget_s": 0}, "time_budget_s"),
        ({"time_budget_s": float("inf")}, "time_budget_s"),
    ],
)
def test_out_of_range_fields_are_named(changes: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"prompt": "Once", "session": "s", **changes}
    with pytest.raises(InvalidRequest) as caught:
        GenerationRequest(**arguments)
    assert caught.value.field == field
    assert str(caught.value).startswith(field)


def test_valid_request_keeps_its_values() -> None:
    request = GenerationRequest(
        "Once", "s", max_new_tokens=8, temperature=0.7, top_p=0.9, top_k=40, seed=3, n=4, stop=("\n",)
    )
    assert (request.n, request.seed, request.stop) == (4, 3, ("\n",))
