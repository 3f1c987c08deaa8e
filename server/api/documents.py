"""The document API: list, create, read, change, delete and suggestion history (versions:
server/api/versions.py; export and import: server/api/exports.py, server/api/imports.py).

Handlers only translate HTTP to `storage/` calls; the queries live there.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.api import library
from server.auth.access import authorize
from server.auth.sessions import signed_in
from server.collab.room import DocumentTooLarge
from server.errors import InvalidBody, api_error, read_body
from server.services import services
from storage import documents, suggestions
from storage import notes as suggestion_notes
from storage.models import DocumentCreate, DocumentUpdate, Role


def _json(model: BaseModel | list[Any], status: int = 200) -> JSONResponse:
    if isinstance(model, list):
        return JSONResponse([m.model_dump(mode="json") for m in model], status_code=status)
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


async def list_documents(request: Request) -> Response:
    """The user's own documents and those shared with them, each with the user's role."""
    try:  # finding and organising: ?sort=updated|title&tag= (server/api/library.py)
        sort, tag = library.list_filters(request)
    except ValueError as exc:
        return api_error(400, "invalid", str(exc))
    rows = await services(request).store.run(documents.list_documents, signed_in(request).username, sort, tag)
    return JSONResponse({"documents": [r.model_dump(mode="json") for r in rows]})


async def create_document(request: Request) -> Response:
    account = signed_in(request)
    data = await read_body(request, DocumentCreate)
    created = await services(request).store.run(documents.create_document, data, account.username)
    return _json(created, status=201)


async def read_document(request: Request) -> Response:
    document_id = request.path_params["doc_id"]
    account, _ = await authorize(request, document_id, Role.VIEWER)
    await services(request).rooms.flush_text(document_id)  # the text is the live document's, to the last edit
    document = await services(request).store.run(documents.get_document, document_id, account.username)
    return _json(document)


async def update_document(request: Request) -> Response:
    """Title changes go to the database; text changes go through the live document."""
    document_id = request.path_params["doc_id"]
    account, _ = await authorize(request, document_id, Role.EDITOR)
    changes = await read_body(request, DocumentUpdate)
    try:  # notes for suggestions: checked before anything is stored, so bad notes change nothing
        notes = None if changes.notes is None else suggestion_notes.clean_notes(changes.notes)
    except ValueError as exc:  # its message names the field
        raise InvalidBody(str(exc)) from None
    rooms, store = services(request).rooms, services(request).store
    if notes is not None:
        await store.run(suggestion_notes.set_notes, document_id, account.username, notes)
    if changes.title is not None:
        await store.run(documents.rename_document, document_id, account.username, changes.title)
    if changes.text is not None:
        try:
            await rooms.set_text(document_id, changes.text, account.username)  # version authors
        except DocumentTooLarge as exc:
            return api_error(413, "too_large", str(exc))
    document = await store.run(documents.get_document, document_id, account.username)
    return _json(document)


async def delete_document(request: Request) -> Response:
    document_id = request.path_params["doc_id"]
    account, _ = await authorize(request, document_id, Role.OWNER)
    await services(request).store.run(documents.delete_document, document_id, account.username)
    await services(request).rooms.forget(document_id)
    await services(request).sockets.document_gone(document_id)
    return Response(status_code=204)


async def list_suggestions(request: Request) -> Response:
    """The user's own suggestions in the document (suggestions are private until accepted)."""
    account, _ = await authorize(request, request.path_params["doc_id"], Role.VIEWER)
    rows = await services(request).store.run(
        suggestions.list_suggestions, request.path_params["doc_id"], account.username
    )
    return JSONResponse({"suggestions": [r.model_dump(mode="json") for r in rows]})


routes = [
    Route("/api/documents", list_documents, methods=["GET"]),
    Route("/api/documents", create_document, methods=["POST"]),
    Route("/api/documents/{doc_id}", read_document, methods=["GET"]),
    Route("/api/documents/{doc_id}", update_document, methods=["PATCH"]),
    Route("/api/documents/{doc_id}", delete_document, methods=["DELETE"]),
    Route("/api/documents/{doc_id}/suggestions", list_suggestions, methods=["GET"]),
]
