"""Notes for suggestions: a document's short brief (audience, tone, facts) that the model reads
before the text. Editors write them through the document API; the suggestion socket reads them."""

from __future__ import annotations

import re

from sqlmodel import Session

from storage.documents import DocumentNotFound, load_document
from storage.models import NOTES_MAX, Document, utcnow

# Line breaks and tabs are part of a brief; other control characters (and lone surrogates, which
# JSON can carry but no database stores) are not.
FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_notes(notes: str) -> str:
    """The notes as stored (line breaks unified, ends trimmed); ValueError saying what is wrong."""
    notes = notes.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(notes) > NOTES_MAX:
        raise ValueError(f"notes: at most {NOTES_MAX} characters")
    if FORBIDDEN.search(notes):
        raise ValueError("notes: control characters are not allowed (line breaks and tabs are)")
    return notes


def set_notes(session: Session, document_id: str, user: str, notes: str) -> None:
    """Store cleaned notes (`clean_notes`); editing rights are checked in `server/`."""
    document = load_document(session, document_id, user)
    if document.notes == notes:
        return
    document.notes = notes
    document.updated_at = utcnow()
    session.add(document)


def notes_of(session: Session, document_id: str) -> str:
    """The document's notes, for the suggestion socket (whose user was admitted already)."""
    document = session.get(Document, document_id)
    if document is None:
        raise DocumentNotFound(document_id)
    return document.notes
