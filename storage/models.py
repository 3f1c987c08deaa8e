"""Cowrite's tables: accounts and their sessions, documents with their members and share links,
saved revisions, every suggestion's history, and the CRDT update log.

Entities follow SQLModel's split: `XBase` (shared fields), `X` (the table), `XCreate`, `XRead`, `XUpdate`.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import ConfigDict, PlainSerializer
from sqlalchemy import JSON, Column, ForeignKey, Integer, LargeBinary, String, Text
from sqlmodel import Field, SQLModel

TITLE_MAX = 200
TEXT_MAX = 2_000_000
NOTES_MAX = 2_000  # the brief a document gives the model before its text
VERSION_NAME_MAX = 80
TAG_MAX = 32
TAGS_PER_DOCUMENT = 20
COMMENT_MAX = 2_000
QUOTE_MAX = 500  # how much of the commented text a comment keeps, for when that text is gone
ANCHOR_MAX = 512  # a base64 Yjs relative position
LOCAL_USER = "local"  # the owner of documents written before accounts existed
USERNAME_MAX = 32


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; SQLite hands back datetimes without tzinfo, always UTC here."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso_utc(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


# always UTC, and said so (with a Z) when it leaves the server
UTCDateTime = Annotated[datetime, PlainSerializer(_iso_utc, return_type=str, when_used="json")]


def new_id() -> str:
    return uuid.uuid4().hex


class Outcome(enum.StrEnum):
    """What became of a suggestion."""

    PENDING = "pending"  # requested, still generating
    SHOWN = "shown"  # generated and shown; no feedback yet
    ACCEPTED = "accepted"
    PARTIAL = "partial"  # part of it accepted; see accepted_chars
    REJECTED = "rejected"
    # a steadier assistant: the writer typed the suggestion's start themselves, taking nothing with
    # a key (their text, not the model's); or the model produced no text at all (never listed)
    TYPED = "typed"
    EMPTY = "empty"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    BUSY = "busy"
    ERROR = "error"


class Role(enum.StrEnum):
    """What a person may do with a document; each role may do everything the ones below it may."""

    VIEWER = "viewer"  # read the text and its comments, see who is there
    COMMENTER = "commenter"  # and comment, reply, resolve; never change the text
    EDITOR = "editor"  # change the text and title, get suggestions, restore revisions
    OWNER = "owner"  # delete, and decide who else may read or write

    @property
    def rank(self) -> int:
        return ("viewer", "commenter", "editor", "owner").index(self.value)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class User(SQLModel, table=True):
    __tablename__ = "users"

    username: str = Field(sa_column=Column(String(USERNAME_MAX), primary_key=True))
    password_hash: str = Field(sa_column=Column(Text, nullable=False))  # argon2, never the password
    is_admin: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class UserRead(SQLModel):
    username: str
    is_admin: bool


class AuthSession(SQLModel, table=True):
    """A signed-in browser. The cookie carries the id; the table keeps only its SHA-256."""

    __tablename__ = "sessions"

    id_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    username: str = Field(
        sa_column=Column(
            String(USERNAME_MAX), ForeignKey("users.username", ondelete="CASCADE"), index=True, nullable=False
        )
    )
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    address: str = Field(default="", max_length=64)


class DocumentBase(SQLModel):
    title: str = Field(default="Untitled", max_length=TITLE_MAX)


class Document(DocumentBase, table=True):
    __tablename__ = "documents"

    id: str = Field(default_factory=new_id, sa_column=Column(String(32), primary_key=True))
    owner: str = Field(default=LOCAL_USER, index=True, max_length=64)
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    version: int = 0  # bumped on every text change
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)
    notes: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    deleted_at: datetime | None = Field(default=None, index=True)  # in the trash since


class DocumentCreate(DocumentBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    title: str = Field(default="Untitled", min_length=1, max_length=TITLE_MAX)


class DocumentUpdate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    title: str | None = Field(default=None, min_length=1, max_length=TITLE_MAX)
    text: str | None = Field(default=None, max_length=TEXT_MAX)
    notes: str | None = Field(default=None, max_length=NOTES_MAX)


class DocumentRead(DocumentBase):
    id: str
    owner: str
    role: Role = Role.OWNER  # the reader's role
    text: str
    version: int
    created_at: UTCDateTime
    updated_at: UTCDateTime
    notes: str = ""
    tags: list[str] = []
    deleted_at: UTCDateTime | None = None


class DocumentSummary(DocumentBase):
    """A row of the document list: no full text, a preview instead."""

    id: str
    owner: str
    role: Role
    created_at: UTCDateTime
    updated_at: UTCDateTime
    chars: int
    preview: str
    tags: list[str] = []
    deleted_at: UTCDateTime | None = None


class DocumentTag(SQLModel, table=True):
    """A label on a document, shared by everyone who may read it."""

    __tablename__ = "document_tags"

    document_id: str = Field(
        sa_column=Column(String(32), ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    )
    tag: str = Field(sa_column=Column(String(TAG_MAX), primary_key=True, index=True))


class Membership(SQLModel, table=True):
    """Someone other than the owner who may read (viewer) or write (editor) a document."""

    __tablename__ = "memberships"

    document_id: str = Field(
        sa_column=Column(String(32), ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    )
    username: str = Field(
        sa_column=Column(
            String(USERNAME_MAX),
            ForeignKey("users.username", ondelete="CASCADE"),
            primary_key=True,
            index=True,
        )
    )
    role: str = Field(max_length=16)
    added_at: datetime = Field(default_factory=utcnow)


class MemberRead(SQLModel):
    username: str
    role: Role
    added_at: UTCDateTime


class ShareLink(SQLModel, table=True):
    """A link that makes whoever opens it (signed in) a member with `role`; the table keeps the
    token's SHA-256 only, so the token is shown once, when the link is made."""

    __tablename__ = "share_links"

    id: int | None = Field(default=None, primary_key=True)
    document_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("documents.id", ondelete="CASCADE"), index=True, nullable=False
        )
    )
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    role: str = Field(max_length=16)
    created_by: str = Field(max_length=USERNAME_MAX)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class ShareLinkRead(SQLModel):
    id: int
    role: Role
    created_at: UTCDateTime
    expires_at: UTCDateTime | None
    revoked: bool
    expired: bool


