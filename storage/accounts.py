"""Queries on accounts and sign-in sessions. Passwords arrive here already hashed (`server.auth`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import LOCAL_USER, AuthSession, Document, User, UserRead, as_utc, utcnow


class UsernameTaken(ValueError):
    """An account with that username exists already."""


class UserNotFound(LookupError):
    """No account with that username."""


def count_users(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(User)).one())


def create_user(session: Session, username: str, password_hash: str, is_admin: bool = False) -> UserRead:
    """A new account. The first account ever made is an admin and adopts the documents written
    before accounts existed, so upgrading an older data folder loses nothing."""
    first = count_users(session) == 0
    user = User(username=username, password_hash=password_hash, is_admin=is_admin or first)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # the name's row exists: made before, or by a sign-up racing this one
        raise UsernameTaken(username) from None
    if first:
        session.exec(update(Document).where(col(Document.owner) == LOCAL_USER).values(owner=username))
    return UserRead(username=user.username, is_admin=user.is_admin)


def get_user(session: Session, username: str) -> User | None:
    return session.get(User, username)


def list_users(session: Session) -> list[UserRead]:
    rows = session.exec(select(User).order_by(col(User.username))).all()
    return [UserRead(username=u.username, is_admin=u.is_admin) for u in rows]


def set_password_hash(session: Session, username: str, password_hash: str) -> None:
    """Change a password and end every session of that account."""
    user = session.get(User, username)
    if user is None:
        raise UserNotFound(username)
    user.password_hash = password_hash
    session.add(user)
    session.exec(delete(AuthSession).where(col(AuthSession.username) == username))


def start_session(
    session: Session, id_hash: str, username: str, expires_at: datetime, address: str, replaces: str | None
) -> None:
    """Record a new session; the one it `replaces` (the browser's previous id), if any, ends."""
    if replaces is not None:
        session.exec(delete(AuthSession).where(col(AuthSession.id_hash) == replaces))
    session.add(AuthSession(id_hash=id_hash, username=username, expires_at=expires_at, address=address[:64]))


def session_user(session: Session, id_hash: str) -> UserRead | None:
    """The account a live session belongs to; None for an unknown or expired one."""
    found = session.get(AuthSession, id_hash)
    if found is None:
        return None
    if as_utc(found.expires_at) <= utcnow():
        session.delete(found)
        return None
    user = session.get(User, found.username)
    return None if user is None else UserRead(username=user.username, is_admin=user.is_admin)


SESSIONS_PER_QUERY = 500  # well under every database's limit on bound parameters


def live_sessions(session: Session, id_hashes: set[str]) -> set[str]:
    """Those of `id_hashes` that are still sessions (not ended, not expired)."""
    now = utcnow()
    wanted = sorted(id_hashes)
    alive: set[str] = set()
    for start in range(0, len(wanted), SESSIONS_PER_QUERY):
        chunk = wanted[start : start + SESSIONS_PER_QUERY]
        rows = session.exec(
            select(AuthSession.id_hash, AuthSession.expires_at).where(col(AuthSession.id_hash).in_(chunk))
        ).all()
        alive.update(id_hash for id_hash, expires_at in rows if as_utc(expires_at) > now)
    return alive


def end_session(session: Session, id_hash: str) -> None:
    session.exec(delete(AuthSession).where(col(AuthSession.id_hash) == id_hash))
