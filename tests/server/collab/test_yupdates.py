"""Reading Yjs updates without applying them, and applying them in pieces: the pieces of any update
pycrdt makes do exactly what the whole does, and hostile updates are refused before pycrdt sees them."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, TransactionEvent, get_state

from server.collab.yupdates import (
    PartlyApplied,
    UpdateTooCostly,
    apply_in_pieces,
    decode_state,
    encode_deletions,
    read_update,
    write_var_uint,
)

edits = st.lists(
    st.tuples(
        st.integers(0, 2),  # which collaborator
        st.sampled_from(["insert", "delete", "span", "meta", "sync"]),
        st.floats(0, 1),
        st.text(alphabet="ab é😀\n", min_size=1, max_size=6),
    ),
    min_size=1,
    max_size=60,
)


def new_doc() -> Doc[Any]:
    doc: Doc[Any] = Doc()
    doc.get("content", type=Text)
    doc.get("ai_spans", type=Array)
    doc.get("meta", type=Map)
    return doc


def play(script: list[tuple[int, str, float, str]]) -> tuple[list[Doc[Any]], list[bytes]]:
    """Three collaborators edit and sometimes sync; returns their documents and every update made."""
    docs = [new_doc() for _ in range(3)]
    made: list[bytes] = []

    def keep(event: TransactionEvent) -> None:
        made.append(event.update)

    for doc in docs:
        doc.observe(keep)
    for who, action, where, text in script:
        doc = docs[who]
        content = doc.get("content", type=Text)
        current = str(content)
        at = int(where * len(current))
        if action == "insert" or (action == "delete" and not current):
            content.insert(len(current[:at].encode()), text)
        elif action == "delete":
            end = min(len(current), at + len(text))
            del content[len(current[:at].encode()) : len(current[:end].encode())]
        elif action == "span":
            spans = doc.get("ai_spans", type=Array)
            spans.append({"start": text, "end": at, "user": "ann", "score": where, "tags": [True, None]})
        elif action == "meta":
            doc.get("meta", type=Map)[text[:1]] = {"at": at, "by": text}
        else:
            other = docs[(who + 1) % 3]
            other.apply_update(doc.get_update(other.get_state()))
    return docs, made


def snapshot(doc: Doc[Any]) -> tuple[str, Any, Any, dict[int, int]]:
    return (
        str(doc.get("content", type=Text)),
        doc.get("ai_spans", type=Array).to_py(),
        doc.get("meta", type=Map).to_py(),
        decode_state(doc.get_state()),
    )


@settings(max_examples=40, deadline=None)
@given(edits, st.sampled_from([1, 2, 5, 16]))
def test_pieces_do_what_the_whole_update_does(script: list[tuple[int, str, float, str]], size: int) -> None:
    docs, made = play(script)
    merged = new_doc()
    for doc in docs:
        merged.apply_update(doc.get_update())
    halfway = new_doc()
    halfway.apply_update(docs[0].get_update())
    full = merged.get_update()
    clocks = {run.client: run.end_clock for run in read_update(full, 10**6).runs}
    assert clocks == decode_state(get_state(full)) == decode_state(merged.get_state())
    for update in [full, merged.get_update(halfway.get_state()), *made[-5:]]:
        shape = read_update(update, 10**6)
        whole, pieced = new_doc(), new_doc()
        whole.apply_update(docs[0].get_update())
        pieced.apply_update(docs[0].get_update())
        whole.apply_update(update)
        for piece in shape.pieces(update, size):
            pieced.apply_update(piece)
        assert snapshot(pieced) == snapshot(whole)


def test_a_bomb_is_refused_from_its_header() -> None:
    bomb = encode_deletions([(7, [(clock, 1) for clock in range(1, 1_000_000, 2)])])
    with pytest.raises(UpdateTooCostly):
        read_update(bomb, 100_000)
    # the declared count decides: a bomb cut short after its header is refused just the same
    with pytest.raises(UpdateTooCostly):
        read_update(bomb[:16], 100_000)


@pytest.mark.parametrize(
    "update",
    [
        b"",
        b"\x00",
        b"\x01\x01",
        b"\x00\x00\x00",  # bytes after the end
        b"\x05\x01\x01\x01",  # more clients than bytes
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x00",  # a number too long
        # a client's deletions twice
        write_var_uint(0) + write_var_uint(2) + (write_var_uint(7) + write_var_uint(1) + b"\x00\x01") * 2,
        # JSON content, which Yjs and yrs read differently
        b'\x01\x01\x07\x00\x02\x01\x08ai_spans\x01\x03"a"\x00',
        # an XML hook, likewise
        b"\x01\x01\x07\x00\x07\x01\x08ai_spans\x05\x04hook\x00",
        # a value nested past the depth limit
        b"\x01\x01\x07\x00\x08\x01\x08ai_spans\x01" + b"\x75\x01" * 100 + b"\x7e\x00",
    ],
)
def test_malformed_updates_are_refused(update: bytes) -> None:
    with pytest.raises(ValueError):
        read_update(update, 100_000)


def test_pycrdt_refusing_a_later_piece_is_reported_as_partly_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    source = new_doc()
    source.get("content", type=Text).insert(0, "ab" * 100)
    target = new_doc()
    target.apply_update(source.get_update())
    update = encode_deletions([(source.client_id, [(clock, 1) for clock in range(1, 200, 2)])])
    shape = read_update(update, 1000)
    monkeypatch.setattr("server.collab.yupdates.PIECE_OPS", (10, 10))
    calls = 0
    real = Doc.apply_update

    def fail_the_second(doc: Doc[Any], piece: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ValueError("refused")
        real(doc, piece)

    monkeypatch.setattr(Doc, "apply_update", fail_the_second)
    with pytest.raises(PartlyApplied):
        apply_in_pieces(target, update, shape, deadline=time.monotonic() + 60)
