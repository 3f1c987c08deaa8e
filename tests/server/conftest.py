"""An app per test over a fresh SQLite file in its own data folder, sharing the loaded model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from harness.accounts import sign_in_client
from server.app import create_app
from server.settings import Settings
from streaming.loader import LoadedModel


@pytest.fixture
def app_settings(settings: Settings, tmp_path: Path) -> Settings:
    return replace(settings, data_dir=tmp_path, database_url=None)


@pytest.fixture
def client(app_settings: Settings, loaded_model: LoadedModel) -> Iterator[TestClient]:
    """A client signed in as "alice", sending this server's Origin like a browser's page would."""
    with TestClient(create_app(app_settings, loaded_model)) as test_client:
        sign_in_client(test_client, "alice")
        yield test_client
