"""A real Redis for the tests: REDIS_URL if set → testcontainers when a Docker engine answers →
otherwise `redis-server` (the Debian package `make test` installs) on a free port.
A Redis the tests did not start is never flushed."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis as redis_sync

from tests.fakes.server import free_port


@dataclass
class RedisServer:
    url: str
    owned: bool  # started by the tests: may be flushed, restarted, killed
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    workdir: str = ""

    def flush(self) -> None:
        if self.owned:
            redis_sync.Redis.from_url(self.url).flushall()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def restart(self) -> None:
        """Down and up again with its data, as a Redis with persistence restarts."""
        redis_sync.Redis.from_url(self.url).save()
        self.stop()
        self.start()

    def start(self) -> None:
        """(Re)start the owned redis-server on the same port."""
        assert self.owned and self.port
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis_sync.Redis.from_url(self.url, socket_timeout=0.5).ping():
                    return
            except redis_sync.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    if os.environ.get("REDIS_URL"):
        yield RedisServer(os.environ["REDIS_URL"], owned=False)
        return
    if _docker_answers():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7-alpine") as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            yield RedisServer(f"redis://{host}:{port}/0", owned=True)
        return
    if shutil.which("redis-server") is None:
        raise RuntimeError(
            "no Redis: set REDIS_URL, run Docker, or install redis-server (make test does)"
        )
    port = free_port()
    server = RedisServer(
        f"redis://127.0.0.1:{port}/0", owned=True, port=port, workdir=tempfile.mkdtemp()
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
