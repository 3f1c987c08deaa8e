"""Databases for storage tests: a fresh SQLite file each, and PostgreSQL when CI provides one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.database import make_engine, sqlite_url

POSTGRES_ENV = "COWRITE_TEST_POSTGRES_URL"


def reset_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database of each kind."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "cowrite.db")
        return
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (set by .ci/run); none on this machine")
    reset_postgres(url)
    yield url
    reset_postgres(url)
