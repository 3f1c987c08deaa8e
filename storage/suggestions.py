"""Queries on the suggestion history."""

from __future__ import annotations

from sqlmodel import Session, col, select, update

from storage.documents import DocumentNotFound, load_document
from storage.models import Outcome, Suggestion, SuggestionCreate, SuggestionRead

HISTORY_LIMIT = 200
# what the writer did with a suggestion: the generation's own end, reported later, never replaces it
FEEDBACK = frozenset({Outcome.ACCEPTED, Outcome.PARTIAL, Outcome.REJECTED, Outcome.TYPED})
# a suggestion in flight, or one that put no text on the screen, is not listed
UNLISTED = (Outcome.PENDING, Outcome.EMPTY, Outcome.BUSY, Outcome.ERROR)


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
    total_ms: float | None,
    tokens: int,
) -> None:
    """The generation's end: its texts, timings and outcome. A suggestion that showed no text is
    `empty`, whatever ended it (not listed); one the writer already acted on keeps that outcome
    (a Tab while it streams comes before the end of the generation it stops)."""
    # one UPDATE each, evaluated as it writes: the writer's feedback may be committed on another
    # worker thread between any read here and this transaction's commit
    this = col(Suggestion.id) == suggestion_id
    found = session.exec(
        update(Suggestion)
        .where(this)
        .values(alternatives=alternatives, ttft_ms=ttft_ms, total_ms=total_ms, tokens=tokens)
    )
    if found.rowcount == 0:
        raise DocumentNotFound(f"suggestion {suggestion_id}")
    if not any(alternatives) and outcome in (Outcome.SHOWN, Outcome.CANCELLED, Outcome.SUPERSEDED):
        outcome = Outcome.EMPTY
    session.exec(
        update(Suggestion).where(this, col(Suggestion.outcome).not_in(FEEDBACK)).values(outcome=outcome)
    )


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
            col(Suggestion.outcome).not_in(UNLISTED),
        )
        .order_by(col(Suggestion.id).desc())
        .limit(HISTORY_LIMIT)
    ).all()
    return [SuggestionRead.model_validate(s, from_attributes=True) for s in rows]
