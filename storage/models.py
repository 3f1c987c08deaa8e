"""Cowrite's tables: documents, their saved revisions, and every suggestion's history.

Entities follow SQLModel's split: `XBase` (shared fields), `X` (the table), `XCreate`, `XRead`, `XUpdate`.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import ConfigDict, PlainSerializer
from sqlalchemy import JSON, Column, ForeignKey, LargeBinary, String, Text
from sqlmodel import Field, SQLModel

TITLE_MAX = 200
TEXT_MAX = 2_000_000
LOCAL_USER = "local"


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
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    BUSY = "busy"
    ERROR = "error"


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


class DocumentCreate(DocumentBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    title: str = Field(default="Untitled", min_length=1, max_length=TITLE_MAX)


class DocumentUpdate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    title: str | None = Field(default=None, min_length=1, max_length=TITLE_MAX)
    text: str | None = Field(default=None, max_length=TEXT_MAX)


class DocumentRead(DocumentBase):
    id: str
    owner: str
    text: str
    version: int
    created_at: UTCDateTime
    updated_at: UTCDateTime


class DocumentSummary(DocumentBase):
    """A row of the document list: no full text, a preview instead."""

    id: str
    owner: str
    created_at: UTCDateTime
    updated_at: UTCDateTime
    chars: int
    preview: str


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


class RevisionRead(SQLModel):
    id: int
    document_id: str
    title: str
    reason: str
    created_at: UTCDateTime
    chars: int


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
