"""Queries on the suggestion history."""

from __future__ import annotations

from sqlmodel import Session, col, select

from storage.documents import DocumentNotFound, load_document
from storage.models import Outcome, Suggestion, SuggestionCreate, SuggestionRead

HISTORY_LIMIT = 200


def record_request(session: Session, data: SuggestionCreate) -> int:
    """Store a new suggestion as pending; returns its id."""
    suggestion = Suggestion.model_validate(data)
    session.add(suggestion)
    session.flush()
    assert suggestion.id is not None
    return suggestion.id


def record_result(
    session: Session,
    suggestion_id: int,
    outcome: Outcome,
    alternatives: list[str],
    ttft_ms: float | None,
    total_ms: float,
    tokens: int,
) -> None:
    suggestion = session.get(Suggestion, suggestion_id)
    if suggestion is None:
        raise DocumentNotFound(f"suggestion {suggestion_id}")
    if outcome is Outcome.SHOWN and not any(alternatives):
        outcome = Outcome.EMPTY  # nothing reached the screen: not "shown", and not listed
    suggestion.outcome = outcome
    suggestion.alternatives = alternatives
    suggestion.ttft_ms, suggestion.total_ms, suggestion.tokens = ttft_ms, total_ms, tokens
    session.add(suggestion)


def record_feedback(
    session: Session, suggestion_id: int, outcome: Outcome, accepted_chars: int, alternative: int
) -> None:
    suggestion = session.get(Suggestion, suggestion_id)
    if suggestion is None:
        raise DocumentNotFound(f"suggestion {suggestion_id}")
    suggestion.outcome = outcome
    suggestion.accepted_chars, suggestion.alternative = accepted_chars, alternative
    session.add(suggestion)


def list_suggestions(session: Session, document_id: str, user: str) -> list[SuggestionRead]:
    """The user's own suggestions in a document: until accepted, a suggestion is private."""
    load_document(session, document_id, user)
    rows = session.exec(
        select(Suggestion)
        .where(
            Suggestion.document_id == document_id,
            Suggestion.user == user,
            Suggestion.outcome != Outcome.EMPTY,
        )
        .order_by(col(Suggestion.id).desc())
        .limit(HISTORY_LIMIT)
    ).all()
    return [SuggestionRead.model_validate(s, from_attributes=True) for s in rows]
