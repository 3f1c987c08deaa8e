"""The document API: list, create, read, change, delete, export, revisions and suggestion history.

Handlers only translate HTTP to `storage/` calls; the queries live there.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.collab import Rooms
from server.errors import invalid, not_found
from server.users import current_user
from storage import documents, suggestions
from storage.database import Store
from storage.documents import DocumentNotFound
from storage.models import DocumentCreate, DocumentUpdate

MAX_BODY = 8 * 1024 * 1024


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _rooms(request: Request) -> Rooms:
    rooms: Rooms = request.app.state.rooms
    return rooms


def _json(model: BaseModel | list[Any], status: int = 200) -> JSONResponse:
    if isinstance(model, list):
        return JSONResponse([m.model_dump(mode="json") for m in model], status_code=status)
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


async def _body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ValueError("body too large")
    try:
        return json.loads(raw or b"{}")
    except RecursionError:  # nesting deeper than the parser goes
        raise ValueError("the body is nested too deeply") from None


async def list_documents(request: Request) -> Response:
    rows = await _store(request).run(documents.list_documents, current_user(request))
    return JSONResponse({"documents": [r.model_dump(mode="json") for r in rows]})


async def create_document(request: Request) -> Response:
    try:
        data = DocumentCreate.model_validate(await _body(request))
    except (ValidationError, ValueError) as exc:
        return invalid(exc)
    created = await _store(request).run(documents.create_document, data, current_user(request))
    return _json(created, status=201)


async def read_document(request: Request) -> Response:
    try:
        document = await _store(request).run(
            documents.get_document, request.path_params["doc_id"], current_user(request)
        )
    except DocumentNotFound:
        return not_found()
    return _json(document)


async def update_document(request: Request) -> Response:
    """Title changes go to the database; text changes go through the live document."""
    try:
        changes = DocumentUpdate.model_validate(await _body(request))
    except (ValidationError, ValueError) as exc:
        return invalid(exc)
    document_id, user = request.path_params["doc_id"], current_user(request)
    try:
        if changes.title is not None:
            await _store(request).run(documents.rename_document, document_id, user, changes.title)
        if changes.text is not None:
            await _rooms(request).set_text(document_id, user, changes.text)
        document = await _store(request).run(documents.get_document, document_id, user)
    except DocumentNotFound:
        return not_found()
    return _json(document)


async def delete_document(request: Request) -> Response:
    try:
        await _store(request).run(
            documents.delete_document, request.path_params["doc_id"], current_user(request)
        )
    except DocumentNotFound:
        return not_found()
    await _rooms(request).forget(request.path_params["doc_id"])
    return Response(status_code=204)


async def export_markdown(request: Request) -> Response:
    try:
        document = await _store(request).run(
            documents.get_document, request.path_params["doc_id"], current_user(request)
        )
    except DocumentNotFound:
        return not_found()
    slug = re.sub(r"[^a-z0-9]+", "-", document.title.lower()).strip("-") or "document"
    body = f"# {document.title}\n\n{document.text}"
    if not body.endswith("\n"):
        body += "\n"
    return Response(
        body,
        media_type="text/markdown; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{slug}.md"'},
    )


async def list_revisions(request: Request) -> Response:
    try:
        rows = await _store(request).run(
            documents.list_revisions, request.path_params["doc_id"], current_user(request)
        )
    except DocumentNotFound:
        return not_found()
    return JSONResponse({"revisions": [r.model_dump(mode="json") for r in rows]})


async def restore_revision(request: Request) -> Response:
    document_id, user = request.path_params["doc_id"], current_user(request)
    try:
        text = await _store(request).run(
            documents.revision_text, document_id, user, request.path_params["revision_id"]
        )
        await _rooms(request).set_text(document_id, user, text)
        document = await _store(request).run(documents.get_document, document_id, user)
    except DocumentNotFound:
        return not_found("document or revision")
    return _json(document)


async def list_suggestions(request: Request) -> Response:
    try:
        rows = await _store(request).run(
            suggestions.list_suggestions, request.path_params["doc_id"], current_user(request)
        )
    except DocumentNotFound:
        return not_found()
    return JSONResponse({"suggestions": [r.model_dump(mode="json") for r in rows]})


routes = [
    Route("/api/documents", list_documents, methods=["GET"]),
    Route("/api/documents", create_document, methods=["POST"]),
    Route("/api/documents/{doc_id}", read_document, methods=["GET"]),
    Route("/api/documents/{doc_id}", update_document, methods=["PATCH"]),
    Route("/api/documents/{doc_id}", delete_document, methods=["DELETE"]),
    Route("/api/documents/{doc_id}/export.md", export_markdown, methods=["GET"]),
    Route("/api/documents/{doc_id}/revisions", list_revisions, methods=["GET"]),
    Route("/api/documents/{doc_id}/revisions/{revision_id:int}/restore", restore_revision, methods=["POST"]),
    Route("/api/documents/{doc_id}/suggestions", list_suggestions, methods=["GET"]),
]
