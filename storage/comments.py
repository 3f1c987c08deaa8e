"""Queries on a document's comments: threads anchored to a span of its text, their replies, and
resolving, editing and deleting them. Every input is checked here, whoever calls.
"""

from __future__ import annotations

import base64
import binascii
import re

from sqlmodel import Session, SQLModel, col, delete, func, select

from storage.models import (
    ANCHOR_MAX,
    COMMENT_MAX,
    QUOTE_MAX,
    Comment,
    Document,
    UTCDateTime,
    utcnow,
)

COMMENTS_PER_DOCUMENT = 2_000  # threads and replies together
REPLIES_PER_THREAD = 200

# anything below a space but newline and tab, and DEL: they have no place in prose and some
# (NUL) are refused by PostgreSQL's text columns
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class CommentNotFound(LookupError):
    """No comment with that id in that document."""


class CommentInvalid(ValueError):
    """A body, anchor, quote or thread that cannot be stored; the message says which and why."""


class CommentLimit(ValueError):
    """The document (or the thread) holds as many comments as it may."""


class NotYours(PermissionError):
    """Only a comment's author changes its words; only its author or the owner deletes it."""


class CommentRead(SQLModel):
    id: int
    thread_id: int | None
    author: str
    body: str
    created_at: UTCDateTime
    edited_at: UTCDateTime | None


class ThreadRead(CommentRead):
    """A thread's first comment: the span it is anchored to, whether it is resolved, its replies."""

    anchor_start: str
    anchor_end: str
    quote: str
    resolved_at: UTCDateTime | None
    resolved_by: str | None
    replies: list[CommentRead] = []


def clean_body(body: str) -> str:
    """The body trimmed; CommentInvalid when it is empty, too long or holds control characters."""
    body = body.strip()
    if not body:
        raise CommentInvalid("body: write something first")
    if len(body) > COMMENT_MAX:
        raise CommentInvalid(f"body: at most {COMMENT_MAX} characters")
    if _CONTROL.search(body):
        raise CommentInvalid("body: control characters are not allowed")
    return body


def check_anchor(name: str, anchor: str) -> str:
    """A Yjs relative position as base64: CommentInvalid unless it is that, and short enough."""
    if not anchor or len(anchor) > ANCHOR_MAX:
        raise CommentInvalid(f"{name}: a base64 relative position of 1 to {ANCHOR_MAX} characters")
    try:
        base64.b64decode(anchor, validate=True)
    except (binascii.Error, ValueError):
        raise CommentInvalid(f"{name}: not base64") from None
    return anchor


def check_quote(quote: str) -> str:
    if len(quote) > QUOTE_MAX:
        raise CommentInvalid(f"quote: at most {QUOTE_MAX} characters")
    if "\x00" in quote:
        raise CommentInvalid("quote: NUL characters are not allowed")
    return quote


def list_threads(session: Session, document_id: str) -> list[ThreadRead]:
    """The document's threads, oldest first, each with its replies oldest first (the page orders
    them by where their text is, which only the shared document knows)."""
    rows = session.exec(
        select(Comment).where(Comment.document_id == document_id).order_by(col(Comment.id))
    ).all()
    threads: dict[int, ThreadRead] = {}
    for row in rows:
        assert row.id is not None
        if row.thread_id is None:
            threads[row.id] = ThreadRead.model_validate(row.model_dump())
        elif row.thread_id in threads:
            threads[row.thread_id].replies.append(CommentRead.model_validate(row.model_dump()))
    return list(threads.values())


def add_thread(
    session: Session, document_id: str, author: str, body: str, anchor_start: str, anchor_end: str, quote: str
) -> ThreadRead:
    """A new thread on the span between two anchors; `quote` is the text it covered."""
    comment = Comment(
        document_id=document_id,
        author=author,
        body=clean_body(body),
        anchor_start=check_anchor("anchor_start", anchor_start),
        anchor_end=check_anchor("anchor_end", anchor_end),
        quote=check_quote(quote),
    )
    _check_room(session, document_id)
    session.add(comment)
    session.flush()
    return ThreadRead.model_validate(comment.model_dump())


def add_reply(session: Session, document_id: str, thread_id: int, author: str, body: str) -> CommentRead:
    body = clean_body(body)
    first = _first(session, document_id, thread_id)
    _check_room(session, document_id)
    replies = session.exec(
        select(func.count()).select_from(Comment).where(Comment.thread_id == thread_id)
    ).one()
    if replies >= REPLIES_PER_THREAD:
        raise CommentLimit(f"a thread holds at most {REPLIES_PER_THREAD} replies")
    reply = Comment(document_id=document_id, thread_id=first.id, author=author, body=body)
    session.add(reply)
    session.flush()
    return CommentRead.model_validate(reply.model_dump())


def edit_body(session: Session, document_id: str, comment_id: int, author: str, body: str) -> CommentRead:
    """The author rewrites their comment."""
    body = clean_body(body)
    comment = _get(session, document_id, comment_id)
    if comment.author != author:
        raise NotYours("only its author can change a comment")
    comment.body = body
    comment.edited_at = utcnow()
    session.add(comment)
    session.flush()
    return CommentRead.model_validate(comment.model_dump())


def set_resolved(session: Session, document_id: str, comment_id: int, by: str, resolved: bool) -> ThreadRead:
    """Resolve (or reopen) the thread `comment_id` is part of; its first comment keeps who and when."""
    comment = _get(session, document_id, comment_id)
    first = comment if comment.thread_id is None else _first(session, document_id, comment.thread_id)
    if resolved and first.resolved_at is None:
        first.resolved_at, first.resolved_by = utcnow(), by
    elif not resolved:
        first.resolved_at, first.resolved_by = None, None
    session.add(first)
    session.flush()
    return ThreadRead.model_validate(first.model_dump())


def delete_comment(session: Session, document_id: str, comment_id: int, user: str, is_owner: bool) -> None:
    """Delete a comment (its author, or the document's owner); a thread's first comment takes the
    whole thread with it."""
    comment = _get(session, document_id, comment_id)
    if comment.author != user and not is_owner:
        raise NotYours("only its author or the document's owner can delete a comment")
    if comment.thread_id is None:
        session.exec(delete(Comment).where(col(Comment.thread_id) == comment_id))
    session.delete(comment)
    session.flush()


def _get(session: Session, document_id: str, comment_id: int) -> Comment:
    comment = session.get(Comment, comment_id)
    if comment is None or comment.document_id != document_id:
        raise CommentNotFound(comment_id)
    return comment


def _first(session: Session, document_id: str, thread_id: int) -> Comment:
    first = session.get(Comment, thread_id)
    if first is None or first.document_id != document_id:
        raise CommentNotFound(thread_id)
    if first.thread_id is not None:
        raise CommentInvalid("thread_id: reply to a thread's first comment")
    return first


def _check_room(session: Session, document_id: str) -> None:
    if session.get(Document, document_id) is None:
        raise CommentNotFound(document_id)
    count = session.exec(
        select(func.count()).select_from(Comment).where(Comment.document_id == document_id)
    ).one()
    if count >= COMMENTS_PER_DOCUMENT:
        raise CommentLimit(f"a document holds at most {COMMENTS_PER_DOCUMENT} comments")
