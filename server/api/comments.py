"""Comments on a document over HTTP: every member reads them, commenters and up write, reply and
resolve; each change tells the document's open sockets (message 103), on every replica.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.auth.access import authorize
from server.errors import api_error, read_body
from server.services import services
from storage import comments
from storage.comments import CommentInvalid, CommentLimit, CommentNotFound, NotYours
from storage.models import ANCHOR_MAX, COMMENT_MAX, QUOTE_MAX, Role

audit = logging.getLogger("cowrite.audit")

# room for whitespace the body is trimmed of; the trimmed body is held to COMMENT_MAX
BODY_RAW_MAX = 2 * COMMENT_MAX


class CommentCreate(BaseModel):
    """A new thread (anchors and quote) or, with `thread_id`, a reply (neither)."""

    model_config = ConfigDict(extra="forbid")

    body: str = Field(max_length=BODY_RAW_MAX)
    thread_id: int | None = Field(default=None, ge=1)
    anchor_start: str = Field(default="", max_length=ANCHOR_MAX)
    anchor_end: str = Field(default="", max_length=ANCHOR_MAX)
    quote: str = Field(default="", max_length=QUOTE_MAX)


class CommentChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str | None = Field(default=None, max_length=BODY_RAW_MAX)
    resolved: bool | None = None


async def list_comments(request: Request) -> Response:
    document_id = request.path_params["doc_id"]
    await authorize(request, document_id, Role.VIEWER)
    threads = await services(request).store.run(comments.list_threads, document_id)
    return JSONResponse({"threads": [thread.model_dump(mode="json") for thread in threads]})


async def add_comment(request: Request) -> Response:
    document_id = request.path_params["doc_id"]
    account, _ = await authorize(request, document_id, Role.COMMENTER)
    data = await read_body(request, CommentCreate)
    store = services(request).store
    try:
        if data.thread_id is None:
            made = await store.run(
                comments.add_thread,
                document_id,
                account.username,
                data.body,
                data.anchor_start,
                data.anchor_end,
                data.quote,
            )
            body = made.model_dump(mode="json")
        elif data.anchor_start or data.anchor_end or data.quote:
            return api_error(400, "invalid", "a reply takes no anchors or quote: its thread has them")
        else:
            reply = await store.run(
                comments.add_reply, document_id, data.thread_id, account.username, data.body
            )
            body = reply.model_dump(mode="json")
    except (CommentInvalid, CommentLimit, CommentNotFound) as exc:
        return _refused(exc)
    await services(request).sockets.comments_changed(document_id)
    return JSONResponse(body, status_code=201)


async def change_comment(request: Request) -> Response:
    """The author rewrites the body; anyone who may comment resolves or reopens the thread."""
    document_id, comment_id = request.path_params["doc_id"], request.path_params["comment_id"]
    account, _ = await authorize(request, document_id, Role.COMMENTER)
    data = await read_body(request, CommentChange)
    if data.body is None and data.resolved is None:
        return api_error(400, "invalid", "body: give a new `body`, or `resolved` true or false")
    store = services(request).store
    try:
        # both in one transaction: a bad body leaves the thread as it was
        result = await store.run(_change, document_id, comment_id, account.username, data)
    except (CommentInvalid, CommentNotFound, NotYours) as exc:
        return _refused(exc)
    await services(request).sockets.comments_changed(document_id)
    return JSONResponse(result)


def _change(session: Session, document_id: str, comment_id: int, user: str, data: CommentChange) -> Any:
    """The comment as changed; its thread (first comment) when `resolved` was given."""
    changed: BaseModel | None = None
    if data.body is not None:
        changed = comments.edit_body(session, document_id, comment_id, user, data.body)
    if data.resolved is not None:
        changed = comments.set_resolved(session, document_id, comment_id, user, data.resolved)
    assert changed is not None
    return changed.model_dump(mode="json", exclude={"replies"})


async def delete_comment(request: Request) -> Response:
    """Its author deletes a comment, or the owner any; a first comment takes its thread along."""
    document_id, comment_id = request.path_params["doc_id"], request.path_params["comment_id"]
    account, role = await authorize(request, document_id, Role.COMMENTER)
    try:
        await services(request).store.run(
            comments.delete_comment, document_id, comment_id, account.username, role is Role.OWNER
        )
    except (CommentNotFound, NotYours) as exc:
        return _refused(exc)
    audit.info("comment deleted doc=%s comment=%s by=%s", document_id, comment_id, account.username)
    await services(request).sockets.comments_changed(document_id)
    return Response(status_code=204)


def _refused(exc: Exception) -> JSONResponse:
    if isinstance(exc, CommentNotFound):
        return api_error(404, "not_found", "no such comment")
    if isinstance(exc, NotYours):
        return api_error(403, "forbidden", str(exc))
    if isinstance(exc, CommentLimit):
        return api_error(409, "too_many", str(exc))
    return api_error(400, "invalid", str(exc))


routes = [
    Route("/api/documents/{doc_id}/comments", list_comments, methods=["GET"]),
    Route("/api/documents/{doc_id}/comments", add_comment, methods=["POST"]),
    Route("/api/documents/{doc_id}/comments/{comment_id:int}", change_comment, methods=["PATCH"]),
    Route("/api/documents/{doc_id}/comments/{comment_id:int}", delete_comment, methods=["DELETE"]),
]
