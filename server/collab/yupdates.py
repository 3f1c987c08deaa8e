"""What a Yjs update will cost before it is applied, and applying a large one in pieces.

pycrdt holds the GIL while it applies an update, and an update's cost is not its size: a few bytes
of delete set split one long item into many blocks, and every split moves the rest of that
client's blocks. `read_update` walks a v1-encoded update without applying it, counting its structs
and delete ranges and refusing one with more than a room allows; `apply_in_pieces` applies it as
several smaller updates with the same effect, so that no single call into pycrdt runs long.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc, get_state

U32 = 1 << 32
U64 = 1 << 64
ANY_DEPTH = 64  # nesting of JSON-like values in an update; Cowrite's own are two deep
APPLY_BUDGET = 50_000_000  # block moves one piece may cost (~1 ns each): about 50 ms of GIL
PIECE_OPS = (16, 4096)  # the fewest and most structs or delete ranges in one piece

# a struct's info byte (the same in Yjs and yrs)
GC, SKIP = 0, 10
HAS_ORIGIN, HAS_RIGHT_ORIGIN, HAS_PARENT_SUB, UNUSED_BIT = 0x80, 0x40, 0x20, 0x10
# content kinds Cowrite's documents use, and their length in clock units (None: read it)
DELETED, BINARY, STRING, EMBED, FORMAT, TYPE, ANY = 1, 3, 4, 5, 6, 7, 8
# kinds Yjs and pycrdt's yrs decode differently (JSON) or Cowrite never makes (subdocuments) are
# refused, so that what the server stores and relays reads the same in every client
TYPE_REFS = {0, 1, 2, 3, 4, 6}  # array, map, text, xml element (named), xml fragment, xml text
XML_ELEMENT = 3


class UpdateTooCostly(Exception):
    """An update with more structs and deletions than one update may carry, or one that took too
    long to apply. `partly_applied` says whether the room's document already holds part of it."""

    def __init__(self, message: str, partly_applied: bool = False) -> None:
        super().__init__(message)
        self.partly_applied = partly_applied


class PartlyApplied(Exception):
    """pycrdt refused a piece of an update after earlier pieces were applied."""


@dataclass
class StructRun:
    """One client's consecutive structs in an update: where each ends, and its first clock."""

    client: int
    start: int  # offset of the first struct
    clocks: list[int] = field(default_factory=list)  # each struct's clock
    ends: list[int] = field(default_factory=list)  # offset just after each struct
    end_clock: int = 0


@dataclass
class UpdateShape:
    """An update's structs, by client, and its delete set, as read by `read_update`."""

    runs: list[StructRun]
    deletions: list[tuple[int, list[tuple[int, int]]]]  # (client, [(clock, length)])

    @property
    def structs(self) -> int:
        return sum(len(run.clocks) for run in self.runs)

    @property
    def delete_ranges(self) -> int:
        return sum(len(ranges) for _, ranges in self.deletions)

    @property
    def ops(self) -> int:
        return self.structs + self.delete_ranges

    def pieces(self, update: bytes, ops_per_piece: int) -> list[bytes]:
        """Updates that, applied in order, do what `update` does: its structs in order, at most
        `ops_per_piece` a piece, then its deletions (which commute) in pieces as large."""
        if self.ops <= ops_per_piece:
            return [update]
        pieces = []
        current: list[bytes] = []
        count = 0
        for run in self.runs:
            first = 0
            while first < len(run.clocks):
                last = min(len(run.clocks), first + ops_per_piece - count)
                begin = run.start if first == 0 else run.ends[first - 1]
                header = (
                    write_var_uint(last - first)
                    + write_var_uint(run.client)
                    + write_var_uint(run.clocks[first])
                )
                current.append(header + update[begin : run.ends[last - 1]])
                count += last - first
                first = last
                if count == ops_per_piece:
                    pieces.append(write_var_uint(len(current)) + b"".join(current) + write_var_uint(0))
                    current, count = [], 0
        if current:
            pieces.append(write_var_uint(len(current)) + b"".join(current) + write_var_uint(0))
        deletes: list[tuple[int, list[tuple[int, int]]]] = []
        count = 0
        for client, ranges in self.deletions:
            first = 0
            while first < len(ranges):
                last = min(len(ranges), first + ops_per_piece - count)
                deletes.append((client, ranges[first:last]))
                count += last - first
                first = last
                if count == ops_per_piece:
                    pieces.append(encode_deletions(deletes))
                    deletes, count = [], 0
        if deletes:
            pieces.append(encode_deletions(deletes))
        return pieces


