"""Shared fixtures: the real bundled model, loaded once per test run."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from server.settings import Settings
from streaming.loader import LoadedModel, load_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings from the environment, so COWRITE_DEVICE / COWRITE_DTYPE steer the test run too."""
    base = Settings.from_env(os.environ)
    if "COWRITE_DATA_DIR" not in os.environ:
        base = replace(base, data_dir=ROOT / "data")
    return base


@pytest.fixture(scope="session")
def loaded_model(settings: Settings) -> LoadedModel:
    return load_model(settings.model, settings.device, settings.dtype, settings.model_cache_dir)
