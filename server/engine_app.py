"""`cowrite serve-engine`: the model alone, for web replicas elsewhere (`COWRITE_ENGINE_URL`).

`/v1/completions`, `/v1/models` and `/v1/sessions/close` answer only to the bearer token the
replicas share (`COWRITE_ENGINE_TOKEN`); under it, Cowrite's fields of a request (`owner`, `heal`,
`prefix`) are honoured. `/healthz` is open, like the web app's. Its metrics are the web app's
engine metrics, on `COWRITE_METRICS_PORT` (and `/metrics` here with `COWRITE_METRICS_TOKEN`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server import datadir
from server.engines import describe, engine_health, engine_limits
from server.errors import RequestTooLarge, api_error
from server.metrics import Metrics
from server.metrics_listener import PATH, bearer_matches, listener_for, scrape
from server.middleware.body_limit import BodyLimit
from server.settings import Settings, SettingsError
from server.suggest.openai_api import (
    MAX_USER_CHARS,
    CompletionBody,
    complete,
    error_response,
    model_list,
    to_engine,
)
from streaming.engine import Engine
from streaming.interface import ModelInfo
from streaming.loader import LoadedModel, load_model
from streaming.params import MAX_PREFIX, Endings, GenerationRequest, Span
from streaming.runner import ModelRunner

MAX_OWNER_CHARS = 64
MAX_CLOSES = 256  # session keys in one `/v1/sessions/close`


class EngineCompletionBody(CompletionBody):
    """A web replica's request: OpenAI's fields and Cowrite's (ignored by other servers)."""

    model_config = ConfigDict(extra="ignore", strict=False)

    owner: str = Field(default="", max_length=MAX_OWNER_CHARS)  # whose share of the engine it takes
    heal: bool = False  # re-choose the prompt's last token (docs/engine.md, token healing)
    prefix: str = Field(default="", max_length=MAX_PREFIX)  # the end of the prompt, spelled out
    # how a suggestion ends (docs/engine.md, "What a suggestion shows"); checked by the engine
    min_prob: float = 0.0
    min_run_prob: float = 0.0
    span: Span = Span.FREE
    no_repeat_ngram: int = 0
    repetition_penalty: float = 1.0
    whole_words: bool = False

    def endings(self) -> Endings:
        return Endings(
            self.min_prob,
            self.min_run_prob,
            self.span,
            self.no_repeat_ngram,
            self.repetition_penalty,
            self.whole_words,
        )


class SessionsToClose(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    users: list[str] = Field(max_length=MAX_CLOSES)


@dataclass
class EngineTier:
    """What the engine app's routes use, built in its lifespan."""

    engine: Engine
    model: ModelInfo
    token: str
    metrics: Metrics
    metrics_token: str | None


def engine_tier(conn: HTTPConnection) -> EngineTier:
    found = getattr(conn.app.state, "tier", None)
    if not isinstance(found, EngineTier):
        raise RuntimeError("the engine app has not started: serve it so its lifespan runs")
    return found


def required_token(settings: Settings) -> str:
    """The engine's bearer token; SettingsError without one (the engine would answer anyone)."""
    if settings.engine_token is None:
        raise SettingsError(
            "serve-engine needs COWRITE_ENGINE_TOKEN (16 characters or more): the bearer token its "
            "web replicas send"
        )
    return settings.engine_token


def create_engine_app(settings: Settings, loaded: LoadedModel | None = None) -> Starlette:
    """The engine-only app; `loaded` skips loading the model. SettingsError without a token."""
    token = required_token(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        model = loaded
        if model is None:
            model = await asyncio.to_thread(
                load_model, settings.model, settings.device, settings.dtype, settings.model_cache_dir
            )
        metrics = Metrics()
        engine = Engine(ModelRunner(model.model), model.tokenizer, engine_limits(settings), observer=metrics)
        metrics.watch_engine(engine.stats)
        app.state.tier = EngineTier(engine, describe(model), token, metrics, settings.metrics_token)
        async with listener_for(settings, metrics), engine:
            datadir.protect(settings.data_dir)  # the converted weights exist now
            await engine.warm_up()  # before /healthz answers: no writer meets a cold model
            yield

    routes = [
        Route("/healthz", healthz),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/models", models),
        Route("/v1/sessions/close", close_sessions, methods=["POST"]),
        *([Route(PATH, public_metrics)] if settings.metrics_token else []),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(BodyLimit, limit=settings.request_limit_mb << 20)],
        lifespan=lifespan,
        exception_handlers={RequestTooLarge: too_large},
    )


def _refuse_token(request: Request) -> Response | None:
    """401 unless the request carries the engine's token."""
    if bearer_matches(request.headers.get("authorization", ""), engine_tier(request).token):
        return None
    response = error_response(
        401, "a bearer token is required: the engine's COWRITE_ENGINE_TOKEN", "auth_error"
    )
    response.headers["www-authenticate"] = "Bearer"
    return response


async def completions(request: Request) -> Response:
    """A web replica's request: its `owner` takes the share, its `user` is the session key as is
    (the replica's keys name user, document and tab already)."""
    refused = _refuse_token(request)
    if refused is not None:
        return refused
    tier = engine_tier(request)
    return await complete(request, tier.engine, tier.model.name, _engine_request)


def _engine_request(payload: object) -> tuple[CompletionBody, GenerationRequest]:
    body = EngineCompletionBody.model_validate(payload)
    return body, to_engine(
        body, body.user, body.owner, heal=body.heal, prefix=body.prefix, endings=body.endings()
    )


async def models(request: Request) -> Response:
    refused = _refuse_token(request)
    return refused if refused is not None else model_list(engine_tier(request).model)


async def close_sessions(request: Request) -> Response:
    """The replica's callers are gone (their sockets closed): free these sessions' cached contexts."""
    refused = _refuse_token(request)
    if refused is not None:
        return refused
    try:
        closing = SessionsToClose.model_validate_json(await request.body())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        return error_response(400, f"{where}: {first['msg']}", "invalid_request_error", where)
    engine = engine_tier(request).engine
    for user in closing.users:
        if 0 < len(user) <= MAX_USER_CHARS:
            engine.close_session(user)
    return Response(status_code=204)


async def healthz(request: Request) -> JSONResponse:
    """503 with the reason while the decode loop is down (it restarts by itself)."""
    tier = engine_tier(request)
    body, serving = await engine_health(tier.engine, tier.model)
    return JSONResponse(body, status_code=200 if serving else 503)


async def public_metrics(request: Request) -> Response:
    """`GET /metrics` on the engine's port with `COWRITE_METRICS_TOKEN`, as the web app has it."""
    tier = engine_tier(request)
    assert tier.metrics_token is not None, "the route exists only when COWRITE_METRICS_TOKEN is set"
    if not bearer_matches(request.headers.get("authorization", ""), tier.metrics_token):
        response = api_error(401, "unauthenticated", "metrics need the bearer token")
        response.headers["www-authenticate"] = 'Bearer realm="metrics"'
        return response
    return scrape(tier.metrics, request)


async def too_large(request: Request, exc: Exception) -> Response:
    return error_response(413, "the request body is too large", "invalid_request_error")
