"""`ccgate serve` as a subprocess, for tests of the real command (start-up, ports, processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import IO

import httpx
import pytest

# A route whose backend is never asked: the edge starts and serves its own routes.
UNASKED_BACKEND = {"MODEL": "openai_compat/m", "OPENAI_COMPAT_BASE_URL": "http://127.0.0.1:9/v1"}


def start_serve(
    *args: str,
    stderr: IO[bytes] | int = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`ccgate serve ARGS` in its own session (a failed test can kill its workers too), with
    `env` over the caller's environment (by default a backend that is never asked)."""
    return subprocess.Popen(
        [sys.executable, "-m", "ccgate.cli", "serve", *args],
        env={**os.environ, **(UNASKED_BACKEND if env is None else env)},
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )


def wait_healthy(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "ccgate serve exited before answering"
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    pytest.fail(f"no healthy /healthz at {url}")
