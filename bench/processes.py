"""Starting what the benchmarks measure: the fake backend and `ccgate serve` as processes of
their own on loopback ports, with an environment that routes every tier to the backend."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def edge_env(backend_port: int, **settings: str) -> dict[str, str]:
    """The edge routes to the fake backend, with no limits unless `settings` set some, and no
    tracing unless `settings` turn it on (an OTEL_ variable of the caller's shell would)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        {
            "MODEL": "openai_compat/m",
            "OPENAI_COMPAT_BASE_URL": f"http://127.0.0.1:{backend_port}/v1",
            "PROVIDER_RATE_LIMIT": "0",
            "PROVIDER_MAX_CONCURRENCY": "0",
            "LOG_LEVEL": "ERROR",
        }
    )
    env.update(settings)
    return env


def start_backend(port: int, chunks: int, quiet: bool = False) -> subprocess.Popen[bytes]:
    out: Any = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_backend", str(port), str(chunks)],
        stdout=out,
        stderr=out,
    )
    wait_port(port)
    return process


def start_edge(
    port: int, env: dict[str, str], stderr: IO[bytes] | int = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "ccgate.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    wait_port(port)
    return process


def pin(pids: list[int], core: str) -> None:
    """Each process, with all its threads, to one core (`taskset`)."""
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", core, str(pid)], capture_output=True)


def stop(*processes: subprocess.Popen[bytes] | None) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(10)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (steadier than wall time on a shared machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """The process and its descendants (LiteLLM and ccr serve from child processes)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [pid]
    for child in children.read_text().split() if children.exists() else []:
        found += tree(int(child))
    return found


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in tree(pid):
        try:
            total += process_cpu_seconds(member)
        except OSError:  # exited meanwhile
            pass
    return total


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_rss_mb(pid: int) -> float:
    return sum(rss_mb(p) for p in tree(pid))
