"""`cowrite` / `python -m server`: load the model (reporting failures in one line), then serve.

`cowrite serve-engine` serves the model alone, for web replicas started with `COWRITE_ENGINE_URL`;
a web replica started with it loads no model.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import redis
import uvicorn
from starlette.applications import Starlette

from server import datadir
from server.app import create_app
from server.cluster.redis_broker import CONNECT_TIMEOUT_S, safe_url
from server.engine_app import create_engine_app, required_token
from server.settings import Settings, SettingsError
from streaming.errors import ModelLoadError
from streaming.loader import LoadedModel, load_model

SERVE_ENGINE = "serve-engine"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    engine_only = bool(args) and args[0] == SERVE_ENGINE
    if engine_only:
        args = args[1:]
    try:
        settings = Settings.from_env(os.environ).with_args(args)
        if engine_only:
            required_token(settings)
    except SettingsError as exc:
        print(f"cowrite: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    datadir.protect(settings.data_dir)  # before anything is written into it
    if not engine_only and settings.redis_url:
        problem = redis_problem(settings.redis_url)
        if problem is not None:
            print(f"cowrite: {problem}", file=sys.stderr)
            return 2
    loaded: LoadedModel | None = None
    if engine_only or settings.engine_url is None:  # a web replica with an engine tier loads no model
        try:
            loaded = load_model(settings.model, settings.device, settings.dtype, settings.model_cache_dir)
        except ModelLoadError as exc:
            print(f"cowrite: {exc}", file=sys.stderr)
            return 2
    app: Starlette
    if engine_only:
        app = create_engine_app(settings, loaded)
        print(f"Cowrite's engine is serving on http://{settings.host}:{settings.port}", flush=True)
    else:
        app = create_app(settings, loaded)
        print(f"Cowrite is running on http://{settings.host}:{settings.port}  (Ctrl+C stops it)", flush=True)
    proxies = settings.trusted_proxy_list
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # X-Forwarded-For and -Proto choose the client address (the per-address limits) and the
        # scheme (Secure cookies, Origin checks): only a proxy we were told of may send them
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )
    return 0


def redis_problem(url: str) -> str | None:
    """Why the Redis at `url` cannot be used, in one line; None when it answers."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    try:
        client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        return f"cannot reach Redis at COWRITE_REDIS_URL ({safe_url(url)}): {exc}"
    finally:
        client.close()
    return None


if __name__ == "__main__":
    raise SystemExit(main())
