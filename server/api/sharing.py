"""Sharing a document: its members and their roles, share links, and the page a link opens.

Only the owner changes who may open a document; any member may see who else can. A change reaches
open sockets at once: a member removed is disconnected, one made a viewer stops writing.
"""

from __future__ import annotations

import hashlib
import html
import logging
import secrets
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from server.auth.access import authorize
from server.auth.sessions import Account, signed_in
from server.errors import api_error, read_body
from server.services import services
from storage import documents, sharing
from storage.accounts import UserNotFound
from storage.models import Role, utcnow
from storage.sharing import LinkNotValid

audit = logging.getLogger("cowrite.audit")

LINK_PREFIX = "/s/"


class MemberInvite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    role: Role


class MemberChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class LinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role = Role.VIEWER
    expires_in_days: int | None = Field(default=None, ge=1, le=365)


async def _tell_sockets(request: Request, document_id: str, username: str, role: Role | None) -> None:
    await services(request).sockets.role_changed(document_id, username, role)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# members


async def list_members(request: Request) -> Response:
    document_id = request.path_params["doc_id"]
    await authorize(request, document_id, Role.VIEWER)
    members = await services(request).store.run(sharing.list_members, document_id)
    return JSONResponse({"members": [m.model_dump(mode="json") for m in members]})


async def invite_member(request: Request) -> Response:
    """Add a member by username, or change the role of one already there."""
    document_id = request.path_params["doc_id"]
    account, _ = await authorize(request, document_id, Role.OWNER)
    data = await read_body(request, MemberInvite)
    return await _put_member(request, account, document_id, data.username.strip().lower(), data.role)


async def change_member(request: Request) -> Response:
    document_id, username = request.path_params["doc_id"], request.path_params["username"]
    account, _ = await authorize(request, document_id, Role.OWNER)
    data = await read_body(request, MemberChange)
    members = await services(request).store.run(sharing.list_members, document_id)
    if username not in {m.username for m in members[1:]}:
        return api_error(404, "not_found", "no such member")
    return await _put_member(request, account, document_id, username, data.role)


async def _put_member(
    request: Request, account: Account, document_id: str, username: str, role: Role
) -> Response:
    if role is Role.OWNER:
        return api_error(
            400, "invalid", "role: a document has one owner; invite as editor, commenter or viewer"
        )
    if username == account.username:
        return api_error(400, "invalid", "username: you own this document already")
    try:
        member, created = await services(request).store.run(sharing.put_member, document_id, username, role)
    except UserNotFound:
        return api_error(400, "no_such_user", f"no account is named {username!r}")
    audit.info(
        "member %s doc=%s user=%s role=%s by=%s",
        "added" if created else "changed",
        document_id,
        username,
        role,
        account.username,
    )
    await _tell_sockets(request, document_id, username, role)
    return JSONResponse(member.model_dump(mode="json"), status_code=201 if created else 200)


async def remove_member(request: Request) -> Response:
    """The owner removes a member, or a member leaves."""
    document_id, username = request.path_params["doc_id"], request.path_params["username"]
    account, role = await authorize(request, document_id, Role.VIEWER)
    if username != account.username and role is not Role.OWNER:
        return api_error(403, "forbidden", "only the document's owner can remove other members")
    if role is Role.OWNER and username == account.username:
        return api_error(400, "invalid", "the owner cannot leave; delete the document instead")
    if not await services(request).store.run(sharing.remove_member, document_id, username):
        return api_error(404, "not_found", "no such member")
    audit.info("member removed doc=%s user=%s by=%s", document_id, username, account.username)
    await _tell_sockets(request, document_id, username, None)
    return Response(status_code=204)


# share links


async def list_links(request: Request) -> Response:
    document_id = request.path_params["doc_id"]
    await authorize(request, document_id, Role.OWNER)
    links = await services(request).store.run(sharing.list_links, document_id)
    return JSONResponse({"links": [link.model_dump(mode="json") for link in links]})