def write_var_uint(number: int) -> bytes:
    """`number` as a Yjs variable-length unsigned integer."""
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def encode_deletions(deletions: list[tuple[int, list[tuple[int, int]]]]) -> bytes:
    """An update that carries only a delete set."""
    out = bytearray(write_var_uint(0) + write_var_uint(len(deletions)))
    for client, ranges in deletions:
        out += write_var_uint(client) + write_var_uint(len(ranges))
        for clock, length in ranges:
            out += write_var_uint(clock) + write_var_uint(length)
    return bytes(out)


class _Reader:
    """lib0's binary decoding over one buffer; ValueError on anything out of shape."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ValueError("the update ends early")
        self.pos += 1
        return self.data[self.pos - 1]

    def uint(self, limit: int = U64) -> int:
        data, pos, end = self.data, self.pos, len(self.data)
        value = shift = 0
        while True:
            if pos >= end:
                raise ValueError("the update ends early")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift > 63:
                raise ValueError("a number in the update is too long")
        if value >= limit:
            raise ValueError("a number in the update is out of range")
        self.pos = pos
        return value

    def count(self) -> int:
        """A count of things that follow, each at least a byte long."""
        number = self.uint()
        if number > self.remaining():
            raise ValueError("the update claims more entries than it holds")
        return number

    def skip_int(self) -> None:
        for _ in range(10):
            if self.byte() < 0x80:
                return
        raise ValueError("a number in the update is too long")

    def skip(self, size: int) -> None:
        if size > self.remaining():
            raise ValueError("the update ends early")
        self.pos += size

    def buffer(self) -> bytes:
        size = self.uint()
        self.skip(size)
        return self.data[self.pos - size : self.pos]

    def skip_buffer(self) -> None:
        self.skip(self.uint())

    def skip_any(self, depth: int = 0) -> None:
        if depth > ANY_DEPTH:
            raise ValueError("a value in the update is nested too deeply")
        tag = self.byte()
        if tag in (127, 126, 121, 120):  # undefined, null, false, true
            return
        if tag == 125:  # integer
            self.skip_int()
        elif tag == 124:  # float32
            self.skip(4)
        elif tag in (123, 122):  # float64, bigint
            self.skip(8)
        elif tag in (119, 116):  # string, bytes
            self.skip_buffer()
        elif tag == 118:  # object
            for _ in range(self.count()):
                self.skip_buffer()
                self.skip_any(depth + 1)
        elif tag == 117:  # array
            for _ in range(self.count()):
                self.skip_any(depth + 1)
        else:
            raise ValueError(f"unknown value type {tag} in the update")


def _skip_struct(reader: _Reader) -> int:
    """Read past one struct; its length in clock units."""
    info = reader.byte()
    if info in (GC, SKIP):
        return reader.uint(U32)
    if info & UNUSED_BIT:
        raise ValueError(f"unknown struct type {info}")
    if info & HAS_ORIGIN:
        reader.uint()
        reader.uint(U32)
    if info & HAS_RIGHT_ORIGIN:
        reader.uint()
        reader.uint(U32)
    if not info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN):
        if reader.uint() == 1:  # the parent is a root type, by name
            reader.skip_buffer()
        else:  # the parent is an item, by id
            reader.uint()
            reader.uint(U32)
        if info & HAS_PARENT_SUB:
            reader.skip_buffer()
    kind = info & 0x0F
    if kind == DELETED:
        return reader.uint(U32)
    if kind == STRING:
        text = reader.buffer().decode()  # strict: a client's encoder never makes invalid UTF-8
        return len(text.encode("utf-16-le")) // 2  # Yjs counts UTF-16 code units
    if kind == ANY:
        values = reader.count()
        for _ in range(values):
            reader.skip_any()
        return values
    if kind in (BINARY, EMBED):
        reader.skip_buffer()
    elif kind == FORMAT:
        reader.skip_buffer()
        reader.skip_buffer()
    elif kind == TYPE:
        type_ref = reader.uint()
        if type_ref not in TYPE_REFS:
            raise ValueError(f"unsupported shared type {type_ref} in the update")
        if type_ref == XML_ELEMENT:
            reader.skip_buffer()
    else:
        raise ValueError(f"unsupported content kind {kind} in the update")
    return 1


def read_update(update: bytes, max_ops: int) -> UpdateShape:
    """The shape of a v1 update, read without applying it.

    UpdateTooCostly when it carries more than `max_ops` structs and delete ranges together (known
    from the counts it declares, before reading them); ValueError when it is malformed.
    """
    reader = _Reader(update)
    ops = 0
    runs: list[StructRun] = []
    clients: set[int] = set()
    for _ in range(reader.count()):
        declared = reader.uint()
        ops += declared
        if ops > max_ops:
            raise UpdateTooCostly(f"the update carries more than {max_ops} changes")
        if declared > reader.remaining():
            raise ValueError("the update claims more structs than it holds")
        client, clock = reader.uint(), reader.uint(U32)
        if client in clients:
            raise ValueError("a client's structs appear twice in the update")
        clients.add(client)
        run = StructRun(client, reader.pos)
        for _ in range(declared):
            run.clocks.append(clock)
            clock += _skip_struct(reader)
            if clock >= U32:
                raise ValueError("a clock in the update is out of range")
            run.ends.append(reader.pos)
        run.end_clock = clock
        runs.append(run)
    deletions: list[tuple[int, list[tuple[int, int]]]] = []
    clients = set()
    for _ in range(reader.count()):
        client = reader.uint()
        declared = reader.uint()
        ops += declared
        if ops > max_ops:
            raise UpdateTooCostly(f"the update carries more than {max_ops} changes")
        if declared > reader.remaining():
            raise ValueError("the update claims more deletions than it holds")
        if client in clients:
            raise ValueError("a client's deletions appear twice in the update")
        clients.add(client)
        deletions.append((client, [(reader.uint(U32), reader.uint(U32)) for _ in range(declared)]))
    if reader.remaining():
        raise ValueError("the update has bytes after its end")
    return UpdateShape(runs, deletions)


def decode_state(state: bytes) -> dict[int, int]:
    """A state vector (or `pycrdt.get_state` of an update) as {client: clock}."""
    reader = _Reader(state)
    return {reader.uint(): reader.uint() for _ in range(reader.count())}


def ops_per_piece(doc: Doc[Any]) -> int:
    """How many structs or deletions to apply at once to `doc`: a split costs up to one move per
    block of the document, and there are at most as many blocks as clock units."""
    blocks = sum(decode_state(doc.get_state()).values())
    low, high = PIECE_OPS
    return max(low, min(high, APPLY_BUDGET // max(1, blocks)))


def apply_in_pieces(doc: Doc[Any], update: bytes, shape: UpdateShape, deadline: float) -> None:
    """Apply `update` to `doc` in pieces (a call each, so other threads run in between).

    Every piece is decoded by pycrdt before any is applied, so a malformed update changes nothing
    (ValueError). Past `deadline` (`time.monotonic()`) the rest is refused: UpdateTooCostly with
    `partly_applied`. PartlyApplied when pycrdt refuses a piece after others went in.
    """
    pieces = shape.pieces(update, ops_per_piece(doc))
    if len(pieces) == 1:
        doc.apply_update(update)  # raises on a malformed update before changing anything
        return
    for piece in pieces:
        get_state(piece)  # decodes the piece: ValueError if pycrdt would not read it
    for index, piece in enumerate(pieces):
        if index and time.monotonic() > deadline:
            raise UpdateTooCostly("the update took too long to apply", partly_applied=True)
        try:
            doc.apply_update(piece)
        except ValueError as exc:
            if index == 0:
                raise
            raise PartlyApplied(str(exc)) from exc
