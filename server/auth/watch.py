"""Open sockets end with their session. Sign-out and password changes close them at once, on every
replica (`server.auth`, through the broker); `SessionWatch` finds the sessions that ended elsewhere
(an admin's password reset from the shell, expiry) by checking the open sockets' sessions every few
seconds. Among replicas it also checks their roles, so that a change whose message was lost with a
broker outage still holds within one round.
"""

from __future__ import annotations

import logging
from types import TracebackType

import anyio
from anyio.abc import TaskGroup
from sqlalchemy.exc import SQLAlchemyError

from server.limits import LiveSockets
from storage import accounts, documents
from storage.database import Store

log = logging.getLogger(__name__)


class SessionWatch:
    """An async context manager whose task closes, every `interval_s`, the sockets of sessions that
    no longer exist in the database or have expired."""

    def __init__(self, sockets: LiveSockets, store: Store, interval_s: float) -> None:
        self.sockets = sockets
        self.store = store
        self.interval_s = interval_s
        self._group: TaskGroup | None = None

    async def __aenter__(self) -> SessionWatch:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._watch)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._group is not None
        self._group.cancel_scope.cancel()
        await self._group.__aexit__(None, None, None)
        self._group = None

    async def check(self) -> None:
        """Close the sockets whose session has ended."""
        open_sessions = self.sockets.sessions()
        if not open_sessions:
            return
        alive = await self.store.run(accounts.live_sessions, open_sessions)
        for session in open_sessions - alive:
            await self.sockets.end_session(session)
        if self.sockets.broker.shared:
            roles = await self.store.run(documents.roles_of, self.sockets.memberships())
            for (document_id, user), role in roles.items():
                self.sockets.apply(
                    {"op": "role", "document": document_id, "user": user, "role": role and str(role)}
                )

    async def _watch(self) -> None:
        while True:
            await anyio.sleep(self.interval_s)
            try:
                await self.check()
            except SQLAlchemyError:
                # the database is unavailable for now: the sockets are checked again next time
                log.exception("could not check the open sockets' sessions; will retry")
