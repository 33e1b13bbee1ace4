"""Starting what the benchmarks measure: the fake backend and `ccgate serve` as processes of
their own on loopback ports, with an environment that routes every tier to the backend."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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


def stop(*processes: subprocess.Popen[bytes] | None) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(10)
