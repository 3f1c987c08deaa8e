"""Cowrite's settings: one typed object, built once from the environment and the command line.

Nothing else in the project reads `os.environ`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    database_url: str | None = None  # None: SQLite in the data folder
    model: str | None = None  # None: the bundled SmolLM2-135M-Instruct
    device: str = "auto"
    dtype: str = "auto"
    max_rows: int = 32
    max_queue: int = 64
    prefill_chunk: int = 256
    context_tokens: int = 2048
    kv_budget_mb: int = 2048
    crowded_rows: int = 12  # rows in use past which new suggestions are shorter, not refused; 0: off
    # each user's share of the engine (docs/security.md)
    requests_per_user: int = 4  # generations in progress at once, suggestions and /v1/completions
    rows_per_user: int = 4  # ... and the alternatives (rows) they ask for together
    sessions_per_user: int = 8  # cached contexts kept for prefix reuse
    session_idle_s: int = 300  # a cached context unused this long is freed
    prompt_limit_chars: int = 100_000
    prompt_limit_tokens: int = 32_768
    log_level: str = "info"
    # accounts (docs/security.md)
    secret_key: str | None = None  # None: generated into the data folder on first run
    signup: str = "open"  # "open": anyone who can reach the server may sign up; "closed": admins add people
    session_days: int = 30
    signin_attempts: int = 5  # failed sign-ins per account per 15 minutes before it must wait
    signin_attempts_per_address: int = 20  # ... and per client address
    signups_per_address: int = 30  # accounts made from one client address per hour
    session_check_s: int = 5  # how often open sockets' sessions are checked (ended elsewhere, expired)
    # the network (docs/security.md)
    allowed_hosts: str = ""  # Host names answered, comma-separated; "": the bound host and loopback
    trusted_proxies: str = ""  # proxy addresses whose X-Forwarded-* headers count; "": none
    # abuse limits
    request_limit_mb: int = 8  # HTTP request bodies
    frame_limit_kb: int = 64  # suggestion socket frames
    update_limit_mb: int = 4  # document socket frames (one CRDT update)
    document_limit_mb: int = 16  # one document's encoded CRDT state, history of deletions included
    suggestions_per_minute: int = 120  # per user, all sockets together
    sockets_per_user: int = 20  # open sockets of both kinds, per user
    idle_timeout_s: int = 600  # a socket that sends nothing for this long is closed
    awareness_ids_per_connection: int = 4  # presence client ids one document socket may use
    awareness_state_limit_kb: int = 8  # one presence state (name, colour, cursor)
    awareness_room_limit_kb: int = 1024  # all presence states in one document together
    # beyond one machine (docs/cluster.md)
    redis_url: str | None = None  # None: one process; set: replicas share rooms and limits through it
    engine_url: str | None = None  # None: the model runs here; set: an OpenAI-compatible server's base URL
    engine_token: str | None = None  # the bearer token between web replicas and `cowrite serve-engine`
    engine_model: str | None = None  # the model name sent upstream (None: whatever the server lists first)
    metrics_host: str = "127.0.0.1"  # where the metrics listener binds
    metrics_port: int = 0  # 0: no metrics listener (see metrics_token)
    metrics_token: str | None = None  # set: GET /metrics on the public port with this bearer token
    # how suggestions end (docs/benchmarks.md, "Suggestions worth taking"; chosen by bench/quality/)
    suggest_confidence: float = 0.0  # the least probability of each token shown; 0 shows whatever comes
    suggest_run_confidence: float = 0.5  # the least product of its tokens' probabilities a suggestion keeps
    suggest_span: str = "sentence"  # "sentence", "clause" or "free": where a suggestion stops by itself
    suggest_no_repeat: int = 3  # no suggestion repeats a token n-gram of itself or the text just before
    suggest_repetition_penalty: float = 1.0  # >1 makes tokens just seen less likely

    def __post_init__(self) -> None:
        if self.signup not in {"open", "closed"}:
            raise SettingsError(f"COWRITE_SIGNUP must be 'open' or 'closed', not {self.signup!r}")
        if self.secret_key is not None and len(self.secret_key) < 16:
            raise SettingsError("COWRITE_SECRET_KEY must be at least 16 characters")
        for name in ("engine_token", "metrics_token"):
            token = getattr(self, name)
            if token is not None and len(token) < 16:
                raise SettingsError(f"COWRITE_{name.upper()} must be at least 16 characters")
        if self.engine_url is not None and not self.engine_url.startswith(("http://", "https://")):
            raise SettingsError("COWRITE_ENGINE_URL must be an http:// or https:// URL")
        if self.metrics_port > 65535:
            raise SettingsError("COWRITE_METRICS_PORT must be a port number (0 turns it off)")
        if self.metrics_port and self.metrics_port == self.port:
            raise SettingsError("COWRITE_METRICS_PORT must differ from COWRITE_PORT (metrics stay off it)")
        if self.session_check_s < 1:
            raise SettingsError("COWRITE_SESSION_CHECK_S must be at least 1")
        if not 0.0 <= self.suggest_confidence < 1.0:
            raise SettingsError("COWRITE_SUGGEST_CONFIDENCE must be from 0 (off) to below 1")
        if not 0.0 <= self.suggest_run_confidence < 1.0:
            raise SettingsError("COWRITE_SUGGEST_RUN_CONFIDENCE must be from 0 (off) to below 1")
        if self.suggest_span not in {"sentence", "clause", "free"}:
            raise SettingsError("COWRITE_SUGGEST_SPAN must be 'sentence', 'clause' or 'free'")
        if self.suggest_no_repeat == 1 or self.suggest_no_repeat > 8:
            raise SettingsError("COWRITE_SUGGEST_NO_REPEAT must be 0 (off) or from 2 to 8")
        if not 1.0 <= self.suggest_repetition_penalty <= 2.0:
            raise SettingsError("COWRITE_SUGGEST_REPETITION_PENALTY must be from 1 (off) to 2")

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [item.strip() for item in self.trusted_proxies.split(",") if item.strip()]

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'cowrite.db'}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read `COWRITE_<NAME>` for every field; unset ones keep their defaults."""
        values: dict[str, object] = {}
        for item in fields(cls):
            key = f"COWRITE_{item.name.upper()}"
            if key in environ and environ[key] != "":
                values[item.name] = _cast(key, environ[key], item.default)
        return cls(**values)  # type: ignore[arg-type]

    def with_args(self, argv: Sequence[str]) -> Settings:
        """Apply command-line flags (`--model`, `--port`, ...) over these settings."""
        parser = argparse.ArgumentParser(prog="cowrite", description="Run the Cowrite server.")
        for item in fields(self):
            flag = "--" + item.name.replace("_", "-")
            parser.add_argument(flag, dest=item.name, default=None, help=f"(env COWRITE_{item.name.upper()})")
        args = parser.parse_args(list(argv))
        changes = {
            name: _cast("--" + name.replace("_", "-"), value, getattr(self, name))
            for name, value in vars(args).items()
            if value is not None
        }
        return replace(self, **changes)  # type: ignore[arg-type]


def _cast(name: str, raw: str, default: object) -> object:
    if isinstance(default, bool):
        return raw.lower() in {"1", "true", "yes", "on"}
    if isinstance(default, float):
        try:
            number = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, not {raw!r}") from None
        if not math.isfinite(number) or number < 0:
            raise SettingsError(f"{name} must be a finite number, not negative")
        return number
    if isinstance(default, int):
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be an integer, not {raw!r}") from None
        if value < 0:
            raise SettingsError(f"{name} must not be negative")
        return value
    if isinstance(default, Path):
        return Path(raw)
    return raw
