"""Owners' shares, the one per-owner admission policy of both engines: caps on requests and rows in
flight, held from claim to release."""

from __future__ import annotations

import pytest

from streaming.admission import OwnerShares, Refusal
from streaming.params import Status


def test_an_owner_past_its_requests_is_limited_until_one_is_released() -> None:
    shares = OwnerShares(requests=2, rows=0)
    assert shares.claim("a", "ann", 1) is None
    assert shares.claim("b", "ann", 4) is None
    assert shares.claim("c", "ann", 1) == Refusal(Status.LIMITED, "its owner has 2 requests in progress")
    assert shares.claim("d", "bob", 1) is None, "another owner has a share of its own"
    shares.release("a")
    assert shares.claim("c", "ann", 1) is None
    assert shares.held("ann") == (2, 5)


def test_an_owner_past_its_rows_is_limited_and_a_narrower_request_still_fits() -> None:
    shares = OwnerShares(requests=0, rows=4)
    assert shares.claim("a", "ann", 3) is None
    assert shares.claim("b", "ann", 2) == Refusal(Status.LIMITED, "its owner has 3 of its 4 rows in use")
    assert shares.claim("c", "ann", 1) is None
    assert shares.held("ann") == (2, 4)


def test_requests_without_an_owner_are_counted_but_never_limited() -> None:
    shares = OwnerShares(requests=1, rows=1)
    for index in range(3):
        assert shares.claim(f"anonymous-{index}", "", 4) is None
    assert shares.held("") == (3, 12)


def test_releasing_a_refused_or_unknown_request_frees_nothing() -> None:
    shares = OwnerShares(requests=1, rows=0)
    assert shares.claim("a", "ann", 1) is None
    assert shares.claim("b", "ann", 1) is not None
    shares.release("b")
    shares.release("never-claimed")
    assert shares.held("ann") == (1, 1)
    shares.release("a")
    shares.release("a")
    assert shares.held("ann") == (0, 0)


def test_a_request_claims_its_share_once() -> None:
    shares = OwnerShares(requests=0, rows=0)
    assert shares.claim("a", "ann", 1) is None
    with pytest.raises(AssertionError, match="claimed its share twice"):
        shares.claim("a", "ann", 1)
