"""The locked installs: `make lock` writes requirements/*.txt from pyproject.toml and requirements/*.in
with uv; `make lint` runs `check`, which fails when a lock no longer matches what it was made from.

Each lock starts with a line naming the digest of its inputs, so an edit to pyproject.toml's
dependencies (or to an .in file) without `make lock` is caught without a network. torch is pinned in
pyproject.toml, the Makefile and the Dockerfile alike and kept out of every lock: its CPU build comes
from a file on some machines and from the registry on others, with different hashes.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "requirements"
DIGEST = re.compile(r"^# inputs sha256:([0-9a-f]{64})$")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")
UNLOCKED = "torch"
PYTHON = "3.11"


@dataclass(frozen=True)
class Lock:
    """One lock file: what it is made from and how."""

    name: str
    sources: tuple[str, ...]  # uv's inputs, relative to the repository
    extras: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    resolve_dependencies: bool = True

    @property
    def path(self) -> Path:
        return FOLDER / f"{self.name}.txt"


# dev is made first; app (what the Docker image installs) is held to the same versions as dev
LOCKS = (
    Lock("dev", ("pyproject.toml", "requirements/build.in"), extras=("dev",)),
    Lock("app", ("pyproject.toml", "requirements/build.in"), constraints=("requirements/dev.txt",)),
    Lock("pip", ("requirements/pip.in",)),
    Lock("model", ("requirements/model.in",), resolve_dependencies=False),
    Lock("peer", ("requirements/peer.in",), resolve_dependencies=False),
)


def project() -> dict[str, object]:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)


def declared(extras: tuple[str, ...]) -> list[str]:
    """pyproject.toml's requirements for a lock: the dependencies, then each extra's."""
    table = project()["project"]
    assert isinstance(table, dict)
    found = list(table["dependencies"])
    for extra in extras:
        found += table["optional-dependencies"][extra]
    return found


def digest(lock: Lock) -> str:
    """What a lock is made from, as one digest: the requirements it was asked for, not the files'
    layout, so comments and reordering elsewhere in pyproject.toml do not stale it."""
    parts: list[str] = []
    for source in lock.sources:
        if source == "pyproject.toml":
            parts += sorted(str(Requirement(line)) for line in declared(lock.extras))
        else:
            parts += sorted(requirement_lines(ROOT / source))
    if lock.resolve_dependencies:
        parts += ["exclude " + line for line in sorted(requirement_lines(FOLDER / "excluded.in"))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def requirement_lines(path: Path) -> list[str]:
    lines = (line.partition("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def uv_command(lock: Lock, upgrade: list[str]) -> list[str]:
    """uv's compile of a lock. It reads the lock it rewrites and keeps each pin that still fits,
    unless `upgrade` names the package (or is ["all"])."""
    command = [str(Path(sys.executable).with_name("uv")), "pip", "compile", *lock.sources]
    command += [f"--output-file={lock.path.relative_to(ROOT)}"]
    command += ["--upgrade"] if upgrade == ["all"] else [f"--upgrade-package={name}" for name in upgrade]
    command += [f"--extra={extra}" for extra in lock.extras]
    command += [f"--constraint={path}" for path in lock.constraints]
    command += ["--generate-hashes", "--universal", f"--python-version={PYTHON}", "--quiet"]
    command += ["--custom-compile-command", "make lock"]
    if lock.resolve_dependencies:
        command += ["--excludes=requirements/excluded.in", f"--no-emit-package={UNLOCKED}"]
    else:
        command += ["--no-deps"]
    return command


def write(lock: Lock, upgrade: list[str]) -> None:
    subprocess.run(uv_command(lock, upgrade), cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    made = [line for line in lock.path.read_text().splitlines(keepends=True) if not DIGEST.match(line)]
    lock.path.write_text(f"# inputs sha256:{digest(lock)}\n" + "".join(made))
    print(f"locks: wrote {lock.path.relative_to(ROOT)} ({len(pins(lock.path))} packages)")


def pins(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A lock's pins: name -> [(version, marker)]; a name appears twice where Python versions differ."""
    found: dict[str, list[tuple[str, str]]] = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            name, version, marker = match.groups()
            found.setdefault(canonicalize_name(name), []).append((version, marker or ""))
    return found


