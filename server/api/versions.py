"""The version history API: list a document's versions, read one, name one, keep the current text
as a version, and restore one on the server (the page restores in the browser, as one undo step).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.auth.access import authorize
from server.collab.room import DocumentTooLarge
from server.errors import api_error, invalid, not_found, read_json
from server.services import services
from storage import documents, versions
from storage.models import Role
from storage.versions import BEFORE_RESTORE, NAMED, VersionNotFound

REASONS = (NAMED, BEFORE_RESTORE)  # what a client may keep a version as


async def list_versions(request: Request) -> Response:
    document_id = request.path_params["doc_id"]
    account, _ = await authorize(request, document_id, Role.VIEWER)
    await services(request).rooms.flush_text(document_id)  # the newest version has the last edit
    rows = await services(request).store.run(versions.list_versions, document_id, account.username)
    return JSONResponse({"revisions": [r.model_dump(mode="json") for r in rows]})


async def read_version(request: Request) -> Response:
    document_id = request.path_params["doc_id"]
    account, _ = await authorize(request, document_id, Role.VIEWER)
    try:
        version = await services(request).store.run(
            versions.get_version, document_id, account.username, request.path_params["revision_id"]
        )
    except VersionNotFound:
        return not_found("revision")
    return JSONResponse(version.model_dump(mode="json"))


async def save_version(request: Request) -> Response:
    """Keep the current text as a version: `{"name": ...}`, or `{"reason": "before-restore"}` (the
    page does so before it restores one; a name is optional then)."""
    document_id = request.path_params["doc_id"]
    account, _ = await authorize(request, document_id, Role.EDITOR)
    try:
        body = _object(await read_json(request), {"name", "reason"})
        reason = body.get("reason", NAMED)
        if reason not in REASONS:
            raise ValueError(f"reason: one of {', '.join(REASONS)}")
        raw = body.get("name")
        if raw is None and reason == NAMED:
            raise ValueError("name: required")
        name = None if raw is None else versions.clean_name(raw)
    except ValueError as exc:
        return invalid(exc)
    await services(request).rooms.flush_text(document_id)
    saved = await services(request).store.run(
        versions.save_version, document_id, account.username, name, reason
    )
    return JSONResponse(saved.model_dump(mode="json"), status_code=201)


async def name_version(request: Request) -> Response:
    """`{"name": "sent to editor"}` names or renames a version; `{"name": null}` unnames it."""
    document_id = request.path_params["doc_id"]
    account, _ = await authorize(request, document_id, Role.EDITOR)
    try:
        body = _object(await read_json(request), {"name"})
        if "name" not in body:
            raise ValueError("name: required (null to clear it)")
        name = None if body["name"] is None else versions.clean_name(body["name"])
    except ValueError as exc:
        return invalid(exc)
    try:
        named = await services(request).store.run(
            versions.name_version, document_id, account.username, request.path_params["revision_id"], name
        )
    except VersionNotFound:
        return not_found("revision")
    return JSONResponse(named.model_dump(mode="json"))


async def restore_version(request: Request) -> Response:
    """Make an earlier version the text, through the live document; the text it replaces is kept
    as a version first."""
    document_id = request.path_params["doc_id"]
    account, _ = await authorize(request, document_id, Role.EDITOR)
    rooms, store = services(request).rooms, services(request).store
    await rooms.flush_text(document_id)  # the version kept before is the text to the last edit
    try:
        text = await store.run(
            versions.text_to_restore, document_id, account.username, request.path_params["revision_id"]
        )
    except VersionNotFound:
        return not_found("revision")
    try:
        await rooms.set_text(document_id, text, account.username)
    except DocumentTooLarge as exc:
        return api_error(413, "too_large", str(exc))
    document = await store.run(documents.get_document, document_id, account.username)
    return JSONResponse(document.model_dump(mode="json"))


def _object(body: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field")
    return body


routes = [
    Route("/api/documents/{doc_id}/revisions", list_versions, methods=["GET"]),
    Route("/api/documents/{doc_id}/revisions", save_version, methods=["POST"]),
    Route("/api/documents/{doc_id}/revisions/{revision_id:int}", read_version, methods=["GET"]),
    Route("/api/documents/{doc_id}/revisions/{revision_id:int}", name_version, methods=["PATCH"]),
    Route("/api/documents/{doc_id}/revisions/{revision_id:int}/restore", restore_version, methods=["POST"]),
]
