"""The database connection: SQLite in WAL mode by default, any SQLAlchemy URL by setting.

`Store` is started once per app; it upgrades the schema with Alembic on start, and runs query
functions (`fn(session, ...)`) on a worker thread, one transaction each.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 0x636F7772  # "cowr": the advisory lock key replicas migrate under
P = ParamSpec("P")
T = TypeVar("T")
# told each `Store.run`'s query function name and seconds taken (the server's metrics)
StoreObserver = Callable[[str, float], None]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def alembic_config(connection: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`; an old database file keeps working. On PostgreSQL, under an
    advisory lock held to the end of the transaction: replicas starting together on a new database
    take turns (the second finds the schema made) instead of both creating the tables."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        command.upgrade(alembic_config(connection), revision)


def reachable(session: Session) -> None:
    """A query that answers at once on a database that can be used (for readiness checks)."""
    session.connection().execute(text("SELECT 1"))


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while a writer commits; NORMAL sync is durable across app crashes
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_private(path: Path) -> None:
    """Make an empty SQLite file readable by its owner only (0600) before SQLite opens it; SQLite
    gives its -wal and -shm files the same mode. A file that exists keeps its mode."""
    if str(path) in ("", ":memory:"):
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


class Store:
    """The database for one app: an async context manager around a SQLAlchemy engine."""

    def __init__(self, url: str, observer: StoreObserver | None = None) -> None:
        self.url = url
        self.observer = observer
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("store not started; enter `async with store:` or call start() first")
        return self._engine

    async def start(self) -> None:
        if self.url.startswith("sqlite:///"):
            create_private(Path(self.url.removeprefix("sqlite:///")))
        engine = make_engine(self.url)
        await anyio.to_thread.run_sync(upgrade, engine)
        self._engine = engine

    async def stop(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    async def __aenter__(self) -> Store:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(session, *args)` in one transaction, here and now."""
        with Session(self.engine, expire_on_commit=False) as session:
            result = fn(session, *args)
            session.commit()
            return result

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(session, *args)` in one transaction on a worker thread."""
        started = time.perf_counter()
        try:
            return await anyio.to_thread.run_sync(self.call, fn, *args)
        finally:  # a failed query's time counts too: a slow failure is what latency should show
            if self.observer is not None:
                self.observer(getattr(fn, "__name__", "unknown"), time.perf_counter() - started)
