"""The command line: settings from flags and environment, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