class Revision(SQLModel, table=True):
    """A saved copy of a document's text, enough to restore it."""

    __tablename__ = "revisions"

    id: int | None = Field(default=None, primary_key=True)
    document_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("documents.id", ondelete="CASCADE"), index=True, nullable=False
        )
    )
    title: str = Field(max_length=TITLE_MAX)
    text: str = Field(sa_column=Column(Text, nullable=False))
    reason: str = Field(default="autosave", max_length=32)
    created_at: datetime = Field(default_factory=utcnow)
    name: str | None = Field(default=None, max_length=VERSION_NAME_MAX)  # "sent to editor"
    # who wrote in the document between the revision before this one and this one
    authors: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )


class RevisionRead(SQLModel):
    id: int
    document_id: str
    title: str
    reason: str
    created_at: UTCDateTime
    chars: int
    name: str | None = None
    authors: list[str] = []


class Comment(SQLModel, table=True):
    """A comment on a span of a document, or a reply in its thread (`thread_id` is the first
    comment's id). The span is two Yjs relative positions, so it follows edits in every browser."""

    __tablename__ = "comments"

    id: int | None = Field(default=None, primary_key=True)
    document_id: str = Field(
        sa_column=Column(String(32), ForeignKey("documents.id", ondelete="CASCADE"), nullable=False)
    )
    thread_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("comments.id", ondelete="CASCADE"), nullable=True)
    )
    author: str = Field(max_length=USERNAME_MAX)
    body: str = Field(sa_column=Column(Text, nullable=False))
    anchor_start: str = Field(default="", max_length=ANCHOR_MAX)
    anchor_end: str = Field(default="", max_length=ANCHOR_MAX)
    quote: str = Field(default="", max_length=QUOTE_MAX)
    created_at: datetime = Field(default_factory=utcnow)
    edited_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = Field(default=None, max_length=USERNAME_MAX)


class SuggestionBase(SQLModel):
    user: str = Field(max_length=64)
    context_chars: int = 0
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    model: str = Field(max_length=200)
    device: str = Field(max_length=32)


class Suggestion(SuggestionBase, table=True):
    __tablename__ = "suggestions"

    id: int | None = Field(default=None, primary_key=True)
    document_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("documents.id", ondelete="CASCADE"), index=True, nullable=False
        )
    )
    requested_at: datetime = Field(default_factory=utcnow, index=True)
    alternatives: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    outcome: str = Field(default=Outcome.PENDING, max_length=16)
    accepted_chars: int = 0
    alternative: int = 0  # which alternative the feedback is about
    ttft_ms: float | None = None
    total_ms: float | None = None
    tokens: int = 0


class SuggestionCreate(SuggestionBase):
    document_id: str


class SuggestionRead(SuggestionBase):
    id: int
    document_id: str
    requested_at: UTCDateTime
    alternatives: list[str]
    outcome: str
    accepted_chars: int
    alternative: int
    ttft_ms: float | None
    total_ms: float | None
    tokens: int


class CrdtUpdate(SQLModel, table=True):
    """One entry of a document's CRDT update log; a snapshot stands for every entry before it."""

    __tablename__ = "crdt_updates"

    id: int | None = Field(default=None, primary_key=True)
    document_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("documents.id", ondelete="CASCADE"), index=True, nullable=False
        )
    )
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    snapshot: bool = False
    created_at: datetime = Field(default_factory=utcnow)
