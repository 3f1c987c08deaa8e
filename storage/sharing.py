"""Queries on who may open a document: its owner, its members and its share links."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.accounts import UserNotFound
from storage.documents import DocumentNotFound, role_of
from storage.models import (
    Document,
    MemberRead,
    Membership,
    Role,
    ShareLink,
    ShareLinkRead,
    User,
    as_utc,
    utcnow,
)


class LinkNotValid(LookupError):
    """No share link with that token, or it was revoked, or it has expired."""


def list_members(session: Session, document_id: str) -> list[MemberRead]:
    """The owner first, then the members by when they joined."""
    document = session.get(Document, document_id)
    if document is None:
        raise DocumentNotFound(document_id)
    rows = session.exec(
        select(Membership)
        .where(Membership.document_id == document_id)
        .order_by(col(Membership.added_at), col(Membership.username))
    ).all()
    owner = MemberRead(username=document.owner, role=Role.OWNER, added_at=document.created_at)
    return [owner, *(MemberRead(username=m.username, role=Role(m.role), added_at=m.added_at) for m in rows)]


def put_member(session: Session, document_id: str, username: str, role: Role) -> tuple[MemberRead, bool]:
    """Make `username` a member with `role`, or change their role; True when they are new."""
    assert role is not Role.OWNER, "ownership is not handed out as a membership"
    if session.get(User, username) is None:
        raise UserNotFound(username)
    membership = session.get(Membership, (document_id, username))
    created = membership is None
    if membership is None:
        membership = Membership(document_id=document_id, username=username, role=role)
    membership.role = role
    session.add(membership)
    session.flush()
    return MemberRead(username=username, role=role, added_at=membership.added_at), created


def remove_member(session: Session, document_id: str, username: str) -> bool:
    membership = session.get(Membership, (document_id, username))
    if membership is None:
        return False
    session.delete(membership)
    return True


def create_link(
    session: Session,
    document_id: str,
    token_hash: str,
    role: Role,
    created_by: str,
    expires_at: datetime | None,
) -> ShareLinkRead:
    link = ShareLink(
        document_id=document_id,
        token_hash=token_hash,
        role=role,
        created_by=created_by,
        expires_at=expires_at,
    )
    session.add(link)
    session.flush()
    return _link_read(link)


def list_links(session: Session, document_id: str) -> list[ShareLinkRead]:
    rows = session.exec(
        select(ShareLink).where(ShareLink.document_id == document_id).order_by(col(ShareLink.id).desc())
    ).all()
    return [_link_read(link) for link in rows]


def revoke_link(session: Session, document_id: str, link_id: int) -> bool:
    link = session.get(ShareLink, link_id)
    if link is None or link.document_id != document_id:
        return False
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        session.add(link)
    return True


def open_link(session: Session, token_hash: str) -> tuple[ShareLink, Document]:
    """A usable link and its document, or LinkNotValid."""
    link = session.exec(select(ShareLink).where(ShareLink.token_hash == token_hash)).first()
    if link is None or link.revoked_at is not None or _expired(link):
        raise LinkNotValid()
    document = session.get(Document, link.document_id)
    if document is None or document.deleted_at is not None:  # in the trash: links lead nowhere
        raise LinkNotValid()
    return link, document


def join_by_link(session: Session, token_hash: str, username: str) -> tuple[str, Role]:
    """Make the user a member through a link: the document's id and the user's role after joining.
    A link never lowers a role the user already has."""
    link, document = open_link(session, token_hash)
    current = role_of(session, document.id, username)
    offered = Role(link.role)
    if current is not None and current.allows(offered):
        return document.id, current
    put_member(session, document.id, username, offered)
    return document.id, offered


def _expired(link: ShareLink) -> bool:
    return link.expires_at is not None and as_utc(link.expires_at) <= utcnow()


def _link_read(link: ShareLink) -> ShareLinkRead:
    assert link.id is not None
    return ShareLinkRead(
        id=link.id,
        role=Role(link.role),
        created_at=link.created_at,
        expires_at=link.expires_at,
        revoked=link.revoked_at is not None,
        expired=_expired(link),
    )
