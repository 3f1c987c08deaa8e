"""Cowrite's settings: one typed object, built once from the environment and the command line.

Nothing else in the project reads `os.environ`.
"""

from __future__ import annotations

import argparse
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
    log_level: str = "info"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models"

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
