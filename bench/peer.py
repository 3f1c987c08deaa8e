"""The peer a writer would otherwise run: llama.cpp's `llama-server` on the same GGUF file.

`python -m bench.peer build` (what `make bench-peer` runs) builds `llama-server` once from the
llama.cpp sources vendored in the `llama-cpp-python` sdist on PyPI, at the version and hash locked
in requirements/peer.txt, into a cache outside the repository (`~/.cache/cowrite/peer` by default;
about 10-15 minutes on 2 cores). Later calls find it there. `serve()` starts it on the bundled
model for the benchmarks. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx

from streaming.loader import bundled_gguf

SDIST = "llama-cpp-python"
LOCK = Path(__file__).resolve().parent.parent / "requirements" / "peer.txt"


def locked_version() -> str:
    """The sdist's version as requirements/peer.txt locks it (with its hash; `make lock` refreshes it).

    Read when the peer is built or started, not on import: the writers and speed benchmarks import
    this module, and an installed copy of `bench` (the Docker image's) has no requirements/ beside it.
    """
    try:
        text = LOCK.read_text()
    except FileNotFoundError:
        raise SystemExit(f"bench.peer: {LOCK} is missing; the peer runs from a checkout") from None
    match = re.search(rf"^{SDIST}==(\S+)", text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"bench.peer: {LOCK.name} does not lock {SDIST}; run `make lock`")
    return match.group(1)


CACHE = Path.home() / ".cache" / "cowrite" / "peer"
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
]
# the CPU's own instruction sets, named one by one rather than with GGML_NATIVE: a native build
# uses AMX wherever the CPU advertises it, and a virtual machine that does not hand AMX's state to
# its guests (this project's does not) kills it with SIGILL at the first tile instruction
ISA_OPTIONS = {
    "avx": "GGML_AVX",
    "avx2": "GGML_AVX2",
    "fma": "GGML_FMA",
    "f16c": "GGML_F16C",
    "bmi2": "GGML_BMI2",
    "avx_vnni": "GGML_AVX_VNNI",
    "avx512f": "GGML_AVX512",
    "avx512vbmi": "GGML_AVX512_VBMI",
    "avx512_vnni": "GGML_AVX512_VNNI",
    "avx512_bf16": "GGML_AVX512_BF16",
}
# as docs/benchmarks.md runs the peer: a slot for each of up to 16 writers (the most `make bench-peer`
# plays at once), one thread per core of the 2-core machine, and a 16k context shared by the slots
SERVE_FLAGS = ["-np", "16", "-t", "2", "-c", "16384"]


def binary(cache: Path = CACHE) -> Path:
    return cache / f"llama.cpp-{locked_version()}" / "build" / "bin" / "llama-server"


def isa_flags() -> list[str]:
    """cmake options for the instruction sets this CPU has (Linux), AMX left out."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ["-DGGML_NATIVE=ON"]  # not Linux: let the compiler look
    line = next((x for x in cpuinfo.splitlines() if x.startswith("flags")), "")
    have = set(line.partition(":")[2].split())
    options = ["-DGGML_NATIVE=OFF"]
    options += [f"-D{option}={'ON' if flag in have else 'OFF'}" for flag, option in ISA_OPTIONS.items()]
    return options


def build(cache: Path = CACHE) -> Path:
    """`llama-server`, built from the sdist unless the cache already holds it (same options)."""
    target = binary(cache)
    options = CMAKE_FLAGS + isa_flags()
    stamp = target.parent.parent / "cowrite-options.txt"
    if target.exists() and stamp.exists() and stamp.read_text() == " ".join(options):
        return target
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench.peer: building llama-server needs {tool} on the PATH")
    cache.mkdir(parents=True, exist_ok=True)
    version = locked_version()
    archive = cache / f"{SDIST.replace('-', '_')}-{version}.tar.gz"
    if not archive.exists():
        print(f"downloading the {SDIST} {version} sdist", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(cache)]
            + ["--require-hashes", "-r", str(LOCK)],
            check=True,
        )
    sources = cache / f"llama.cpp-{version}"
    if not (sources / "CMakeLists.txt").exists():
        print("unpacking the vendored llama.cpp", flush=True)
        prefix = f"{archive.name.removesuffix('.tar.gz')}/vendor/llama.cpp/"
        with tarfile.open(archive) as tar:
            members = []
            for member in tar.getmembers():
                if member.name.startswith(prefix) and len(member.name) > len(prefix):
                    member.name = member.name[len(prefix) :]
                    members.append(member)
            tar.extractall(sources, members=members, filter="data")
    build_dir = sources / "build"
    jobs = str(os.cpu_count() or 2)
    print(f"building llama-server with {jobs} jobs (about 10-15 minutes on 2 cores)", flush=True)
    started = time.monotonic()
    subprocess.run(["cmake", "-S", str(sources), "-B", str(build_dir), *options], check=True)
    subprocess.run(["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", jobs], check=True)
    stamp.write_text(" ".join(options))
    print(f"built {target} in {time.monotonic() - started:.0f} s", flush=True)
    return target


def serve(
    port: int, log_path: Path, cache: Path = CACHE, gguf: Path | None = None
) -> subprocess.Popen[bytes]:
    """`llama-server` on `gguf` (the bundled GGUF unless named) at 127.0.0.1:`port`, as the
    comparison runs it."""
    target = binary(cache)
    if not target.exists():
        raise SystemExit("bench.peer: llama-server is not built; run `make bench-peer` first")
    model = gguf or bundled_gguf()
    command = [str(target), "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "ab") as log:
        return subprocess.Popen(command + SERVE_FLAGS, stdout=log, stderr=subprocess.STDOUT)


def wait_peer_ready(url: str, server: subprocess.Popen[bytes], within_s: float = 120.0) -> None:
    """Return once the peer's `/health` says it has loaded the model."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("bench.peer: llama-server exited during start-up; see its log")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"bench.peer: llama-server did not answer within {within_s:g} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["build", "where"])
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the sdist and the build live")
    args = parser.parse_args()
    print(build(args.cache) if args.command == "build" else binary(args.cache))
