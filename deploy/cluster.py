"""`make cluster`: Cowrite's multi-machine topology on one machine, each part its own process.

The machine's PostgreSQL and Redis, one engine process (`python -m server serve-engine`), two web
replicas and nginx in front of them, in the foreground; prints the one address to open. Ctrl+C (or
SIGTERM) stops everything; a part that dies is reported with its last lines. docs/cluster.md.

Settings of its own, as flags or environment (flags win); every other `COWRITE_*` variable set
here reaches the engine and the replicas as it is (`COWRITE_LOG_LEVEL=info make cluster`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis
from psycopg import sql
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "nginx.conf"
DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/cowrite_cluster"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
STOP_WITHIN_S = 20.0  # a part still running this long after SIGTERM is killed
TAIL_LINES = 20  # of a part's output, shown when it dies
PLACEHOLDER = re.compile(r"\$\{(COWRITE_[A-Z_]+)\}")


class ClusterError(RuntimeError):
    """Something the cluster needs is missing or broken; the message says what to do."""


@dataclass
class Part:
    """One child process: its command, its extra environment, and where it answers `/healthz`."""

    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    health: str | None = None
    where: str = ""  # its addresses, for the start-up lines
    process: asyncio.subprocess.Process | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--host",
        default=env.get("COWRITE_CLUSTER_HOST", "127.0.0.1"),
        help="nginx's public address (env COWRITE_CLUSTER_HOST)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env.get("COWRITE_CLUSTER_PORT", "8080")),
        help="nginx's public port (env COWRITE_CLUSTER_PORT)",
    )
    parser.add_argument(
        "--base-port",
        type=int,
        default=int(env.get("COWRITE_CLUSTER_BASE_PORT", "0")),
        help="the parts' own ports count up from here: engine, replica a, replica b, then "
        "their metrics ports; 0 picks free ones (env COWRITE_CLUSTER_BASE_PORT)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(env.get("COWRITE_CLUSTER_DATA_DIR", ROOT / "data" / "cluster")),
        help="the shared key, the engine token and each part's data folder (env COWRITE_CLUSTER_DATA_DIR)",
    )
    parser.add_argument(
        "--database-url",
        default=env.get("COWRITE_CLUSTER_DATABASE_URL", DEFAULT_DATABASE),
        help="PostgreSQL database the replicas share, made if missing (env COWRITE_CLUSTER_DATABASE_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=env.get("COWRITE_CLUSTER_REDIS_URL", DEFAULT_REDIS),
        help="Redis the replicas share (env COWRITE_CLUSTER_REDIS_URL)",
    )
    parser.add_argument(
        "--allowed-hosts",
        default=env.get("COWRITE_ALLOWED_HOSTS", ""),
        help="names people use to reach --host besides it and localhost (env COWRITE_ALLOWED_HOSTS)",
    )
    parser.add_argument(
        "--start-within", type=float, default=300.0, help="seconds each part may take to start"
    )
    parser.add_argument(
        "--nginx",
        default=env.get("COWRITE_CLUSTER_NGINX", ""),
        help="the nginx program (env COWRITE_CLUSTER_NGINX; default: on PATH or /usr/sbin)",
    )
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir.resolve()  # the parts run in the repository, wherever this was started
    return args


def find_nginx(given: str) -> str:
    found = given or shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found or not os.access(found, os.X_OK):
        raise ClusterError(
            "nginx is missing: `make cluster-deps` installs Debian's (apt-get install nginx), "
            "or name one with --nginx"
        )
    return found


def ensure_database(url: str) -> None:
    """Make the database `url` names if its server has none by that name."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        raise ClusterError(f"--database-url must be a PostgreSQL URL, not {parsed.drivername}")
    name = parsed.database
    if not name:
        raise ClusterError("--database-url must name a database (…/cowrite_cluster)")
    admin = parsed.set(drivername="postgresql", database="postgres")
    try:
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists is None:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                print(f"cluster: made the database {name}", flush=True)
    except psycopg.Error as exc:
        where = parsed.render_as_string(hide_password=True)
        raise ClusterError(
            f"PostgreSQL at {where} cannot be used: {str(exc).strip()}; start it or set --database-url"
        ) from exc


def check_redis(url: str) -> None:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=5) as client:
            client.ping()
    except redis.RedisError as exc:
        raise ClusterError(f"Redis at {url} cannot be used: {exc}; start it or set --redis-url") from exc


