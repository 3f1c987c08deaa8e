"""Version history: the revisions kept of a document's text, who wrote in each, and their names.

Autosaves within a minute of each other share one revision; a named one is never merged into.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import timedelta

from sqlmodel import Session, col, select

from storage.documents import load_document
from storage.models import VERSION_NAME_MAX, Document, Revision, RevisionRead, as_utc, utcnow

REVISION_EVERY = timedelta(minutes=1)  # autosaves closer together than this share one revision
AUTOSAVE = "autosave"
NAMED = "named"  # saved on purpose, with a name
BEFORE_RESTORE = "before-restore"  # the text a restore replaced


class VersionNotFound(LookupError):
    """No revision with that id in that document."""


class VersionText(RevisionRead):
    text: str


def clean_name(raw: object) -> str:
    """A version's name, trimmed; ValueError saying what is wrong otherwise."""
    if not isinstance(raw, str):
        raise ValueError("name: must be a string")
    name = raw.strip()
    if not name:
        raise ValueError("name: must not be empty")
    if len(name) > VERSION_NAME_MAX:
        raise ValueError(f"name: at most {VERSION_NAME_MAX} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise ValueError("name: no control characters or line breaks")
    return name


def keep_version(session: Session, document: Document, reason: str, authors: Iterable[str] = ()) -> None:
    """Keep the document's text as a revision written by `authors`: an autosave within a minute of
    an unnamed autosave replaces it (and adds its authors), so a session of typing is one version."""
    latest = _newest(session, document.id)
    now = utcnow()
    if (
        latest is not None
        and latest.reason == reason == AUTOSAVE
        and latest.name is None
        and now - as_utc(latest.created_at) < REVISION_EVERY
    ):
        latest.text, latest.title = document.text, document.title
        latest.authors = _union(latest.authors, authors)
        session.add(latest)
        return
    session.add(
        Revision(
            document_id=document.id,
            title=document.title,
            text=document.text,
            reason=reason,
            authors=_union([], authors),
        )
    )


def add_authors(session: Session, document_id: str, authors: Iterable[str]) -> None:
    """Add writers to the newest revision: among replicas, one that does not save the text hands
    over the names of those who wrote through it this way (docs/history.md)."""
    latest = _newest(session, document_id)
    if latest is None:
        return
    merged = _union(latest.authors, authors)
    if merged != latest.authors:
        latest.authors = merged
        session.add(latest)


def list_versions(session: Session, document_id: str, user: str) -> list[RevisionRead]:
    """The document's revisions, newest first."""
    load_document(session, document_id, user)
    rows = session.exec(
        select(Revision).where(Revision.document_id == document_id).order_by(col(Revision.id).desc())
    ).all()
    return [_read(r) for r in rows]


def get_version(session: Session, document_id: str, user: str, revision_id: int) -> VersionText:
    """One revision with its text."""
    load_document(session, document_id, user)
    revision = _revision(session, document_id, revision_id)
    return VersionText(**_read(revision).model_dump(), text=revision.text)


def save_version(
    session: Session, document_id: str, user: str, name: str | None, reason: str
) -> RevisionRead:
    """Keep the stored text (saved from the live document just before) as a version of its own:
    named, or the text a restore is about to replace. Naming the newest revision, when it holds
    this very text and has no name yet, does instead of a copy."""
    document = load_document(session, document_id, user)
    latest = _newest(session, document_id)
    if name is not None and latest is not None and latest.name is None and latest.text == document.text:
        latest.name = name
        session.add(latest)
        session.flush()
        return _read(latest)
    revision = Revision(
        document_id=document.id, title=document.title, text=document.text, reason=reason, name=name
    )
    session.add(revision)
    session.flush()
    return _read(revision)


def name_version(
    session: Session, document_id: str, user: str, revision_id: int, name: str | None
) -> RevisionRead:
    """Name, rename or (with None) unname a revision."""
    load_document(session, document_id, user)
    revision = _revision(session, document_id, revision_id)
    revision.name = name
    session.add(revision)
    session.flush()
    return _read(revision)


def text_to_restore(session: Session, document_id: str, user: str, revision_id: int) -> str:
    """An earlier revision's text, ready to be made current; the text it replaces is kept first."""
    document = load_document(session, document_id, user)
    revision = _revision(session, document_id, revision_id)
    session.add(
        Revision(document_id=document.id, title=document.title, text=document.text, reason=BEFORE_RESTORE)
    )
    return revision.text


def _revision(session: Session, document_id: str, revision_id: int) -> Revision:
    revision = session.get(Revision, revision_id)
    if revision is None or revision.document_id != document_id:
        raise VersionNotFound(f"{document_id} revision {revision_id}")
    return revision


def _newest(session: Session, document_id: str) -> Revision | None:
    return session.exec(
        select(Revision).where(Revision.document_id == document_id).order_by(col(Revision.id).desc()).limit(1)
    ).first()


def _union(known: list[str], more: Iterable[str]) -> list[str]:
    """`known` and then the names in `more` it lacks, in order: a new list (the JSON column is
    only written back when the attribute is given a new object)."""
    merged = list(known)
    for name in more:
        if name not in merged:
            merged.append(name)
    return merged


def _read(revision: Revision) -> RevisionRead:
    return RevisionRead(
        id=revision.id or 0,
        document_id=revision.document_id,
        title=revision.title,
        reason=revision.reason,
        created_at=revision.created_at,
        chars=len(revision.text),
        name=revision.name,
        authors=list(revision.authors),
    )
