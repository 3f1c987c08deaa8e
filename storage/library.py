"""Finding and organising documents: full-text search (SQLite FTS5, or PostgreSQL full-text), tags,
and the trash (a deleted document is kept `TRASH_DAYS`, then purged). See docs/library.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Float, String, text
from sqlmodel import Session, SQLModel, col, func, or_, select

from storage.documents import DocumentNotFound, load_document, summarize
from storage.models import (
    TAG_MAX,
    TAGS_PER_DOCUMENT,
    Document,
    DocumentSummary,
    DocumentTag,
    Membership,
    Role,
    UTCDateTime,
    as_utc,
    utcnow,
)

SEARCH_MAX = 200  # characters of a query
SEARCH_TERMS = 16  # words of a query that count; the rest are ignored
SEARCH_LIMIT = 50  # results one search may ask for
TRASH_DAYS = 30
# the snippet's highlights are wrapped in these (Unicode private use) characters, never in HTML:
# the page turns them into <mark> elements around text nodes
MARK_START = "\ue000"
MARK_END = "\ue001"
SNIPPET_WORDS = 16
_WORD = re.compile(r"[^\W_]+")  # letters and digits: what both engines index as words
_TAG = re.compile(r"[\w\- ]+")


class SearchQueryInvalid(ValueError):
    """A search query too long to run."""


class TagInvalid(ValueError):
    """A tag that is empty, too long, has characters tags may not have, or one too many."""


class SearchHit(SQLModel):
    id: str
    title: str
    owner: str
    role: Role
    updated_at: UTCDateTime
    snippet: str  # highlights between MARK_START and MARK_END
    rank: float  # higher is better; comparable within one search only


class TagCount(SQLModel):
    tag: str
    count: int


def search_terms(query: str) -> list[str]:
    """The words of a query, lower-cased: every one must appear, the last may be a word's start.
    Punctuation and search operators (`"`, `*`, `-`, NEAR, AND...) are plain text, never syntax."""
    if len(query) > SEARCH_MAX:
        raise SearchQueryInvalid(f"a search is at most {SEARCH_MAX} characters")
    return [word.lower() for word in _WORD.findall(query)][:SEARCH_TERMS]


def search(session: Session, username: str, query: str, limit: int = 20) -> list[SearchHit]:
    """Documents the user may read, out of the trash, whose title or text has every word of
    `query`; best first, each with a snippet of its text around the words."""
    terms = search_terms(query)
    if not terms:
        return []
    limit = max(1, min(limit, SEARCH_LIMIT))
    if session.get_bind().dialect.name == "postgresql":
        rows = _search_postgres(session, username, terms, limit)
    else:
        rows = _search_sqlite(session, username, terms, limit)
    return [
        SearchHit(
            id=row.id,
            title=row.title,
            owner=row.owner,
            role=Role.OWNER if row.owner == username else Role(row.role),
            updated_at=as_utc(row.updated_at),
            snippet=row.snippet or "",
            rank=float(row.rank),
        )
        for row in rows
    ]


# documents :user may read, out of the trash; `m.role` is their role when they are a member
_MEMBER = "LEFT JOIN memberships m ON m.document_id = d.id AND m.username = :user"
_READABLE = "d.deleted_at IS NULL AND (d.owner = :user OR m.username IS NOT NULL)"
# the columns both searches answer, typed so that SQLite's stored times come back as datetimes
_HIT_COLUMNS = {
    "id": String,
    "title": String,
    "owner": String,
    "updated_at": DateTime,
    "role": String,
    "snippet": String,
    "rank": Float,
}


def _search_sqlite(session: Session, username: str, terms: list[str], limit: int) -> Sequence[Any]:
    # each word quoted (an FTS5 string: no operator inside one), the last one a prefix
    match = " ".join(f'"{t}"' for t in terms) + "*"
    sql = text(
        "SELECT d.id, d.title, d.owner, d.updated_at, m.role, "
        f"snippet(documents_fts, 2, :start, :end, '…', {SNIPPET_WORDS}) AS snippet, "
        "-bm25(documents_fts, 0.0, 4.0, 1.0) AS rank "  # bm25 is lower for better: turned round
        f"FROM documents_fts JOIN documents d ON d.id = documents_fts.id {_MEMBER} "
        f"WHERE {_READABLE} AND documents_fts MATCH :match "
        "ORDER BY rank DESC, d.updated_at DESC LIMIT :limit"
    ).columns(**_HIT_COLUMNS)
    params = {"user": username, "match": match, "start": MARK_START, "end": MARK_END, "limit": limit}
    return session.connection().execute(sql, params).all()


def _search_postgres(session: Session, username: str, terms: list[str], limit: int) -> Sequence[Any]:
    # letters and digits only reach to_tsquery, so nothing in them is its syntax
    tsquery = " & ".join(terms) + ":*"
    options = (
        f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords={SNIPPET_WORDS}, MinWords=6, '
        'ShortWord=1, MaxFragments=1, FragmentDelimiter=" … "'
    )
    # the WHERE repeats the GIN index's expression (migration 0006) so that the index is used
    sql = text(
        "SELECT d.id, d.title, d.owner, d.updated_at, m.role, "
        "ts_headline('simple', d.text, q, :options) AS snippet, "
        "ts_rank(setweight(to_tsvector('simple', d.title), 'A') || "
        "setweight(to_tsvector('simple', d.text), 'D'), q) AS rank "
        f"FROM documents d {_MEMBER} CROSS JOIN to_tsquery('simple', :tsquery) q "
        f"WHERE {_READABLE} AND to_tsvector('simple', d.title || ' ' || d.text) @@ q "
        "ORDER BY rank DESC, d.updated_at DESC LIMIT :limit"
    ).columns(**_HIT_COLUMNS)
    params = {"user": username, "tsquery": tsquery, "options": options, "limit": limit}
    return session.connection().execute(sql, params).all()


def normalize_tags(raw: Iterable[object]) -> list[str]:
    """Tags as stored: trimmed, lower-cased, inner spaces collapsed, no repeats, in the order
    given. TagInvalid names the first that cannot be a tag."""
    tags: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            raise TagInvalid("each tag must be a string")
        tag = " ".join(item.split()).lower()
        if not tag:
            raise TagInvalid("a tag cannot be empty")
        if len(tag) > TAG_MAX:
            raise TagInvalid(f"a tag is at most {TAG_MAX} characters: {tag[:TAG_MAX]}…")
        if not _TAG.fullmatch(tag):
            raise TagInvalid(f"tags have letters, digits, spaces, - and _ only: {tag!r}")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > TAGS_PER_DOCUMENT:
        raise TagInvalid(f"a document has at most {TAGS_PER_DOCUMENT} tags")
    return tags


def set_tags(session: Session, document_id: str, username: str, tags: list[str]) -> list[str]:
    """Replace the document's tags (already normalized; who may is checked in `server/`)."""
    load_document(session, document_id, username)
    for old in session.exec(select(DocumentTag).where(DocumentTag.document_id == document_id)).all():
        session.delete(old)
    session.flush()
    for tag in tags:
        session.add(DocumentTag(document_id=document_id, tag=tag))
    return sorted(tags)


