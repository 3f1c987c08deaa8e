"""Queries on documents and their revisions."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, or_, select

from storage.models import (
    Document,
    DocumentCreate,
    DocumentRead,
    DocumentSummary,
    Membership,
    Revision,
    RevisionRead,
    Role,
    as_utc,
    utcnow,
)

PREVIEW_CHARS = 160
REVISION_EVERY = timedelta(minutes=1)  # autosaves closer together than this share one revision


class DocumentNotFound(LookupError):
    """No document with that id (or none that this user may see)."""


def role_of(session: Session, document_id: str, username: str) -> Role | None:
    """The user's role in the document; None when it does not exist or they are not a member."""
    document = session.get(Document, document_id)
    if document is None:
        return None
    if document.owner == username:
        return Role.OWNER
    membership = session.get(Membership, (document_id, username))
    return None if membership is None else Role(membership.role)


def roles_of(session: Session, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], Role | None]:
    """`role_of` for each (document id, username)."""
    return {
        (document_id, username): role_of(session, document_id, username) for document_id, username in pairs
    }


def list_documents(session: Session, username: str) -> list[DocumentSummary]:
    """The user's own documents and those shared with them, most recently changed first."""
    shared = select(Membership.document_id).where(Membership.username == username)
    rows = session.exec(
        select(Document)
        .where(or_(Document.owner == username, col(Document.id).in_(shared)))
        .order_by(col(Document.updated_at).desc())
    ).all()
    memberships = {
        m.document_id: Role(m.role)
        for m in session.exec(select(Membership).where(Membership.username == username)).all()
    }
    return [
        DocumentSummary(
            id=d.id,
            title=d.title,
            owner=d.owner,
            role=Role.OWNER if d.owner == username else memberships[d.id],
            created_at=d.created_at,
            updated_at=d.updated_at,
            chars=len(d.text),
            preview=" ".join(d.text[: PREVIEW_CHARS * 2].split())[:PREVIEW_CHARS],
        )
        for d in rows
    ]


def create_document(session: Session, data: DocumentCreate, owner: str) -> DocumentRead:
    document = Document(title=data.title.strip() or "Untitled", owner=owner)
    session.add(document)
    session.flush()
    return _read(document, Role.OWNER)


def load_document(session: Session, document_id: str, user: str) -> Document:
    """The document, if `user` may at least read it; DocumentNotFound otherwise, whichever the
    reason, so that nobody learns which ids exist. Roles beyond reading are checked in `server/`."""
    document = session.get(Document, document_id)
    if document is None or role_of(session, document_id, user) is None:
        raise DocumentNotFound(document_id)
    return document


def get_document(session: Session, document_id: str, user: str) -> DocumentRead:
    role = role_of(session, document_id, user)
    document = session.get(Document, document_id)
    if role is None or document is None:
        raise DocumentNotFound(document_id)
    return _read(document, role)


def rename_document(session: Session, document_id: str, user: str, title: str) -> None:
    """Change the title. The text changes only through the live document (`storage.collab`)."""
    document = load_document(session, document_id, user)
    document.title = title.strip() or document.title
    document.updated_at = utcnow()
    session.add(document)


def _read(document: Document, role: Role) -> DocumentRead:
    return DocumentRead.model_validate({**document.model_dump(), "role": role})


def keep_revision(session: Session, document: Document, reason: str) -> None:
    latest = session.exec(
        select(Revision).where(Revision.document_id == document.id).order_by(col(Revision.id).desc()).limit(1)
    ).first()
    now = utcnow()
    if (
        latest is not None
        and latest.reason == reason == "autosave"
        and now - as_utc(latest.created_at) < REVISION_EVERY
    ):
        latest.text, latest.title = document.text, document.title
        session.add(latest)
        return
    session.add(Revision(document_id=document.id, title=document.title, text=document.text, reason=reason))


def delete_document(session: Session, document_id: str, owner: str) -> None:
    session.delete(load_document(session, document_id, owner))


def list_revisions(session: Session, document_id: str, owner: str) -> list[RevisionRead]:
    load_document(session, document_id, owner)
    rows = session.exec(
        select(Revision).where(Revision.document_id == document_id).order_by(col(Revision.id).desc())
    ).all()
    return [
        RevisionRead(
            id=r.id or 0,
            document_id=r.document_id,
            title=r.title,
            reason=r.reason,
            created_at=r.created_at,
            chars=len(r.text),
        )
        for r in rows
    ]


def revision_text(session: Session, document_id: str, owner: str, revision_id: int) -> str:
    """An earlier revision's text, ready to be made current; the text it replaces is kept first."""
    document = load_document(session, document_id, owner)
    revision = session.get(Revision, revision_id)
    if revision is None or revision.document_id != document_id:
        raise DocumentNotFound(f"{document_id} revision {revision_id}")
    session.add(
        Revision(document_id=document.id, title=document.title, text=document.text, reason="before-restore")
    )
    return revision.text
