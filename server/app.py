"""The Starlette application: its lifespan starts and stops the engine; routes stay thin."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import cast

import anyio
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ExceptionHandler
from starlette.websockets import WebSocket, WebSocketState

from server import datadir, pages
from server.api import comments, documents, exports, imports, library, sharing, versions
from server.auth import routes as auth_routes
from server.auth.access import close_quietly
from server.auth.cookies import CookieSigner, load_secret_key
from server.auth.passwords import PASSWORD_WORKERS
from server.auth.sessions import SessionBackend, SessionMiddleware
from server.auth.watch import SessionWatch
from server.cluster.shared import broker_for, counters_for
from server.collab import socket as collab_socket
from server.collab.rooms import rooms_for
from server.engines import describe, engine_health, engine_limits, remote_engine
from server.errors import (
    DATABASE_DOWN,
    WS_1013_TRY_AGAIN_LATER,
    Forbidden,
    InvalidBody,
    RequestTooLarge,
    Unauthenticated,
    api_error,
    invalid_body,
    not_found,
    unavailable,
)
from server.metrics import Metrics
from server.metrics_listener import listener_for, public_routes
from server.middleware.body_limit import BodyLimit
from server.middleware.headers import SecurityHeaders
from server.middleware.hosts import HostGuard, allowed_hosts
from server.middleware.origin import CsrfGuard
from server.services import Services, services
from server.settings import Settings
from server.suggest import completions
from server.suggest import socket as suggestion_socket
from storage.database import Store, reachable
from storage.documents import DocumentNotFound
from streaming.engine import Engine
from streaming.interface import GenerationEngine
from streaming.loader import LoadedModel, load_model
from streaming.runner import ModelRunner


def create_app(settings: Settings, loaded: LoadedModel | None = None) -> Starlette:
    """The app; `loaded` skips loading the model (the CLI loads it first to report errors plainly).
    With `engine_url` set no model is loaded here: suggestions go to the engine tier."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        metrics = Metrics()
        engine: GenerationEngine
        if settings.engine_url is not None:
            engine = remote_engine(settings, metrics)
            model = engine.model  # filled in as the engine answers
        else:
            loaded_model = loaded
            if loaded_model is None:
                loaded_model = await asyncio.to_thread(
                    load_model, settings.model, settings.device, settings.dtype, settings.model_cache_dir
                )
            model = describe(loaded_model)
            runner = ModelRunner(loaded_model.model)
            engine = Engine(runner, loaded_model.tokenizer, engine_limits(settings), observer=metrics)
        metrics.watch_engine(engine.stats)
        store = Store(settings.database, observer=metrics.store_query)
        broker = broker_for(settings)
        counters = counters_for(settings, broker)
        rooms = rooms_for(settings, store, broker, metrics)
        found = Services(
            settings=settings,
            signer=signer,
            store=store,
            engine=engine,
            metrics=metrics,
            model=model,
            rooms=rooms,
            broker=broker,
            sockets=counters.sockets,
            password_limiter=anyio.CapacityLimiter(PASSWORD_WORKERS),
            signin_limiter=counters.signin,
            signup_limiter=counters.signup,
            suggestion_limiter=counters.suggestions,
        )
        app.state.services = found
        sessions = SessionWatch(found.sockets, store, settings.session_check_s)
        trash = library.TrashSweep(store)  # finding and organising: the trash's 30 days (docs/library.md)
        async with (
            listener_for(settings, metrics),
            store,
            broker,
            counters.sockets,
            engine,
            rooms,
            sessions,
            trash,
        ):
            datadir.protect(settings.data_dir)  # the database and the converted weights exist now
            await engine.warm_up()  # before /healthz answers: no writer meets a cold model
            yield

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *completions.routes,
        *public_routes(settings),
        *auth_routes.routes,
        *imports.routes,  # export and import: before documents' /{doc_id} routes
        *exports.routes,
        *documents.routes,
        *versions.routes,  # version history (docs/history.md)
        *library.routes,  # finding and organising: search, tags, trash
        *sharing.routes,
        *comments.routes,  # comments and the commenter role (docs/security.md)
        *suggestion_socket.routes,
        *collab_socket.routes,
        *pages.routes,
    ]
    signer = CookieSigner(load_secret_key(settings))
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(HostGuard, allowed=allowed_hosts(settings)),
        Middleware(BodyLimit, limit=settings.request_limit_mb << 20),
        Middleware(CsrfGuard),
        Middleware(SessionMiddleware, backend=SessionBackend(signer)),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            Unauthenticated: unauthenticated,
            DocumentNotFound: document_not_found,
            Forbidden: forbidden,
            InvalidBody: invalid_body,
            RequestTooLarge: too_large,
            **{error: cast(ExceptionHandler, database_unavailable) for error in DATABASE_DOWN},
        },
    )
    return app


log = logging.getLogger(__name__)
READY_TIMEOUT_S = 2.0


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/v1/"))


async def unauthenticated(request: Request, exc: Exception) -> Response:
    if _is_api(request):
        return api_error(401, "unauthenticated", "sign in first")
    return await pages.to_sign_in(request)


async def document_not_found(request: Request, exc: Exception) -> Response:
    return not_found() if _is_api(request) else pages.not_found_page()


async def forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Forbidden)
    return api_error(403, "forbidden", exc.message)


async def too_large(request: Request, exc: Exception) -> Response:
    limit = services(request).settings.request_limit_mb
    return api_error(413, "too_large", f"the request body is over {limit} MiB")


async def database_unavailable(conn: Request | WebSocket, exc: Exception) -> Response | None:
    """503 (or for a socket: its handshake denied with 503, or 1013 once accepted) while the
    database cannot be reached; clients try again."""
    log.warning("%s %s: the database is unavailable: %s", conn.scope["type"], conn.url.path, exc)
    if not isinstance(conn, WebSocket):
        return unavailable()
    if conn.application_state == WebSocketState.CONNECTING:
        await conn.send_denial_response(unavailable())
    else:
        await close_quietly(conn, WS_1013_TRY_AGAIN_LATER, "the database is unavailable; try again shortly")
    return None


async def readyz(request: Request) -> JSONResponse:
    """Whether this replica can serve documents, whatever the model's state: 200 when its database
    answers (and Redis, among replicas), 503 with the reasons otherwise. For load balancers' and
    Kubernetes' readiness checks: an engine tier that is down takes suggestions away, not the
    documents (`/healthz` covers the model too)."""
    found = services(request)
    problems: dict[str, str] = {}
    try:
        with anyio.fail_after(READY_TIMEOUT_S):
            await found.store.run(reachable)
    except (SQLAlchemyError, TimeoutError) as exc:
        problems["database"] = str(exc).splitlines()[0] if str(exc) else "it did not answer in time"
    with anyio.move_on_after(READY_TIMEOUT_S) as waited:
        broker = await found.broker.problem()
        if broker is not None:
            problems["redis"] = broker
    if waited.cancelled_caught:
        problems["redis"] = "Redis did not answer in time"
    body = {"status": "ready" if not problems else "unavailable", "problems": problems}
    return JSONResponse(body, status_code=200 if not problems else 503)


async def healthz(request: Request) -> JSONResponse:
    """503 with the reason while the engine cannot serve: its decode loop is down (it restarts by
    itself), or the engine tier (`COWRITE_ENGINE_URL`) does not answer."""
    found = services(request)
    body, serving = await engine_health(found.engine, found.model)
    return JSONResponse(body, status_code=200 if serving else 503)