def kept_secret(path: Path) -> str:
    """A random token kept in `path` (owner-only), made on first use: every part gets the same."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as out:
        out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ports(base: int, count: int) -> list[int]:
    return [base + i for i in range(count)] if base else [free_port() for _ in range(count)]


def part_folder(data_dir: Path, name: str) -> Path:
    """A part's data folder, with the converted weights shared with `make run`'s (converted once)."""
    folder = data_dir / name
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    models, shared = folder / "models", ROOT / "data" / "models"
    if not models.exists() and not models.is_symlink():
        shared.mkdir(parents=True, exist_ok=True)
        models.symlink_to(shared.resolve())
    return folder


def render(template: str, values: dict[str, str]) -> str:
    """`template` with each `${COWRITE_...}` replaced; a name without a value is a mistake."""

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise ClusterError(f"{TEMPLATE.name} uses ${{{match.group(1)}}}, which the cluster does not set")
        return values[match.group(1)]

    return PLACEHOLDER.sub(value, template)


def nginx_config(listen: str, replicas: list[str], folder: Path, scratch: Path) -> str:
    """A whole nginx.conf around deploy/nginx.conf, running in the foreground with its files in
    `folder` and its temporary files in `scratch`."""
    snippet = render(
        TEMPLATE.read_text(),
        {"COWRITE_LISTEN": listen, "COWRITE_REPLICA_A": replicas[0], "COWRITE_REPLICA_B": replicas[1]},
    )
    # as root, nginx's workers drop to nobody; their scratch folder is theirs
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {scratch / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    body = "\n".join("    " + line if line else "" for line in snippet.splitlines())
    return f"""# made by deploy/cluster.py from deploy/nginx.conf on every start; edit those instead
{user}worker_processes 1;
pid {folder / "nginx.pid"};
error_log stderr warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
{temp}
    # which replica answered: lets `make cluster`'s test see both are reached. An internal
    # address, so deploy/nginx.conf (what a real deployment uses) does not send it.
    add_header X-Cowrite-Upstream $upstream_addr always;

