"""Finding and organising: search, tags, the document list's sort and filter, and the trash.

Handlers translate HTTP to `storage.library`; `TrashSweep` purges documents whose 30 days in the
trash are over, on start and then hourly (and the trash listing never shows one).
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.auth.access import authorize
from server.auth.sessions import signed_in
from server.errors import api_error, read_body
from server.periodic import Periodic
from server.services import services
from storage import library
from storage.database import Store
from storage.library import SEARCH_LIMIT, SEARCH_MAX, TRASH_DAYS, SearchQueryInvalid, TagInvalid
from storage.models import TAG_MAX, TAGS_PER_DOCUMENT, Role

log = logging.getLogger(__name__)

SORTS = ("updated", "title")
SWEEP_EVERY_S = 3600.0


class TagsChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # bounded before normalizing, so a huge list costs nothing; each tag is checked by `normalize_tags`
    tags: list[object] = Field(max_length=TAGS_PER_DOCUMENT * 2)


def list_filters(request: Request) -> tuple[str, str | None]:
    """The document list's `?sort=updated|title` and `?tag=`; ValueError names a bad one."""
    sort = request.query_params.get("sort", "updated")
    if sort not in SORTS:
        raise ValueError(f"sort: one of {', '.join(SORTS)}")
    tag = request.query_params.get("tag")
    if tag is None or tag == "":
        return sort, None
    try:
        [normal] = library.normalize_tags([tag])
    except TagInvalid as exc:
        raise ValueError(f"tag: {exc}") from None
    return sort, normal


async def search(request: Request) -> Response:
    """`?q=` words (every one must appear; the last may be a word's start), `&limit=` up to 50."""
    account = signed_in(request)
    query = request.query_params.get("q", "")
    if len(query) > SEARCH_MAX:
        return api_error(400, "invalid", f"q: a search is at most {SEARCH_MAX} characters")
    try:
        limit = int(request.query_params.get("limit", "20"))
    except ValueError:
        return api_error(400, "invalid", "limit: a whole number")
    if not 1 <= limit <= SEARCH_LIMIT:
        return api_error(400, "invalid", f"limit: from 1 to {SEARCH_LIMIT}")
    try:
        hits = await services(request).store.run(library.search, account.username, query, limit)
    except SearchQueryInvalid as exc:
        return api_error(400, "invalid", f"q: {exc}")
    return JSONResponse(
        {
            "query": query,
            "terms": library.search_terms(query),
            "results": [h.model_dump(mode="json") for h in hits],
        }
    )


async def put_tags(request: Request) -> Response:
    """Replace a document's tags (editors and owners); 400 and nothing changed for a bad one."""
    document_id = request.path_params["doc_id"]
    account, _ = await authorize(request, document_id, Role.EDITOR)
    change = await read_body(request, TagsChange)
    try:
        tags = library.normalize_tags(change.tags)
    except TagInvalid as exc:
        return api_error(400, "invalid", f"tags: {exc}")
    saved = await services(request).store.run(library.set_tags, document_id, account.username, tags)
    return JSONResponse({"tags": saved})


async def list_tags(request: Request) -> Response:
    """The tags on the documents the user may read, each with how many documents carry it."""
    account = signed_in(request)
    rows = await services(request).store.run(library.list_tags, account.username)
    return JSONResponse({"tags": [r.model_dump(mode="json") for r in rows], "tag_max": TAG_MAX})


async def list_trash(request: Request) -> Response:
    """The user's own documents in the trash (members never see another's trash)."""
    account = signed_in(request)
    rows = await services(request).store.run(library.list_trash, account.username)
    return JSONResponse({"documents": [r.model_dump(mode="json") for r in rows], "keep_days": TRASH_DAYS})


async def restore(request: Request) -> Response:
    """Out of the trash (its owner only; anyone else is told there is no such document)."""
    account = signed_in(request)
    await services(request).store.run(library.restore, request.path_params["doc_id"], account.username)
    return Response(status_code=204)


async def delete_forever(request: Request) -> Response:
    """Delete a document in the trash for ever (its owner only)."""
    account = signed_in(request)
    document_id = request.path_params["doc_id"]
    await services(request).store.run(library.delete_forever, document_id, account.username)
    await services(request).rooms.forget(document_id)
    return Response(status_code=204)


class TrashSweep(Periodic):
    """Purges documents whose time in the trash is over: as it is entered (nobody meets an expired
    document), then every `interval_s`."""

    def __init__(self, store: Store, interval_s: float = SWEEP_EVERY_S) -> None:
        super().__init__(self.sweep, interval_s, what="purge the trash", at_start=True)
        self.store = store

    async def sweep(self) -> int:
        """Purge now; how many documents went."""
        purged = await self.store.run(library.purge_expired)
        if purged:
            log.info("purged %d documents after %d days in the trash", purged, TRASH_DAYS)
        return purged


routes = [
    Route("/api/search", search, methods=["GET"]),
    Route("/api/tags", list_tags, methods=["GET"]),
    Route("/api/documents/{doc_id}/tags", put_tags, methods=["PUT"]),
    Route("/api/trash", list_trash, methods=["GET"]),
    Route("/api/trash/{doc_id}/restore", restore, methods=["POST"]),
    Route("/api/trash/{doc_id}", delete_forever, methods=["DELETE"]),
]
