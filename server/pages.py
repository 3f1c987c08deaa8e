"""The HTML pages (sign-in, document list, editor) and the editor's static files.

A page asked for without a session redirects to sign-in (to sign-up while no account exists), so
a fresh install's first visit creates the first account.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from server.auth.access import authorize
from server.auth.sessions import signed_in
from server.services import services
from storage import accounts
from storage.models import Role

STATIC = Path(__file__).resolve().parent.parent / "editor_ui" / "static"
NOT_FOUND_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Not found · Cowrite</title>
<link rel="stylesheet" href="/static/app.css"></head><body><main class="not-found" data-testid="not-found">
<h1>Document not found</h1><p>It may have been deleted, or it has not been shared with you.</p>
<p><a href="/">Back to your documents</a></p>
</main></body></html>"""


def not_found_page() -> HTMLResponse:
    return HTMLResponse(NOT_FOUND_PAGE, status_code=404)


async def to_sign_in(conn: HTTPConnection) -> Response:
    """Where a visitor without a session goes: sign-up on a server with no accounts yet."""
    store = services(conn).store
    first_run = await store.run(accounts.count_users) == 0
    here = conn.url.path + (f"?{conn.url.query}" if conn.url.query else "")
    page = "/signup" if first_run else "/signin"
    return RedirectResponse(f"{page}?next={quote(here, safe='/')}", status_code=303)


# a page depends on who is signed in: never reuse one from the browser's cache (after signing out,
# a cached list would skip the server's redirect to sign-in)
NO_STORE = {"cache-control": "no-store"}


async def document_list(request: Request) -> Response:
    signed_in(request)
    return FileResponse(STATIC / "index.html", headers=NO_STORE)


async def editor(request: Request) -> Response:
    await authorize(request, request.path_params["doc_id"], Role.VIEWER)
    return FileResponse(STATIC / "editor.html", headers=NO_STORE)


async def auth_page(request: Request) -> Response:
    return FileResponse(STATIC / "auth.html", headers=NO_STORE)


routes: list[BaseRoute] = [
    Route("/", document_list),
    Route("/d/{doc_id}", editor),
    Route("/signin", auth_page),
    Route("/signup", auth_page),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]
