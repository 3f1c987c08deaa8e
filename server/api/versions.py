"""The version history API: list a document's versions, read one, name one, keep the current text
as a version, and restore one on the server (the page restores in the browser, as one undo step).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.auth.access import authorize
from server.collab.room import DocumentTooLarge
from server.errors import api_error, not_found, read_body, refusal
from server.services import services
from storage import documents, versions
from storage.models import Role
from storage.versions import BEFORE_RESTORE, NAMED, VersionNotFound

REASONS = (NAMED, BEFORE_RESTORE)  # what a client may keep a version as


class VersionSave(BaseModel):
    """`{"name": ...}`, or `{"reason": "before-restore"}` (a name is optional then)."""

    model_config = ConfigDict(extra="forbid")

    # before `name`: a bad reason is the error named when both are bad
    reason: str = NAMED
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def known_fields(cls, body: Any) -> Any:
        return _fields_of(cls, body)

    @field_validator("reason", mode="before")
    @classmethod
    def known_reason(cls, reason: Any) -> Any:
        if reason not in REASONS:
            raise refusal(f"reason: one of {', '.join(REASONS)}")
        return reason

    @field_validator("name", mode="before")
    @classmethod
    def clean_name(cls, raw: Any) -> str | None:
        return None if raw is None else _clean_name(raw)

    @model_validator(mode="after")
    def named_has_name(self) -> VersionSave:
        if self.name is None and self.reason == NAMED:
            raise refusal("name: required")
        return self


class VersionName(BaseModel):
    """`{"name": "sent to editor"}`, or `{"name": null}` to unname the version."""

    model_config = ConfigDict(extra="forbid")

    name: str | None

    @model_validator(mode="before")
    @classmethod
    def known_fields(cls, body: Any) -> Any:
        # one validator, so the body is known to be an object before `name` is looked for
        body = _fields_of(cls, body)
        if "name" not in body:
            raise refusal("name: required (null to clear it)")
        return body

    @field_validator("name", mode="before")
    @classmethod
    def clean_name(cls, raw: Any) -> str | None:
        return None if raw is None else _clean_name(raw)


def _fields_of(model: type[BaseModel], body: Any) -> dict[str, Any]:
    """`body`, if it is an object of none but `model`'s fields (the first unknown one is named)."""
    if not isinstance(body, dict):
        raise refusal("the body must be a JSON object")
    unknown = sorted(set(body) - set(model.model_fields))
    if unknown:
        raise refusal(f"{unknown[0]}: unknown field")
    return body


def _clean_name(raw: Any) -> str:
    try:
        return versions.clean_name(raw)
    except ValueError as exc:  # its message names the field
        raise refusal(str(exc)) from None


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
    data = await read_body(request, VersionSave)
    await services(request).rooms.flush_text(document_id)
    saved = await services(request).store.run(
        versions.save_version, document_id, account.username, data.name, data.reason
    )
    return JSONResponse(saved.model_dump(mode="json"), status_code=201)


async def name_version(request: Request) -> Response:
    """`{"name": "sent to editor"}` names or renames a version; `{"name": null}` unnames it."""
    document_id = request.path_params["doc_id"]
    account, _ = await authorize(request, document_id, Role.EDITOR)
    data = await read_body(request, VersionName)
    try:
        named = await services(request).store.run(
            versions.name_version,
            document_id,
            account.username,
            request.path_params["revision_id"],
            data.name,
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


routes = [
    Route("/api/documents/{doc_id}/revisions", list_versions, methods=["GET"]),
    Route("/api/documents/{doc_id}/revisions", save_version, methods=["POST"]),
    Route("/api/documents/{doc_id}/revisions/{revision_id:int}", read_version, methods=["GET"]),
    Route("/api/documents/{doc_id}/revisions/{revision_id:int}", name_version, methods=["PATCH"]),
    Route("/api/documents/{doc_id}/revisions/{revision_id:int}/restore", restore_version, methods=["POST"]),
]
