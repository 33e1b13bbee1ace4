"""`ccgate serve` serves from a process without the command set's modules: none of typer's
pydantic, none of uvicorn's WebSocket stack (memory per worker, issue 17)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fakes.server import free_port
from tests.serving import start_serve, wait_healthy

# Shared objects a worker must not map: pydantic-core (typer's option coercion) and websockets'
# C speed-ups (uvicorn's ws="auto" imports websockets whenever it is installed).
NOT_IN_A_WORKER = ("_pydantic_core", "websockets/speedups")


def cmdline_of(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def mapped(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.parametrize("workers", [1, 2])
def test_the_serving_processes_carry_no_cli_modules(workers: int) -> None:
    port = free_port()
    process = start_serve("--port", str(port), "--workers", str(workers), stderr=subprocess.PIPE)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        spawned = [int(c) for c in children if b"spawn_main" in cmdline_of(int(c))]
        assert len(spawned) == (0 if workers == 1 else workers)
        for pid in spawned or [process.pid]:  # the processes that serve requests
            maps = mapped(pid)
            assert not [name for name in NOT_IN_A_WORKER if name in maps], pid
        process.send_signal(signal.SIGTERM)
        process.wait(30)  # uvicorn re-raises the signal once it has shut down: -15
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    report = process.stderr.read().decode() if process.stderr else ""
    assert f"ccgate edge on http://127.0.0.1:{port} ({workers} worker(s))" in report


def test_serve_help_lists_its_options() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "ccgate.cli", "serve", "--help"], capture_output=True, check=True
    ).stdout.decode()
    for option in ("--host", "--port", "--workers", "--insecure-no-auth", "--admin-port"):
        assert option in shown


def test_an_admin_port_from_the_environment_that_is_no_port_stops_the_start() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ccgate.cli", "serve"],
        env={**os.environ, "CCGATE_ADMIN_PORT": "metrics"},
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"--admin-port: invalid int value: 'metrics'" in result.stderr


def test_the_workers_end_when_their_supervisor_is_killed() -> None:
    """SIGKILL leaves the supervisor no time to stop its workers: they must see it go."""
    port = free_port()
    process = start_serve("--port", str(port), "--workers", "2")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        workers = [int(c) for c in children if b"spawn_main" in cmdline_of(int(c))]
        assert len(workers) == 2
        process.kill()
        process.wait()
        deadline = time.monotonic() + 60  # a generous bound on a graceful shutdown, not a timing
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if alive(pid)], "workers outlived their supervisor"
        with pytest.raises(httpx.ConnectError):  # and nothing answers on the port any more
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its session: the workers, if they stayed
        except ProcessLookupError:
            pass


def alive(pid: int) -> bool:
    """Running, not a zombie (a reaped orphan's entry is gone; an unreaped one is state Z)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