def list_tags(session: Session, username: str) -> list[TagCount]:
    """The tags on documents the user may read (out of the trash), each with how many carry it."""
    shared = select(Membership.document_id).where(Membership.username == username)
    rows = session.exec(
        select(DocumentTag.tag, func.count())
        .join(Document, col(Document.id) == DocumentTag.document_id)
        .where(col(Document.deleted_at).is_(None))
        .where(or_(Document.owner == username, col(Document.id).in_(shared)))
        .group_by(DocumentTag.tag)
        .order_by(DocumentTag.tag)
    ).all()
    return [TagCount(tag=tag, count=count) for tag, count in rows]


def list_trash(session: Session, owner: str) -> list[DocumentSummary]:
    """The owner's documents in the trash, most recently deleted first."""
    cutoff = utcnow() - timedelta(days=TRASH_DAYS)
    rows = session.exec(
        select(Document)
        .where(Document.owner == owner, col(Document.deleted_at).is_not(None))
        .where(col(Document.deleted_at) > cutoff)
        .order_by(col(Document.deleted_at).desc())
    ).all()
    return [summarize(d, Role.OWNER, []) for d in rows]


def restore(session: Session, document_id: str, owner: str) -> None:
    """Take the owner's document out of the trash."""
    document = _trashed(session, document_id, owner)
    document.deleted_at = None
    session.add(document)


def delete_forever(session: Session, document_id: str, owner: str) -> None:
    """Delete a document in the owner's trash, with everything that belongs to it."""
    session.delete(_trashed(session, document_id, owner))


def purge_expired(session: Session, now: datetime | None = None) -> int:
    """Delete every document that has been in the trash longer than TRASH_DAYS; how many."""
    cutoff = (now or utcnow()) - timedelta(days=TRASH_DAYS)
    expired = session.exec(
        select(Document).where(col(Document.deleted_at).is_not(None), col(Document.deleted_at) <= cutoff)
    ).all()
    for document in expired:
        session.delete(document)
    return len(expired)


def _trashed(session: Session, document_id: str, owner: str) -> Document:
    """The owner's document if it is in the trash; DocumentNotFound for anyone else, or when not."""
    document = session.get(Document, document_id)
    if document is None or document.owner != owner or document.deleted_at is None:
        raise DocumentNotFound(document_id)
    return document