{body}
}}
"""


def scratch_folder() -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="cowrite-nginx-"))
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(scratch, nobody.pw_uid, nobody.pw_gid)
    return scratch


class Cluster:
    """The parts, started in order and stopped in reverse; `run()` until a signal or a fatal death."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.parts: list[Part] = []
        self.stopping = asyncio.Event()
        self.fatal: str | None = None

    def plan(self, nginx: str, scratch: Path) -> str:
        """The parts to start; returns the public address."""
        args, data = self.args, self.args.data_dir
        secret_key = kept_secret(data / "secret_key")
        engine_token = kept_secret(data / "engine_token")
        engine_port, port_a, port_b, metrics_engine, metrics_a, metrics_b = ports(args.base_port, 6)
        python = [sys.executable, "-m", "server"]
        common = {
            "COWRITE_HOST": "127.0.0.1",
            "COWRITE_LOG_LEVEL": os.environ.get("COWRITE_LOG_LEVEL", "warning"),
        }
        engine_url = f"http://127.0.0.1:{engine_port}"
        self.parts.append(
            Part(
                "engine",
                [*python, "serve-engine"],
                common
                | {
                    "COWRITE_PORT": str(engine_port),
                    "COWRITE_DATA_DIR": str(part_folder(data, "engine")),
                    "COWRITE_ENGINE_TOKEN": engine_token,
                    "COWRITE_METRICS_PORT": str(metrics_engine),
                },
                health=f"{engine_url}/healthz",
                where=f"on 127.0.0.1:{engine_port}, metrics on 127.0.0.1:{metrics_engine}",
            )
        )
        hosts = ",".join(name for name in [args.host, *args.allowed_hosts.split(",")] if name.strip())
        for name, port, metrics in (("web-a", port_a, metrics_a), ("web-b", port_b, metrics_b)):
            self.parts.append(
                Part(
                    name,
                    python,
                    common
                    | {
                        "COWRITE_PORT": str(port),
                        "COWRITE_DATA_DIR": str(part_folder(data, name)),
                        "COWRITE_DATABASE_URL": args.database_url,
                        "COWRITE_REDIS_URL": args.redis_url,
                        "COWRITE_ENGINE_URL": engine_url,
                        "COWRITE_ENGINE_TOKEN": engine_token,
                        "COWRITE_SECRET_KEY": secret_key,
                        "COWRITE_TRUSTED_PROXIES": "127.0.0.1",
                        "COWRITE_ALLOWED_HOSTS": hosts,
                        "COWRITE_METRICS_PORT": str(metrics),
                    },
                    health=f"http://127.0.0.1:{port}/healthz",
                    where=f"on 127.0.0.1:{port}, metrics on 127.0.0.1:{metrics}",
                )
            )
        folder = data / "nginx"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        config = folder / "nginx.conf"
        listen = f"{args.host}:{args.port}" if ":" not in args.host else f"[{args.host}]:{args.port}"
        config.write_text(
            nginx_config(listen, [f"127.0.0.1:{port_a}", f"127.0.0.1:{port_b}"], folder, scratch)
        )
        any_address = args.host in ("0.0.0.0", "::")
        public = f"http://{socket.gethostname() if any_address else args.host}:{args.port}"
        probe = f"http://127.0.0.1:{args.port}" if any_address else public
        self.parts.append(
            Part(
                "nginx",
                [nginx, "-e", "stderr", "-p", str(folder), "-c", str(config), "-g", "daemon off;"],
                health=f"{probe}/healthz",
                where=f"on {listen}, config in {config}",
            )
        )
        return public

    async def run(self, public: str) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stopping.set)
        try:
            async with asyncio.TaskGroup() as group:
                try:
                    for part in self.parts:  # in order: replicas need the engine, nginx the replicas
                        await self.start(part, group)
                        if not await self.started(part):
                            break
                    else:
                        print(
                            f"\nCowrite, two replicas behind nginx, is on {public}  (Ctrl+C stops it)\n",
                            flush=True,
                        )
                    await self.stopping.wait()
                finally:
                    await self.stop()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        if self.fatal is not None:
            print(f"cluster: {self.fatal}", file=sys.stderr, flush=True)
            return 1
        return 0

    async def start(self, part: Part, group: asyncio.TaskGroup) -> None:
        part.process = await asyncio.create_subprocess_exec(
            *part.command,
            cwd=ROOT,
            env={**os.environ, **part.env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl+C reaches this script only, which stops the parts in order
        )
        print(f"cluster: started {part.name} (pid {part.process.pid}) {part.where}", flush=True)
        group.create_task(self.relay(part))

    async def relay(self, part: Part) -> None:
        """Print the part's output, each line under its name, until it exits; then report the exit."""
        assert part.process is not None and part.process.stdout is not None
        async for raw in part.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            part.tail.append(line)
            print(f"{part.name:>6} | {line}", flush=True)
        code = await part.process.wait()
        if self.stopping.is_set():
            return
        last = "\n".join(f"         {line}" for line in part.tail) or "         (no output)"
        print(
            f"cluster: {part.name} exited with code {code}; its last lines:\n{last}",
            file=sys.stderr,
            flush=True,
        )
        web = [p for p in self.parts if p.name.startswith("web-")]
        if part.name == "nginx":
            self.fail("nginx exited, so nothing answers the public address: stopping")
        elif web and not any(p.running for p in web):
            self.fail("no web replica is left: stopping")
        elif part.name == "engine":
            print(
                "cluster: suggestions fail until the engine is back; the rest goes on",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(
                "cluster: nginx sends everyone to the other replica; the rest goes on",
                file=sys.stderr,
                flush=True,
            )

    def fail(self, reason: str) -> None:
        if self.fatal is None:
            self.fatal = reason
        self.stopping.set()

    async def started(self, part: Part) -> bool:
        """Wait for the part's `/healthz`, its exit, a signal or the time limit: True when healthy."""
        assert part.process is not None
        healthy = asyncio.create_task(self.healthy(part))
        ended = asyncio.create_task(part.process.wait())
        stopped = asyncio.create_task(self.stopping.wait())
        done, pending = await asyncio.wait(
            {healthy, ended, stopped}, timeout=self.args.start_within, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if healthy in done:
            return True
        if not done:
            self.fail(
                f"{part.name} did not answer {part.health} within {self.args.start_within:.0f} s: stopping"
            )
        elif ended in done:
            self.fail(f"{part.name} exited while starting: stopping")
        return False

    async def healthy(self, part: Part) -> None:
        if part.health is None:
            return
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(part.health)).status_code == 200:
                        return
                await asyncio.sleep(0.2)  # noqa: ASYNC110 - a child process has no event to wait on

    async def stop(self) -> None:
        """nginx first (no new requests), then the replicas (their sockets close and clients
        reconnect later), then the engine; each gets SIGTERM, then SIGKILL after STOP_WITHIN_S."""
        self.stopping.set()
        for part in reversed(self.parts):
            if not part.running:
                continue
            assert part.process is not None
            print(f"cluster: stopping {part.name}", flush=True)
            with contextlib.suppress(ProcessLookupError):
                part.process.terminate()
            try:
                await asyncio.wait_for(part.process.wait(), STOP_WITHIN_S)
            except TimeoutError:
                print(
                    f"cluster: {part.name} ignored SIGTERM for {STOP_WITHIN_S:.0f} s: killing it", flush=True
                )
                with contextlib.suppress(ProcessLookupError):
                    part.process.kill()
                await part.process.wait()


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    scratch: Path | None = None
    try:
        nginx = find_nginx(args.nginx)
        ensure_database(args.database_url)
        check_redis(args.redis_url)
        args.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        scratch = scratch_folder()
        cluster = Cluster(args)
        public = cluster.plan(nginx, scratch)
        return asyncio.run(cluster.run(public))
    except ClusterError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 2
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
