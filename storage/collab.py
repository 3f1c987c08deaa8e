"""Queries on the CRDT update log: append, load, compact, and keeping the plain text in step.

The log holds Yjs-format updates in arrival order. Compaction replaces a document's entries with
one snapshot (the merged state) and keeps the text as a revision, so restoring stays possible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from storage.documents import DocumentNotFound
from storage.models import CrdtUpdate, Document, utcnow
from storage.versions import add_authors, keep_version


def append_update(session: Session, document_id: str, data: bytes) -> None:
    """Add one update to the log."""
    session.add(CrdtUpdate(document_id=document_id, data=data))


def count_updates(session: Session, document_id: str) -> int:
    return int(
        session.exec(
            select(func.count()).select_from(CrdtUpdate).where(CrdtUpdate.document_id == document_id)
        ).one()
    )


class StoredLog(NamedTuple):
    updates: list[bytes]  # in order
    text: str  # the stored plain text
    compacted: bool  # the log is one snapshot, written after the text was saved


def load_updates(session: Session, document_id: str) -> StoredLog:
    """The document's log in order, and its stored text (to seed a document that has no log yet).
    Who may open it is decided before, in `server/`."""
    document = session.get(Document, document_id)
    if document is None:
        raise DocumentNotFound(document_id)
    rows = session.exec(
        select(CrdtUpdate.data, CrdtUpdate.snapshot)
        .where(CrdtUpdate.document_id == document_id)
        .order_by(col(CrdtUpdate.id))
    ).all()
    return StoredLog([bytes(data) for data, _ in rows], document.text, len(rows) == 1 and rows[0][1])


def text_may_be_stale(session: Session, document_id: str) -> bool:
    """Whether the log may hold edits the stored text lacks: its newest entry is not a snapshot.
    A room saves the text before it folds the log, so only a crash (or an outage) leaves that."""
    newest = session.exec(
        select(CrdtUpdate.snapshot)
        .where(CrdtUpdate.document_id == document_id)
        .order_by(col(CrdtUpdate.id).desc())
        .limit(1)
    ).first()
    return newest is not None and not newest


def compact(session: Session, document_id: str, snapshot: bytes, upto_id: int | None) -> None:
    """Replace the entries up to `upto_id` (all, if None) by one snapshot of the merged state."""
    statement = delete(CrdtUpdate).where(col(CrdtUpdate.document_id) == document_id)
    if upto_id is not None:
        statement = statement.where(col(CrdtUpdate.id) <= upto_id)
    session.exec(statement)
    session.add(CrdtUpdate(document_id=document_id, data=snapshot, snapshot=True))


def fold(
    session: Session,
    document_id: str,
    merge: Callable[[list[bytes]], tuple[bytes, str]],
    authors: Iterable[str] = (),
) -> None:
    """Replace exactly the entries read here by one snapshot, `merge(their updates)` -> (snapshot,
    its text), and keep that text. For replicas: an entry another one stores meanwhile is not read,
    so it is not deleted either (deleting "up to an id" could drop an entry committed late)."""
    _hold(session, document_id)
    rows = session.exec(
        select(CrdtUpdate.id, CrdtUpdate.data)
        .where(CrdtUpdate.document_id == document_id)
        .order_by(col(CrdtUpdate.id))
    ).all()
    if not rows:
        return
    snapshot, text = merge([bytes(data) for _, data in rows])
    save_text(session, document_id, text, authors=authors)
    session.exec(delete(CrdtUpdate).where(col(CrdtUpdate.id).in_([row_id for row_id, _ in rows])))
    session.add(CrdtUpdate(document_id=document_id, data=snapshot, snapshot=True))


def save_merged_text(
    session: Session, document_id: str, merge: Callable[[list[bytes]], str], authors: Iterable[str] = ()
) -> None:
    """Save `merge(the log's updates)` as the text, holding the document's row meanwhile, so that
    of two replicas saving at once the one that read less cannot write last."""
    _hold(session, document_id)
    rows = session.exec(
        select(CrdtUpdate.data).where(CrdtUpdate.document_id == document_id).order_by(col(CrdtUpdate.id))
    ).all()
    save_text(session, document_id, merge([bytes(data) for data in rows]), authors=authors)


def _hold(session: Session, document_id: str) -> None:
    """Lock the document's row to the end of the transaction (PostgreSQL; SQLite has one writer)."""
    if session.exec(select(Document.id).where(Document.id == document_id).with_for_update()).first() is None:
        raise DocumentNotFound(document_id)


def last_update_id(session: Session, document_id: str) -> int | None:
    return session.exec(select(func.max(CrdtUpdate.id)).where(CrdtUpdate.document_id == document_id)).one()


def save_text(
    session: Session, document_id: str, text: str, reason: str = "autosave", authors: Iterable[str] = ()
) -> None:
    """Keep the plain text of the latest state beside the log, for the list, export and search,
    and as a revision written by `authors` (version history: `storage.versions`)."""
    document = session.get(Document, document_id)
    if document is None:
        return
    if document.text == text:
        # saved already (among replicas, by the lease holder): the newest revision holds their edits
        add_authors(session, document_id, authors)
        return
    document.text = text
    document.version += 1
    document.updated_at = utcnow()
    session.add(document)
    keep_version(session, document, reason, authors)