async def create_link(request: Request) -> Response:
    document_id = request.path_params["doc_id"]
    account, _ = await authorize(request, document_id, Role.OWNER)
    data = await read_body(request, LinkCreate)
    if data.role is Role.OWNER:
        return api_error(400, "invalid", "role: a link can make editors, commenters or viewers, not owners")
    token = secrets.token_urlsafe(24)
    expires_at = None if data.expires_in_days is None else utcnow() + timedelta(days=data.expires_in_days)
    link = await services(request).store.run(
        sharing.create_link, document_id, token_hash(token), data.role, account.username, expires_at
    )
    audit.info("link created doc=%s link=%s role=%s by=%s", document_id, link.id, data.role, account.username)
    body = {**link.model_dump(mode="json"), "token": token, "url": LINK_PREFIX + token}
    return JSONResponse(body, status_code=201)


async def revoke_link(request: Request) -> Response:
    document_id, link_id = request.path_params["doc_id"], request.path_params["link_id"]
    account, _ = await authorize(request, document_id, Role.OWNER)
    if not await services(request).store.run(sharing.revoke_link, document_id, link_id):
        return api_error(404, "not_found", "no such link")
    audit.info("link revoked doc=%s link=%s by=%s", document_id, link_id, account.username)
    return Response(status_code=204)


# the page a share link opens: shows what it offers; its button joins (a POST, so a stray GET
# from another site cannot make anyone a member of anything)

LINK_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Cowrite</title><link rel="stylesheet" href="/static/app.css"></head>
<body><main class="not-found" data-testid="{testid}">{body}</main></body></html>"""


def _page(title: str, body: str, testid: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        LINK_PAGE.format(title=html.escape(title), body=body, testid=testid), status_code=status
    )


def _invalid_link_page() -> HTMLResponse:
    body = (
        "<h1>This link no longer works</h1><p>It was revoked, it expired, or it never existed. "
        'Ask the document\'s owner for a new one.</p><p><a href="/">Your documents</a></p>'
    )
    return _page("Link not valid", body, "link-invalid", status=404)


async def link_page(request: Request) -> Response:
    token = request.path_params["token"]
    if not isinstance(request.scope.get("user"), Account):
        return RedirectResponse(f"/signin?next={LINK_PREFIX}{token}", status_code=303)
    try:
        link, document = await services(request).store.run(sharing.open_link, token_hash(token))
    except LinkNotValid:
        return _invalid_link_page()
    account = signed_in(request)
    current = await services(request).store.run(documents.role_of, document.id, account.username)
    title = f"<h1>{html.escape(document.title)}</h1>"
    if current is not None and current.allows(Role(link.role)):
        body = (
            f"{title}<p>You already have access to this document as <strong>{current}</strong>.</p>"
            f'<p><a class="button primary" href="/d/{document.id}" data-testid="open">Open document</a></p>'
        )
        return _page(document.title, body, "link-page")
    body = (
        f"{title}<p>{html.escape(document.owner)} shared this document with you as "
        f"<strong>{html.escape(link.role)}</strong>.</p>"
        f'<form method="post"><button class="primary" type="submit" data-testid="join">Open document'
        "</button></form>"
    )
    return _page(document.title, body, "link-page")


async def join_link(request: Request) -> Response:
    account = signed_in(request)
    try:
        document_id, role = await services(request).store.run(
            sharing.join_by_link, token_hash(request.path_params["token"]), account.username
        )
    except LinkNotValid:
        return _invalid_link_page()
    audit.info("joined by link doc=%s user=%s role=%s", document_id, account.username, role)
    await _tell_sockets(request, document_id, account.username, role)
    return RedirectResponse(f"/d/{document_id}", status_code=303)


routes = [
    Route("/api/documents/{doc_id}/members", list_members, methods=["GET"]),
    Route("/api/documents/{doc_id}/members", invite_member, methods=["POST"]),
    Route("/api/documents/{doc_id}/members/{username}", change_member, methods=["PATCH"]),
    Route("/api/documents/{doc_id}/members/{username}", remove_member, methods=["DELETE"]),
    Route("/api/documents/{doc_id}/links", list_links, methods=["GET"]),
    Route("/api/documents/{doc_id}/links", create_link, methods=["POST"]),
    Route("/api/documents/{doc_id}/links/{link_id:int}", revoke_link, methods=["DELETE"]),
    Route("/s/{token}", link_page, methods=["GET"]),
    Route("/s/{token}", join_link, methods=["POST"]),
]
