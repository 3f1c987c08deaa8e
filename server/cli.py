"""`cowrite` / `python -m server`: load the model (reporting failures in one line), then serve."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import uvicorn

from server import datadir
from server.app import create_app
from server.settings import Settings, SettingsError
from streaming.errors import ModelLoadError
from streaming.loader import load_model


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.from_env(os.environ).with_args(sys.argv[1:] if argv is None else argv)
    except SettingsError as exc:
        print(f"cowrite: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    datadir.protect(settings.data_dir)  # before anything is written into it
    try:
        loaded = load_model(settings.model, settings.device, settings.dtype, settings.model_cache_dir)
    except ModelLoadError as exc:
        print(f"cowrite: {exc}", file=sys.stderr)
        return 2
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


if __name__ == "__main__":
    raise SystemExit(main())
