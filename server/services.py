"""Everything the routes use, as one typed object built in the app's lifespan (`Services`), and
`services(conn)`, the one way a handler reaches it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

if TYPE_CHECKING:  # the modules below read their services through this one
    import anyio

    from server.auth.cookies import CookieSigner
    from server.cluster.broker import Broker
    from server.collab.rooms import Rooms
    from server.limits import Attempts, Rate
    from server.metrics import Metrics
    from server.settings import Settings
    from server.sockets import LiveSockets
    from storage.database import Store
    from streaming.interface import GenerationEngine, ModelInfo


@dataclass
class Services:
    """The app's long-lived parts; the lifespan enters those that run (store, engine, rooms)."""

    settings: Settings
    signer: CookieSigner
    store: Store
    engine: GenerationEngine  # the model here (`Engine`) or on its own tier (`RemoteEngine`)
    metrics: Metrics  # Prometheus (server/metrics.py)
    model: ModelInfo  # which model, and where it runs
    rooms: Rooms
    broker: Broker  # between replicas (`server.cluster.shared`)
    sockets: LiveSockets
    password_limiter: anyio.CapacityLimiter  # password hashes at once (argon2 is costly)
    signin_limiter: Attempts
    signup_limiter: Attempts
    suggestion_limiter: Rate

    @property
    def model_name(self) -> str:
        return self.model.name


def services(conn: HTTPConnection) -> Services:
    """The running app's services; RuntimeError before its lifespan has started."""
    found = getattr(conn.app.state, "services", None)
    if not isinstance(found, Services):
        raise RuntimeError("the app has not started: serve it (or enter its TestClient) so its lifespan runs")
    return found