def unhashed(text: str) -> list[str]:
    """The pins of a lock that no `--hash` line follows."""
    found, current, hashed = [], "", True
    for line in text.splitlines():
        match = PIN.match(line)
        if match:
            if not hashed:
                found.append(current)
            current, hashed = match.group(1), False
        elif line.strip().startswith("--hash=sha256:"):
            hashed = True
    return found if hashed else [*found, current]


def problems(lock: Lock) -> list[str]:
    """Why a lock no longer matches its inputs (empty when it does)."""
    where = lock.path.relative_to(ROOT)
    if not lock.path.exists():
        return [f"{where} is missing"]
    text = lock.path.read_text()
    first = DIGEST.match(text.partition("\n")[0])
    found: list[str] = []
    if first is None or first.group(1) != digest(lock):
        found.append(f"{where} was made from other inputs than today's")
    locked = pins(lock.path)
    entries = [line for line in text.splitlines() if PIN.match(line)]
    if len(entries) != sum(len(versions) for versions in locked.values()):
        found.append(f"{where} has a line the checker cannot read")
    found += [f"{where}: {name} has no hash" for name in unhashed(text)]
    if UNLOCKED in locked:
        found.append(f"{where} holds {UNLOCKED}, whose hash differs by machine")
    if lock.resolve_dependencies:
        leaked = set(locked) & {canonicalize_name(x) for x in requirement_lines(FOLDER / "excluded.in")}
        found += [f"{where} holds {name}, which requirements/excluded.in leaves out" for name in leaked]
    for source in lock.sources:
        asked = declared(lock.extras) if source == "pyproject.toml" else requirement_lines(ROOT / source)
        found += [f"{where}: {problem}" for problem in unmet(asked, locked)]
    return found


def unmet(asked: list[str], locked: dict[str, list[tuple[str, str]]]) -> list[str]:
    """Requirements that no pin of the lock satisfies (torch aside: it is pinned, not locked)."""
    found = []
    environment = {key: str(value) for key, value in default_environment().items()}
    environment |= {"python_version": PYTHON, "python_full_version": f"{PYTHON}.0"}
    for line in asked:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if name == UNLOCKED:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        versions = [version for version, _ in locked.get(name, [])]
        if not any(requirement.specifier.contains(version, prereleases=True) for version in versions):
            found.append(f"{requirement} is not met (locked: {', '.join(versions) or 'nothing'})")
    return found


def torch_pins() -> dict[str, str]:
    """torch's version wherever it is pinned; they must agree."""
    found = {}
    for line in declared(()):
        requirement = Requirement(line)
        if requirement.name == UNLOCKED:
            found["pyproject.toml"] = str(requirement.specifier).removeprefix("==")
    for name, pattern in (("Makefile", r"^TORCH := (\S+)$"), ("Dockerfile", r"^ARG TORCH_VERSION=(\S+)$")):
        match = re.search(pattern, (ROOT / name).read_text(), re.MULTILINE)
        found[name] = match.group(1) if match else "not pinned"
    return found


def check() -> list[str]:
    found = [problem for lock in LOCKS for problem in problems(lock)]
    torch = torch_pins()
    if len(set(torch.values())) != 1:
        found.append("torch is pinned differently: " + ", ".join(f"{k} {v}" for k, v in torch.items()))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python deploy/locks.py", description=__doc__)
    parser.add_argument("command", choices=["lock", "check"])
    parser.add_argument(
        "--upgrade", nargs="*", default=[], metavar="PACKAGE",
        help="take the newest allowed release of these packages (`all`: of every package)",
    )
    arguments = parser.parse_args(argv)
    if arguments.command == "lock":
        for lock in LOCKS:
            write(lock, arguments.upgrade)
    found = check()
    for problem in found:
        print(f"locks: {problem}", file=sys.stderr)
    if found:
        print("locks: run `make lock` and commit requirements/ (README, 'Locked installs')", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
