"""The command line: settings from flags and environment, one-line errors, the proxies it trusts
and the data folder it makes private."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from harness.accounts import account_async
from harness.processes import free_port, start_server, wait_ready
from server.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent.parent


def test_flags_override_the_environment() -> None:
    settings = Settings.from_env({"COWRITE_PORT": "9000", "COWRITE_MODEL": "env-model"})
    assert (settings.port, settings.model) == (9000, "env-model")
    settings = settings.with_args(["--model", "flag-model", "--data-dir", "/tmp/x"])
    assert (settings.port, settings.model, settings.data_dir) == (9000, "flag-model", Path("/tmp/x"))


def test_a_bad_number_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="COWRITE_PORT"):
        Settings.from_env({"COWRITE_PORT": "eighty"})


def test_a_model_that_cannot_load_gives_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server", "--model", str(tmp_path / "missing"), "--data-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "COWRITE_MODEL" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_redis_gives_one_clear_line_before_the_model_loads(tmp_path: Path) -> None:
    nobody = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # a free port: nothing listens there
    result = subprocess.run(
        [sys.executable, "-m", "server", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "COWRITE_REDIS_URL": nobody},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "cannot reach Redis at COWRITE_REDIS_URL" in result.stderr
    assert "hunter2" not in result.stderr  # the password stays out of the log
    assert "Traceback" not in result.stderr and "Loading weights" not in result.stderr


@contextlib.asynccontextmanager
async def running(data_dir: Path, env: dict[str, str] | None = None) -> AsyncIterator[str]:
    """A `python -m server` child process with `env` added; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, data_dir, env)
    try:
        await wait_ready(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
async def test_forwarded_addresses_count_only_from_a_trusted_proxy(tmp_path: Path, trusted: str) -> None:
    """The per-address sign-in limit (two failures here) follows X-Forwarded-For only when the
    connection comes from `COWRITE_TRUSTED_PROXIES`; by default any local client could pick its
    address with it."""
    env = {"COWRITE_SIGNIN_ATTEMPTS_PER_ADDRESS": "2", "COWRITE_TRUSTED_PROXIES": trusted}
    async with asyncio.timeout(240), running(tmp_path, env) as url, httpx.AsyncClient(base_url=url) as http:
        answers = []
        for i in range(3):
            guess = {"username": f"user{i}", "password": "not the password"}
            headers = {"origin": url, "x-forwarded-for": f"203.0.113.{i}"}
            answers.append((await http.post("/api/auth/signin", json=guess, headers=headers)).status_code)
    # by default all three come from 127.0.0.1, whose allowance the first two spend
    assert answers == ([401, 401, 401] if trusted else [401, 401, 429])


async def test_the_data_folder_and_its_files_are_its_owners_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)  # a folder made by an older version, or by hand
    (data / "secret_key").write_text("a key from an older version, readable by all")
    (data / "secret_key").chmod(0o644)
    shared = (ROOT / "data" / "models").resolve()
    shared_mode = shared.stat().st_mode if shared.exists() else None
    async with asyncio.timeout(240), running(data) as url:
        async with httpx.AsyncClient(base_url=url) as http:  # something written to the database
            assert (await account_async(http, "ann"))["cookie"]
        modes = {path.name: stat.S_IMODE(path.lstat().st_mode) for path in [data, *data.iterdir()]}
    assert modes.pop("data") == 0o700
    assert modes.pop("models") == 0o777  # a link, neither followed nor changed
    assert {"cowrite.db", "cowrite.db-wal", "cowrite.db-shm", "secret_key"} <= set(modes)
    assert modes == dict.fromkeys(modes, 0o600)
    if shared_mode is not None:
        assert shared.stat().st_mode == shared_mode  # the weights the link leads to are untouched
