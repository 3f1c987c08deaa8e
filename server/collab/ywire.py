"""The y-websocket wire format as Cowrite speaks it: the standard sync and awareness messages
(pycrdt's codec) and Cowrite's own message types (100-103), which clients that do not know them ignore.
"""

from __future__ import annotations

from pycrdt import YMessageType, YSyncMessageType, write_message

from server.collab.yupdates import write_var_uint

# ours: "every update you sent so far is stored"; payload: the server's state vector (a byte
# array), then how many updates this connection has sent (a varuint; it also covers deletions,
# which leave the state vector as it was)
MESSAGE_SAVED = 100
# ours: "your update was refused and nothing of it kept" (a viewer's); payload: a reason string
MESSAGE_REJECTED = 101
# ours: "the owner changed your role"; payload: the new role as a string
MESSAGE_ROLE_CHANGED = 102
# ours: "this document's comments changed"; no payload: the page fetches them over HTTP, so all
# it shows is validated server data
MESSAGE_COMMENTS = 103
# an update that changes nothing (clients send it as their sync step 2 when they hold nothing new)
EMPTY_UPDATE = b"\x00\x00"


def saved_message(state_vector: bytes, updates_received: int) -> bytes:
    return bytes([MESSAGE_SAVED]) + write_message(state_vector) + write_var_uint(updates_received)


def rejected_message(reason: str) -> bytes:
    return bytes([MESSAGE_REJECTED]) + write_message(reason.encode())


def role_changed_message(role: str) -> bytes:
    return bytes([MESSAGE_ROLE_CHANGED]) + write_message(role.encode())


def comments_message() -> bytes:
    return bytes([MESSAGE_COMMENTS])


def sync_step2_message(update: bytes) -> bytes:
    return bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2]) + write_message(update)
