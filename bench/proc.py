"""Process plumbing: start/stop the servers we own, CPU pinning, /proc readers.

Only processes started here are ever signalled, always by their own PID.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
LISTEN_RE = re.compile(r"listening on http://([0-9.]+):(\d+)")

# Core layout: the server under test on core 0, the load generator on core 1.
SERVER_CORE = 0
LOADGEN_CORE = 1
# Read once at import: after pin_self_to_loadgen_core() our own affinity is a single core.
_CPUS = frozenset(os.sched_getaffinity(0))


class ServerStartError(RuntimeError):
    """The server exited or never printed its `listening on` line."""


def can_pin() -> bool:
    """Pinning needs two usable cores and the taskset binary."""
    return {SERVER_CORE, LOADGEN_CORE} <= _CPUS and shutil.which("taskset") is not None


def pin_self_to_loadgen_core() -> bool:
    if not can_pin():
        return False
    os.sched_setaffinity(0, {LOADGEN_CORE})
    return True


def raise_nofile_limit(wanted: int = 65536) -> int:
    """Lift the soft open-files limit towards the hard one; children inherit it.

    The 5,000/10,000-connection scenarios need one fd per socket on both sides.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _read_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and ')', so split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def _children(pid: int) -> list[int]:
    """Direct children, by scanning /proc (works without CONFIG_PROC_CHILDREN)."""
    kids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _read_stat(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants, in case the server forks workers."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """utime+stime of the process (all threads) and, by default, its live descendants."""
    total = 0
    for p in process_tree(pid) if tree else [pid]:
        fields = _read_stat(p)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return total / CLK_TCK


def cpu_seconds_by_name(comm: str) -> float:
    """Summed CPU of every process named `comm` (read-only; used for the PostgreSQL backends)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        if raw[raw.find("(") + 1 : raw.rfind(")")] == comm:
            rest = raw[raw.rfind(")") + 2 :].split()
            total += int(rest[11]) + int(rest[12])
    return total / CLK_TCK


def rss_kb(pid: int, tree: bool = True) -> int:
    """VmRSS in KiB, summed over the process tree."""
    total = 0
    for p in process_tree(pid) if tree else [pid]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


def machine_busy_seconds() -> float:
    """user+nice+system of all cores from /proc/stat: lets us see CPU used by processes not ours."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return (int(fields[1]) + int(fields[2]) + int(fields[3])) / CLK_TCK


def self_cpu_seconds() -> float:
    """CPU of this process (the load generator), all threads."""
    t = os.times()
    return t.user + t.system


@dataclass
class Server:
    """A server process we started, and where it listens."""

    name: str
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_server(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    pin: bool = True,
) -> Server:
    """Start argv pinned to the server core; wait for `listening on http://H:P` in its output.

    Output goes to a file, not a pipe, so a chatty server can never block on a full pipe.
    """
    cmd = list(argv)
    if pin and can_pin():
        cmd = ["taskset", "-c", str(SERVER_CORE), *cmd]
    log = log_path.open("wb")
    try:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
    finally:
        log.close()  # the child holds its own descriptor
    server = Server(name, proc, "", 0, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = LISTEN_RE.search(log_path.read_text(errors="replace"))
        if m:
            server.host, server.port = m.group(1), int(m.group(2))
            return server
        if proc.poll() is not None:
            raise ServerStartError(f"{name} exited with {proc.returncode} before listening:\n{server.log_tail()}")
        time.sleep(0.05)
    stop_server(server)
    raise ServerStartError(f"{name} printed no 'listening on' line within {timeout:.0f}s:\n{server.log_tail()}")


def stop_server(server: Server, grace: float = 10.0) -> int | None:
    """SIGTERM our own child by PID, SIGKILL after `grace` seconds. Returns its exit code."""
    proc = server.proc
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        stop_server(server)
