"""`WS /ws/doc/{doc_id}`: a document's live socket, speaking the y-websocket sync and awareness
protocol (`server.collab.ywire`) with the document's room (`server.collab.room`; the open rooms:
`server.collab.rooms`).
"""

from __future__ import annotations

import logging

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from pycrdt import YMessageType, YSyncMessageType, read_message
from starlette import status
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.auth.access import admit_socket, close_quietly, registered
from server.collab.awareness import AwarenessRefused
from server.collab.connection import OUTBOX_SIZE, Connection
from server.collab.room import TRY_AGAIN, DocumentTooLarge, Room, RoomClosed
from server.collab.yupdates import PartlyApplied, UpdateTooCostly
from server.collab.ywire import EMPTY_UPDATE, sync_step2_message
from server.errors import WS_4404_DOCUMENT_NOT_FOUND, WS_4413_DOCUMENT_TOO_LARGE
from server.limits import IdleTimer, idle_close
from server.services import services
from storage.documents import DocumentNotFound
from storage.models import Role

log = logging.getLogger(__name__)
audit = logging.getLogger("cowrite.audit")


async def serve(room: Room, connection: Connection, receive: MemoryObjectReceiveStream[bytes]) -> None:
    """One client in a room: a writer task drains its outbox, this task reads its frames."""
    websocket = connection.websocket
    async with connection.outbox, anyio.create_task_group() as group:

        async def write() -> None:
            try:
                async with receive:
                    async for message in receive:
                        await websocket.send_bytes(message)
            except (OSError, RuntimeError, WebSocketDisconnect):
                pass  # the client went away; the reader sees the disconnect
            group.cancel_scope.cancel()  # the outbox was closed or the client left

        group.start_soon(write)
        try:
            await room.join(connection)
            await read(room, websocket, connection)
        except RoomClosed:
            connection.closing = connection.closing or TRY_AGAIN
        finally:
            await room.leave(connection)
            group.cancel_scope.cancel()


async def read(room: Room, websocket: WebSocket, connection: Connection) -> None:
    """Read frames until the client leaves, idles out or sends what closes it (`closing`)."""
    idle = IdleTimer(room.idle_timeout_s)
    while True:
        frame = await idle.receive(websocket)
        if frame is None:
            connection.closing = idle_close(room.idle_timeout_s)
            return
        if frame["type"] == "websocket.disconnect" or connection.closing is not None:
            return  # closing: the server is ending this connection, so the frame is not read
        message = frame.get("bytes")
        if message is None:
            connection.closing = (status.WS_1003_UNSUPPORTED_DATA, "document sockets carry binary frames")
            return
        if len(message) > room.update_limit:
            connection.closing = (
                status.WS_1009_MESSAGE_TOO_BIG,
                f"message larger than {room.update_limit} bytes",
            )
            return
        try:
            await handle(room, message, connection)
        except AwarenessRefused as exc:
            audit.warning(
                "closed a document socket of %s on %s: %s", connection.username, room.document_id, exc
            )
            connection.closing = (status.WS_1008_POLICY_VIOLATION, str(exc))
            return
        except (UpdateTooCostly, DocumentTooLarge) as exc:
            audit.warning(
                "refused an update from %s on document %s: %s", connection.username, room.document_id, exc
            )
            connection.closing = (WS_4413_DOCUMENT_TOO_LARGE, str(exc))
            return
        except (ValueError, IndexError, AssertionError, RuntimeError, PartlyApplied) as exc:
            # pycrdt's decoder raises RuntimeError("Y protocol error") on a truncated message
            log.warning("malformed message on document %s: %s", room.document_id, exc)
            connection.closing = (status.WS_1007_INVALID_FRAME_PAYLOAD_DATA, "malformed message")
            return
        if message[0] == YMessageType.SYNC and message[1] != YSyncMessageType.SYNC_STEP1:
            idle.touch()  # an edit (sync step 2 or update); awareness alone is not activity


async def handle(room: Room, message: bytes, connection: Connection) -> None:
    """One y-websocket message: a sync step, an update (editors only) or an awareness update."""
    kind = message[0]
    if kind == YMessageType.SYNC:
        step = message[1]
        payload = read_message(message[2:])
        if step == YSyncMessageType.SYNC_STEP1:
            connection.send(sync_step2_message(await room.missing_from(payload)))
        elif step in (YSyncMessageType.SYNC_STEP2, YSyncMessageType.SYNC_UPDATE):
            if connection.role.allows(Role.EDITOR):
                await room.receive_update(payload, connection)
            elif payload != EMPTY_UPDATE:
                room.reject(connection, len(payload))
        else:
            raise ValueError(f"unknown sync step {step}")
    elif kind == YMessageType.AWARENESS:
        await room.relay_awareness(read_message(message[1:]), connection)
    else:
        raise ValueError(f"unknown message type {kind}")


async def document_socket(websocket: WebSocket) -> None:
    """Any member may join; a viewer's connection reads and shows presence but cannot write."""
    admitted = await admit_socket(websocket, Role.VIEWER)
    if admitted is None:
        return
    account, role = admitted
    document_id = websocket.path_params["doc_id"]
    try:
        room = await services(websocket).rooms.open(document_id)
    except DocumentNotFound:  # deleted in between
        await close_quietly(websocket, WS_4404_DOCUMENT_NOT_FOUND, "document not found")
        return
    send, receive = anyio.create_memory_object_stream[bytes](OUTBOX_SIZE)
    connection = Connection(websocket, send, account.username, role)
    async with registered(websocket, account, document_id, connection, "document") as counted:
        if counted:
            await serve(room, connection, receive)
        else:
            send.close()
            receive.close()


routes = [WebSocketRoute("/ws/doc/{doc_id}", document_socket)]
