"""The HTML pages (document list, editor) and the editor's static files."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from server.users import current_user
from storage import documents
from storage.database import Store
from storage.documents import DocumentNotFound

STATIC = Path(__file__).resolve().parent.parent / "editor_ui" / "static"
NOT_FOUND_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Not found · Cowrite</title>
<link rel="stylesheet" href="/static/app.css"></head><body><main class="not-found">
<h1>Document not found</h1><p>It may have been deleted.</p><p><a href="/">Back to your documents</a></p>
</main></body></html>"""


async def document_list(request: Request) -> Response:
    return FileResponse(STATIC / "index.html")


async def editor(request: Request) -> Response:
    store: Store = request.app.state.store
    try:
        await store.run(documents.get_document, request.path_params["doc_id"], current_user(request))
    except DocumentNotFound:
        return HTMLResponse(NOT_FOUND_PAGE, status_code=404)
    return FileResponse(STATIC / "editor.html")


routes: list[BaseRoute] = [
    Route("/", document_list),
    Route("/d/{doc_id}", editor),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]
