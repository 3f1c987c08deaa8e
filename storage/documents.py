"""Queries on documents and their revisions."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from storage.models import (
    Document,
    DocumentCreate,
    DocumentRead,
    DocumentSummary,
    Revision,
    RevisionRead,
    as_utc,
    utcnow,
)

PREVIEW_CHARS = 160
REVISION_EVERY = timedelta(minutes=1)  # autosaves closer together than this share one revision


class DocumentNotFound(LookupError):
    """No document with that id (or none that this user may see)."""


def list_documents(session: Session, owner: str) -> list[DocumentSummary]:
    rows = session.exec(
        select(Document).where(Document.owner == owner).order_by(col(Document.updated_at).desc())
    ).all()
    return [
        DocumentSummary(
            id=d.id,
            title=d.title,
            owner=d.owner,
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
    return DocumentRead.model_validate(document, from_attributes=True)


def load_document(session: Session, document_id: str, owner: str) -> Document:
    document = session.get(Document, document_id)
    if document is None or document.owner != owner:
        raise DocumentNotFound(document_id)
    return document


def get_document(session: Session, document_id: str, owner: str) -> DocumentRead:
    return DocumentRead.model_validate(load_document(session, document_id, owner), from_attributes=True)


def rename_document(session: Session, document_id: str, owner: str, title: str) -> DocumentRead:
    """Change the title. The text changes only through the live document (`storage.collab`)."""
    document = load_document(session, document_id, owner)
    document.title = title.strip() or document.title
    document.updated_at = utcnow()
    session.add(document)
    session.flush()
    return DocumentRead.model_validate(document, from_attributes=True)


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
