"""`make cluster` for real: deploy/cluster.py starts the engine process, two web replicas and
nginx on this machine's PostgreSQL and Redis; through its one address people sign up, both replicas
answer, two people on different replicas edit one document together, a killed replica is reported
while nginx sends everyone to the other, and Ctrl+C stops it all."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.accounts import account_async
from harness.processes import ROOT, free_port
from harness.yclient import YClient, document_socket

pytestmark = pytest.mark.timeout(300)
SCRIPT = ROOT / "deploy" / "cluster.py"
ADDRESS = re.compile(r"is on (http://\S+)")
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
STARTED = re.compile(r"cluster: started (\S+) \(pid (\d+)\) on 127\.0\.0\.1:(\d+)")


class Output:
    """The script's output as it comes, and a way to wait for a line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.grew = asyncio.Event()

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())
            self.grew.set()
        self.grew.set()

    async def wait_for(self, pattern: re.Pattern[str], within_s: float) -> re.Match[str]:
        async with asyncio.timeout(within_s):
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if found := pattern.search(line):
                        return found
                seen = len(self.lines)
                if self.process.stdout is not None and self.process.stdout.at_eof():
                    raise AssertionError(f"the cluster exited before {pattern.pattern!r}:\n{self.text()}")
                self.grew.clear()
                await self.grew.wait()

    def text(self) -> str:
        return "\n".join(self.lines[-60:])

    def started(self) -> dict[str, tuple[int, str]]:
        """Each part started so far: its process id and address."""
        found = {}
        for line in self.lines:
            if match := STARTED.search(line):
                name, pid, port = match.groups()
                found[name] = (int(pid), f"127.0.0.1:{port}")
        return found


def upstream_of(client: YClient) -> str:
    """Which replica took a document socket: the handshake's answer says (YClient keeps its socket
    to itself)."""
    return str(client._socket.response.headers["x-cowrite-upstream"])


@pytest.mark.skipif(NGINX is None, reason="needs nginx: `make cluster-deps` installs it")
async def test_cluster_serves_both_replicas_through_nginx(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, str(SCRIPT), "--port", str(port), "--data-dir", str(tmp_path / "cluster")],
        *["--database-url", postgres_url, "--redis-url", redis_url],
        cwd=ROOT,
        env={**os.environ, "COWRITE_LOG_LEVEL": "warning", "COWRITE_SIGNUPS_PER_ADDRESS": "1000"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = Output(process)
    reader = asyncio.create_task(output.read())
    try:
        address = (await output.wait_for(ADDRESS, within_s=240)).group(1)
        replicas = {name: part for name, part in output.started().items() if name.startswith("web-")}
        assert set(replicas) == {"web-a", "web-b"}, output.text()
        async with httpx.AsyncClient(base_url=address, timeout=30) as http:
            ann = await account_async(http, "ann")
            bob = await account_async(http, "bob")
            answered = set()
            for _ in range(10):  # nginx spreads requests over both: least_conn, round robin among equals
                response = await http.get("/api/documents", headers=ann)
                assert response.status_code == 200, response.text
                answered.add(response.headers["x-cowrite-upstream"])
            assert answered == {upstream for _, upstream in replicas.values()}
            created = await http.post("/api/documents", json={"title": "Together"}, headers=ann)
            assert created.status_code == 201, created.text
            document = created.json()["id"]
            invited = await http.post(
                f"/api/documents/{document}/members", json={"username": "bob", "role": "editor"}, headers=ann
            )
            assert invited.status_code == 201, invited.text

        url = document_socket(address, document)
        async with YClient(url, headers=ann) as first, YClient(url, headers=bob) as second:
            await asyncio.wait_for(first.synced.wait(), 30)
            await asyncio.wait_for(second.synced.wait(), 30)
            # least_conn: the first socket keeps its replica busy, so the second goes to the other
            assert upstream_of(first) != upstream_of(second)
            first.text += "Written on one replica. "
            await second.wait_for(lambda c: "one replica" in str(c.text), within_s=30)
            second.text += "Read and answered on the other."
            await first.wait_for(lambda c: "the other" in str(c.text), within_s=30)
            assert str(first.text) == str(second.text)

        # a replica that dies is reported, and nginx sends everyone to the one left
        pid, _ = replicas["web-b"]
        os.kill(pid, signal.SIGKILL)
        await output.wait_for(re.compile(r"cluster: web-b exited"), within_s=30)
        async with httpx.AsyncClient(base_url=address, timeout=30) as http:
            for _ in range(4):
                response = await http.get("/api/documents", headers=ann)
                assert response.status_code == 200, response.text
                # the first may have tried web-b first: nginx lists every replica it tried
                assert response.headers["x-cowrite-upstream"].endswith(replicas["web-a"][1])
        assert process.returncode is None, "the cluster stopped when one of two replicas died"

        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 60) == 0, output.text()
        await reader
        with pytest.raises(httpx.TransportError):
            async with httpx.AsyncClient(timeout=5) as http:
                await http.get(f"{address}/healthz")
        for pid, _ in replicas.values():
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


def test_cluster_says_what_is_missing(tmp_path: Path) -> None:
    """Without nginx the script installs nothing and says how to get it."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--nginx", str(tmp_path / "no-nginx"), "--data-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "make cluster-deps" in result.stderr
    assert not list(tmp_path.iterdir())
