"""`WS /ws/doc/{doc_id}`: a document's live socket, speaking the y-websocket sync and awareness
protocol (`server.ywire`) with the document's room (`server.room`; the open rooms: `server.rooms`).
"""

from __future__ import annotations

import anyio
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from server.access import admit_socket, close_quietly, too_many_sockets
from server.errors import WS_4404_DOCUMENT_NOT_FOUND
from server.room import OUTBOX_SIZE, Connection
from server.services import services
from storage.documents import DocumentNotFound
from storage.models import Role


async def document_socket(websocket: WebSocket) -> None:
    """Any member may join; a viewer's connection reads and shows presence but cannot write."""
    admitted = await admit_socket(websocket, Role.VIEWER)
    if admitted is None:
        return
    account, role = admitted
    document_id = websocket.path_params["doc_id"]
    rooms = services(websocket).rooms
    sockets = services(websocket).sockets
    try:
        room = await rooms.open(document_id)
    except DocumentNotFound:  # deleted in between
        await close_quietly(websocket, WS_4404_DOCUMENT_NOT_FOUND, "document not found")
        return
    send, receive = anyio.create_memory_object_stream[bytes](OUTBOX_SIZE)
    connection = Connection(websocket, send, account.username, role)
    if not await sockets.add(account.username, document_id, connection, account.session_hash):
        send.close()
        receive.close()
        await too_many_sockets(websocket, account.username, sockets.per_user)
        return
    try:
        with services(websocket).metrics.socket_open("document"):
            await room.serve(connection, receive)
    finally:
        sockets.remove(account.username, connection)
    if connection.closing is not None:
        await close_quietly(websocket, *connection.closing)


routes = [WebSocketRoute("/ws/doc/{doc_id}", document_socket)]
