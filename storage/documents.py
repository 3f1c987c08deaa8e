"""Queries on documents (their revisions: `storage.versions`)."""

from __future__ import annotations

from sqlmodel import Session, col, func, or_, select

from storage.models import (
    Document,
    DocumentCreate,
    DocumentRead,
    DocumentSummary,
    DocumentTag,
    Membership,
    Role,
    utcnow,
)

PREVIEW_CHARS = 160


class DocumentNotFound(LookupError):
    """No document with that id (or none that this user may see)."""


def role_of(session: Session, document_id: str, username: str) -> Role | None:
    """The user's role in the document; None when it does not exist or they are not a member."""
    document = session.get(Document, document_id)
    if document is None or document.deleted_at is not None:  # in the trash: gone, for everyone
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


def list_documents(
    session: Session, username: str, sort: str = "updated", tag: str | None = None
) -> list[DocumentSummary]:
    """The user's own documents and those shared with them, out of the trash: most recently
    changed first, or by title (`sort="title"`); only those tagged `tag` when given."""
    shared = select(Membership.document_id).where(Membership.username == username)
    query = select(Document).where(
        or_(Document.owner == username, col(Document.id).in_(shared)), col(Document.deleted_at).is_(None)
    )
    if tag is not None:
        query = query.where(
            col(Document.id).in_(select(DocumentTag.document_id).where(DocumentTag.tag == tag))
        )
    if sort == "title":
        query = query.order_by(func.lower(Document.title), col(Document.updated_at).desc())
    else:
        query = query.order_by(col(Document.updated_at).desc())
    rows = session.exec(query).all()
    memberships = {
        m.document_id: Role(m.role)
        for m in session.exec(select(Membership).where(Membership.username == username)).all()
    }
    tags = tags_of(session, [d.id for d in rows])
    return [
        summarize(d, Role.OWNER if d.owner == username else memberships[d.id], tags.get(d.id, []))
        for d in rows
    ]


def summarize(document: Document, role: Role, tags: list[str]) -> DocumentSummary:
    """A document's row in a list."""
    return DocumentSummary(
        id=document.id,
        title=document.title,
        owner=document.owner,
        role=role,
        created_at=document.created_at,
        updated_at=document.updated_at,
        chars=len(document.text),
        preview=" ".join(document.text[: PREVIEW_CHARS * 2].split())[:PREVIEW_CHARS],
        tags=tags,
        deleted_at=document.deleted_at,
    )


def tags_of(session: Session, document_ids: list[str]) -> dict[str, list[str]]:
    """Each document's tags, sorted."""
    found: dict[str, list[str]] = {}
    if not document_ids:
        return found
    rows = session.exec(
        select(DocumentTag)
        .where(col(DocumentTag.document_id).in_(document_ids))
        .order_by(col(DocumentTag.tag))
    ).all()
    for row in rows:
        found.setdefault(row.document_id, []).append(row.tag)
    return found


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
    tags = tags_of(session, [document_id]).get(document_id, [])
    return _read(document, role).model_copy(update={"tags": tags})


def rename_document(session: Session, document_id: str, user: str, title: str) -> None:
    """Change the title. The text changes only through the live document (`storage.collab`)."""
    document = load_document(session, document_id, user)
    document.title = title.strip() or document.title
    document.updated_at = utcnow()
    session.add(document)


def _read(document: Document, role: Role) -> DocumentRead:
    return DocumentRead.model_validate({**document.model_dump(), "role": role})


def delete_document(session: Session, document_id: str, owner: str) -> None:
    """Move the document to the trash (`storage.library` restores, purges, or deletes for ever)."""
    document = load_document(session, document_id, owner)
    document.deleted_at = utcnow()
    session.add(document)
