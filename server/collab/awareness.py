"""Presence in a live document (y-protocols awareness): what each connection may publish, checked
and bounded before anyone else sees it.

A client id belongs to the first connection that uses it; a connection may hold a few ids, each
state is capped in bytes and rebuilt from the fields the editor uses (the account's name, a hex
colour, a cursor of Yjs relative positions, `suggesting`), and a room caps the bytes of all its
states. Anything else is dropped or refused, so nothing a client sends reaches another's page as is.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

from pycrdt import Decoder, write_message

from server.collab.yupdates import write_var_uint

audit = logging.getLogger("cowrite.audit")

# colours reach other pages inside `style` attributes: only plain hex colours are safe there
HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
MAX_ID = 2**53 - 1  # Yjs ids are JavaScript numbers
MAX_TYPE_NAME = 256
ENTRY_OVERHEAD = 3 * 10  # three varuints (id, clock, length) at most
REMOTE_STATE_S = 30.0  # y-protocols' outdated timeout: a state not renewed this long is gone
MAX_NAME = 64  # an account name is at most 32 characters (server.auth.USERNAME)


@dataclass(frozen=True)
class AwarenessLimits:
    """Bounds on the presence one connection and one room may hold."""

    ids_per_connection: int = 4  # distinct client ids one connection may ever use
    state_bytes: int = 8 << 10  # one state, as JSON
    room_bytes: int = 1 << 20  # all states in a room together

    @property
    def message_bytes(self) -> int:
        """The largest awareness message a connection can need to send."""
        return 16 + self.ids_per_connection * (self.state_bytes + ENTRY_OVERHEAD)


class AwarenessRefused(Exception):
    """An awareness message exceeds a cap; the sender's socket is closed with 1008."""


class Publisher(Protocol):
    """A connection that publishes presence: its account and the client ids it has set."""

    username: str
    awareness_ids: set[int]


def encode_entries(entries: list[tuple[int, int, str]]) -> bytes:
    """An encoded awareness update: (client id, clock, state JSON or "null") for each entry."""
    out = bytearray(write_var_uint(len(entries)))
    for client_id, clock, state in entries:
        out += write_var_uint(client_id) + write_var_uint(clock) + write_message(state.encode())
    return bytes(out)


def read_entries(update: bytes, max_entries: int) -> list[tuple[int, int, str]]:
    """The entries of an encoded awareness update; AwarenessRefused before decoding any when it
    claims more than `max_entries` (a claim of 400,000 ids costs nothing to refuse)."""
    decoder = Decoder(update)
    count = decoder.read_var_uint()
    if count > max_entries:
        raise AwarenessRefused(f"an awareness message may carry at most {max_entries} entries")
    return [
        (decoder.read_var_uint(), decoder.read_var_uint(), decoder.read_var_string()) for _ in range(count)
    ]


