"""The Starlette application: its lifespan starts and stops the engine; routes stay thin."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server import collab, documents, pages, suggest
from server.collab import Rooms
from server.completions import completions, models
from server.settings import Settings
from storage.database import Store
from streaming.engine import Engine, EngineLimits
from streaming.loader import LoadedModel, load_model
from streaming.runner import ModelRunner


def engine_limits(settings: Settings) -> EngineLimits:
    return EngineLimits(
        max_rows=settings.max_rows,
        max_queue=settings.max_queue,
        prefill_chunk=settings.prefill_chunk,
        context_tokens=settings.context_tokens,
        kv_budget_bytes=settings.kv_budget_mb << 20,
    )


def create_app(settings: Settings, loaded: LoadedModel | None = None) -> Starlette:
    """The app; `loaded` skips loading the model (the CLI loads it first to report errors plainly)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if loaded is not None:
            model = loaded
        else:
            model = await asyncio.to_thread(
                load_model, settings.model, settings.device, settings.dtype, settings.model_cache_dir
            )
        engine = Engine(ModelRunner(model.model), model.tokenizer, engine_limits(settings))
        store = Store(settings.database)
        rooms = Rooms(store)
        app.state.engine = engine
        app.state.store = store
        app.state.rooms = rooms
        app.state.model_name = model.name
        app.state.model = model
        async with store, engine, rooms:
            yield

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/models", models),
        *documents.routes,
        *suggest.routes,
        *collab.routes,
        *pages.routes,
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def healthz(request: Request) -> JSONResponse:
    model: LoadedModel = request.app.state.model
    stats = request.app.state.engine.stats()
    return JSONResponse(
        {
            "status": "ok",
            "model": model.name,
            "device": str(model.device),
            "dtype": str(model.dtype).removeprefix("torch."),
            "queue_depth": stats.queued,
            "active_requests": stats.active_requests,
            "active_rows": stats.active_rows,
            "sessions": stats.sessions,
            "kv_bytes": stats.kv_bytes,
            "steps": stats.steps,
        }
    )
