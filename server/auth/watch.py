"""Open sockets end with their session. Sign-out and password changes close them at once, on every
replica (`server.auth.routes`, through the broker); `SessionWatch` finds the sessions that ended elsewhere
(an admin's password reset from the shell, expiry) by checking the open sockets' sessions every few
seconds. Among replicas it also checks their roles, so that a change whose message was lost with a
broker outage still holds within one round.
"""

from __future__ import annotations

from server.periodic import Periodic
from server.sockets import LiveSockets, RoleChanged
from storage import accounts, documents
from storage.database import Store


class SessionWatch(Periodic):
    """Closes, every `interval_s`, the sockets of sessions that no longer exist in the database or
    have expired."""

    def __init__(self, sockets: LiveSockets, store: Store, interval_s: float) -> None:
        super().__init__(self.check, interval_s, what="check the open sockets' sessions")
        self.sockets = sockets
        self.store = store

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
                self.sockets.apply(RoleChanged(document_id, user, role))