class RoomPresence:
    """The awareness states of one room, with who owns each client id and the bytes they hold."""

    def __init__(self, document_id: str, limits: AwarenessLimits) -> None:
        self.document_id = document_id
        self.limits = limits
        self.owners: dict[int, Publisher] = {}  # client id -> the connection that uses it
        self.states: dict[int, tuple[int, str]] = {}  # client id -> (clock, state JSON), live ones
        self.clocks: dict[int, int] = {}  # client id -> last clock seen, while its owner is here
        self.bytes = 0
        # states of clients on other replicas (checked there): client id -> (clock, state, when)
        self.remote: dict[int, tuple[int, str, float]] = {}
        self.remote_bytes = 0

    def accept(self, message: bytes, connection: Publisher) -> bytes | None:
        """The part of an awareness update this connection may set, sanitized, to relay to all; None
        when nothing is left. AwarenessRefused (close 1008) past a cap; ValueError (1007) when
        malformed."""
        if len(message) > self.limits.message_bytes:
            raise AwarenessRefused(f"awareness messages are at most {self.limits.message_bytes} bytes")
        kept: list[tuple[int, int, str]] = []
        for client_id, clock, state in read_entries(message, self.limits.ids_per_connection):
            owner = self.owners.get(client_id)
            heard = self.remote.get(client_id)
            if owner is None and heard is not None:
                if clock <= heard[0]:
                    continue  # another replica's client, passed back by a page here (y-websocket does)
                # news of it, so it is here now (it moved from a replica that went away)
                del self.remote[client_id]
                self.remote_bytes -= len(heard[1])
            if owner is None:
                claimed = sum(1 for o in self.owners.values() if o is connection)
                if claimed >= self.limits.ids_per_connection:
                    raise AwarenessRefused(
                        f"a connection may use at most {self.limits.ids_per_connection} awareness client ids"
                    )
                self.owners[client_id] = owner = connection
            if owner is not connection:
                audit.warning(
                    "dropped an awareness state for another connection's client id on document %s from %s",
                    self.document_id,
                    connection.username,
                )
                continue
            if len(state.encode()) > self.limits.state_bytes:
                raise AwarenessRefused(f"an awareness state is at most {self.limits.state_bytes} bytes")
            known = self.clocks.get(client_id, -1)
            removal = state in ("", "null")
            if clock < known or (clock == known and not (removal and client_id in self.states)):
                continue  # not newer than what we have: the client has moved on
            self.clocks[client_id] = clock
            if removal:
                self._drop(client_id)
                connection.awareness_ids.discard(client_id)
                kept.append((client_id, clock, "null"))
                continue
            clean = sanitized(state, connection.username)
            previous = self.states.get(client_id)
            grown = len(clean) - (len(previous[1]) if previous else 0)
            if self.bytes + grown > self.limits.room_bytes:
                raise AwarenessRefused("this document's presence data is full")
            self.states[client_id] = (clock, clean)
            self.bytes += grown
            connection.awareness_ids.add(client_id)
            kept.append((client_id, clock, clean))
        return encode_entries(kept) if kept else None

    def accept_remote(self, update: bytes, now: float) -> bytes | None:
        """An awareness update relayed by another replica (which checked it as `accept` does; each
        state is rebuilt again here all the same, since pages draw it): the part to pass on here,
        with its states kept for those who join later; None when nothing is new. Bounded like a
        room's own states; ValueError when malformed."""
        kept: list[tuple[int, int, str]] = []
        for client_id, clock, state in read_entries(update, max(64, self.limits.room_bytes // 64)):
            if client_id in self.owners:
                continue  # a client id of this replica's own: ours decides
            previous = self.remote.get(client_id)
            if previous is not None and clock < previous[0]:
                continue
            if previous is not None:
                self.remote_bytes -= len(previous[1])
                del self.remote[client_id]
            if state not in ("", "null"):
                state = _checked_again(state, self.limits.state_bytes)
                if not state or self.remote_bytes + len(state) > self.limits.room_bytes:
                    continue
                self.remote[client_id] = (clock, state, now)
                self.remote_bytes += len(state)
            kept.append((client_id, clock, state or "null"))
        return encode_entries(kept) if kept else None

    def snapshot(self, now: float | None = None) -> bytes | None:
        """Every live state, for a connection that just joined; None when there are none. States
        from other replicas count while renewed within `REMOTE_STATE_S` (as browsers do)."""
        entries = [(c, clock, state) for c, (clock, state) in self.states.items()]
        for client_id, (clock, state, when) in list(self.remote.items()):
            if now is not None and now - when > REMOTE_STATE_S:
                self.remote_bytes -= len(state)
                del self.remote[client_id]
            else:
                entries.append((client_id, clock, state))
        return encode_entries(entries) if entries else None

    def forget(self, connection: Publisher) -> bytes | None:
        """Free a leaving connection's client ids; the update that removes its states for the
        others, or None when it had none."""
        gone = [c for c, owner in self.owners.items() if owner is connection]
        removed = []
        for client_id in gone:
            del self.owners[client_id]
            clock = self.clocks.pop(client_id, 0)
            if client_id in self.states:
                self._drop(client_id)
                removed.append((client_id, clock + 1, "null"))
        connection.awareness_ids.clear()
        return encode_entries(removed) if removed else None

    def _drop(self, client_id: int) -> None:
        previous = self.states.pop(client_id, None)
        if previous is not None:
            self.bytes -= len(previous[1])


def _checked_again(state: str, limit: int) -> str:
    """A state from another replica rebuilt by `sanitized` under the name it carries; "" when it
    is over `limit` bytes or is not a state a replica would send."""
    if len(state.encode()) > limit:
        return ""
    try:
        parsed = json.loads(state)
    except (ValueError, RecursionError):
        return ""
    user = parsed.get("user") if isinstance(parsed, dict) else None
    name = user.get("name") if isinstance(user, dict) else None
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        return ""
    return sanitized(state, name)


def sanitized(state: str, username: str) -> str:
    """An awareness state rebuilt from the fields the editor uses: `user` with the account's name
    and only hex colours, a cursor of well-formed relative positions, `suggesting` as a boolean.
    ValueError when the state is not a JSON object."""
    try:
        parsed = json.loads(state)
    except RecursionError:
        raise ValueError("an awareness state is nested too deeply") from None
    if not isinstance(parsed, dict):
        raise ValueError("an awareness state must be a JSON object")
    user: dict[str, str] = {"name": username}
    claimed = parsed.get("user")
    if isinstance(claimed, dict):
        for key in ("color", "colorLight"):
            value = claimed.get(key)
            if isinstance(value, str) and HEX_COLOR.match(value):
                user[key] = value
    clean: dict[str, Any] = {"user": user}
    cursor = parsed.get("cursor")
    if cursor is None and "cursor" in parsed:
        clean["cursor"] = None  # the writer's editor lost focus
    elif isinstance(cursor, dict) and set(cursor) == {"anchor", "head"}:
        anchor, head = relative_position(cursor["anchor"]), relative_position(cursor["head"])
        if anchor is not None and head is not None:
            clean["cursor"] = {"anchor": anchor, "head": head}
    if isinstance(parsed.get("suggesting"), bool):
        clean["suggesting"] = parsed["suggesting"]
    return json.dumps(clean, separators=(",", ":"))


def relative_position(value: object) -> dict[str, Any] | None:
    """A Yjs relative position in its JSON form (`type`, `tname`, `item`, `assoc`), rebuilt from
    checked fields; None when it is not one."""
    if not isinstance(value, dict) or not set(value) <= {"type", "tname", "item", "assoc"}:
        return None
    out: dict[str, Any] = {}
    for key in ("type", "item"):
        if key in value:
            if value[key] is None:
                out[key] = None
            else:
                found = _id(value[key])
                if found is None:
                    return None
                out[key] = found
    if "tname" in value:
        tname = value["tname"]
        if tname is not None and not (isinstance(tname, str) and len(tname) <= MAX_TYPE_NAME):
            return None
        out["tname"] = tname
    if "assoc" in value:
        assoc = value["assoc"]
        if not _is_int(assoc) or not -1 <= assoc <= 1:
            return None
        out["assoc"] = assoc
    return out


def _id(value: object) -> dict[str, int] | None:
    if not isinstance(value, dict) or set(value) != {"client", "clock"}:
        return None
    client, clock = value["client"], value["clock"]
    if not (_is_int(client) and _is_int(clock) and 0 <= client <= MAX_ID and 0 <= clock <= MAX_ID):
        return None
    return {"client": client, "clock": clock}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
