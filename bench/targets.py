"""The servers under test: the echo baseline and `parley serve` on SQLite or PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.proc import Server, cpu_seconds_by_name, start_server, stop_server

BIN = Path(sys.executable).parent
AGENT_PASSWORD = "bench-agent-password-1"


class Skip(Exception):
    """The scenario cannot run here (e.g. no PostgreSQL store yet); reported, not a failure."""


@dataclass
class Backend:
    name: str  # "sqlite" | "postgres"
    database_url: str | None = None  # server URL given by the user (postgres only)
    db_name: str = "parley_bench"
    broker_url: str | None = None


@dataclass
class Target:
    """A running server plus what the load generator needs to log in to it."""

    kind: str  # "echo" | "parley"
    backend: str  # "echo" | "sqlite" | "postgres"
    server: Server
    license_id: int = 1
    agents: list[tuple[str, str]] = field(default_factory=list)
    # CPU spent outside the server process for it (PostgreSQL backends), in seconds.
    extra_cpu: Callable[[], float] | None = None
    extra_servers: list[Server] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [self.server.pid, *(s.pid for s in self.extra_servers)]


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment minus inherited PARLEY_* settings, plus the bench's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(extra or {})
    return env


@contextlib.asynccontextmanager
async def echo_target(workdir: Path, floor: bool = False) -> AsyncIterator[Target]:
    """The echo baseline; `floor=True`: the transport floor (an answer and a push per frame)."""
    name = "floor" if floor else "echo"
    log = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log", dir=workdir)[1])
    argv = [sys.executable, "-m", "bench.echo_server", "--port", "0", *(["--floor"] if floor else [])]
    server = start_server(name, argv, log, clean_env())
    try:
        yield Target("echo", "echo", server)
    finally:
        stop_server(server)


def parley_argv() -> list[str]:
    script = BIN / "parley"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from parley.cli import main; main()"]


async def fresh_database(backend: Backend) -> str:
    """Drop and create the bench's own database so each server starts from nothing."""
    assert backend.database_url
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", backend.db_name):
        raise ValueError(f"bad database name {backend.db_name!r}")
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError as e:
        raise Skip("asyncpg is not installed (pip install -e '.[postgres]')") from e
    try:
        conn = await asyncpg.connect(backend.database_url, timeout=10)
    except Exception as e:
        raise Skip(f"PostgreSQL at {backend.database_url} unreachable: {e!r}") from e
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{backend.db_name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{backend.db_name}"')
    finally:
        await conn.close()
    parts = urlsplit(backend.database_url)
    return urlunsplit(parts._replace(path=f"/{backend.db_name}"))


def _admin(args: list[str], store: list[str], env: dict[str, str]) -> dict[str, object]:
    cmd = [*parley_argv(), "admin", *args, *store]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise RuntimeError(f"`parley admin {' '.join(args)}` exited {r.returncode}: {last[:300]}")
    out = json.loads(r.stdout)
    assert isinstance(out, dict), out
    return out


@contextlib.asynccontextmanager
async def parley_target(
    backend: Backend,
    workdir: Path,
    agents: int = 0,
    max_chats: int = 6,
    rate_limit_off: bool = False,
    nodes: int = 1,
) -> AsyncIterator[Target]:
    """A fresh store, `agents` agents made with `parley admin`, then `parley serve` (x nodes)."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"parley-{backend.name}-", dir=workdir))
    store = ["--data-dir", str(data_dir)]
    if backend.name == "postgres":
        store += ["--database-url", await fresh_database(backend)]
    if backend.broker_url:
        store += ["--broker-url", backend.broker_url]
    # Unlimited token rate: the bench creates thousands of customers from one IP.
    extra = {"PARLEY_TOKEN_RATE_PER_MIN": "0"}
    if rate_limit_off:
        extra["PARLEY_RATE_LIMIT"] = "0"
    env = clean_env(extra)

    servers: list[Server] = []
    try:
        try:
            license_id = int(str(_admin(["license", "create", "--name", "bench"], store, env)["license_id"]))
            creds = []
            for k in range(agents):
                email = f"bench-agent-{k}@example.com"
                _admin(
                    ["agent", "create", "--license", str(license_id), "--email", email,
                     "--name", f"Bench agent {k}", "--password", AGENT_PASSWORD, "--max-chats", str(max_chats)],
                    store, env,
                )  # fmt: skip
                creds.append((email, AGENT_PASSWORD))
            for n in range(nodes):
                # In a cluster each node keeps its node-local files apart.
                node_store = list(store)
                if n:
                    node_store[1] = str(data_dir / f"node{n}")
                    (data_dir / f"node{n}").mkdir(exist_ok=True)
                argv = [*parley_argv(), "serve", "--host", "127.0.0.1", "--port", "0", *node_store]
                log = data_dir.parent / f"{data_dir.name}-node{n}.log"
                servers.append(start_server(f"parley-{backend.name}-{n}", argv, log, env))
        except (RuntimeError, OSError) as e:
            # PostgreSQL and the cluster are optional and may not exist yet: skip, don't fail.
            if backend.name == "postgres":
                raise Skip(f"parley on PostgreSQL{' + Redis' if backend.broker_url else ''} did not start: {e}") from e
            raise
        extra_cpu = (lambda: cpu_seconds_by_name("postgres")) if backend.name == "postgres" else None
        try:
            yield Target("parley", backend.name, servers[0], license_id, creds, extra_cpu, servers[1:])
        except Exception as e:
            # What the server said when things went wrong is the first thing anyone will ask for.
            for srv in servers:
                state = "running" if srv.alive() else f"exited {srv.proc.returncode}"
                e.add_note(f"{srv.name} ({state}), last log lines:\n{srv.log_tail(15)}")
            raise
    finally:
        for s in servers:
            stop_server(s)
