"""Where the model runs for this process: loaded here (`Engine`), or on its own tier behind
`COWRITE_ENGINE_URL` (`RemoteEngine`); and what `/healthz` says of it."""

from __future__ import annotations

from typing import Any

from server.settings import Settings
from streaming.engine import EngineLimits
from streaming.interface import LOCAL, GenerationEngine, ModelInfo
from streaming.loader import LoadedModel
from streaming.observer import EngineObserver
from streaming.remote import RemoteEngine


def engine_limits(settings: Settings) -> EngineLimits:
    return EngineLimits(
        max_rows=settings.max_rows,
        max_queue=settings.max_queue,
        prefill_chunk=settings.prefill_chunk,
        context_tokens=settings.context_tokens,
        kv_budget_bytes=settings.kv_budget_mb << 20,
        owner_requests=settings.requests_per_user,
        owner_rows=settings.rows_per_user,
        owner_sessions=settings.sessions_per_user,
        session_idle_s=settings.session_idle_s,
        prompt_limit_chars=settings.prompt_limit_chars,
        prompt_limit_tokens=settings.prompt_limit_tokens,
        crowded_rows=settings.crowded_rows,
    )


def describe(loaded: LoadedModel) -> ModelInfo:
    """A model loaded in this process."""
    return ModelInfo(loaded.name, str(loaded.device), str(loaded.dtype).removeprefix("torch."), LOCAL)


def remote_engine(settings: Settings, observer: EngineObserver | None = None) -> RemoteEngine:
    """The engine tier at `COWRITE_ENGINE_URL`; this replica keeps its own shares of it (the
    engine applies its own as well). `observer` hears of first tokens and ends (the metrics)."""
    if settings.engine_url is None:
        raise RuntimeError("COWRITE_ENGINE_URL is not set: load the model in this process instead")
    limits = engine_limits(settings)
    return RemoteEngine(
        settings.engine_url, settings.engine_token, settings.engine_model, limits, observer=observer
    )


async def engine_health(engine: GenerationEngine, model: ModelInfo) -> tuple[dict[str, Any], bool]:
    """`/healthz`'s fields for the engine, and whether it serves: a local decode loop that runs, or
    an engine tier that answers `/v1/models` with this replica's token (asked now, timed)."""
    stats = engine.stats()
    where: dict[str, Any] = {"engine": LOCAL}
    reason = engine.failure
    if isinstance(engine, RemoteEngine):
        probe = await engine.probe()
        latency = None if probe.latency_s is None else round(probe.latency_s * 1000, 1)
        where = {
            "engine": "remote",
            "engine_url": engine.url,
            "answers": probe.answers,
            "latency_ms": latency,
        }
        reason = probe.reason
    body = {
        "status": "ok" if reason is None else "failed",
        "reason": reason,
        **where,
        "warm": engine.warmed,
        "restarts": engine.restarts,
        "last_failure": engine.last_failure,
        "model": model.name,
        "device": model.device,
        "dtype": model.dtype,
        "queue_depth": stats.queued,
        "active_requests": stats.active_requests,
        "active_rows": stats.active_rows,
        "open_requests": stats.open_requests,
        "sessions": stats.sessions,
        "kv_bytes": stats.kv_bytes,
        "steps": stats.steps,
    }
    return body, reason is None
