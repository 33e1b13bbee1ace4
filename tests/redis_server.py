"""A real Redis for the tests: REDIS_URL if set → testcontainers when a Docker engine answers →
otherwise `redis-server` (the Debian package `make test` installs) on a free port.
A Redis the tests did not start is never flushed.

`redis_cluster()` (3 masters) and `sentinel_set()` (1 master, 1 replica, 3 sentinels) are
always real `redis-server` processes on free ports, started here."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as redis_sync
import redis.cluster as redis_cluster_sync

from tests.fakes.server import free_port


@dataclass
class RedisServer:
    url: str
    owned: bool  # started by the tests: may be flushed, restarted, killed
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    workdir: str = ""
    extra: list[str] = field(default_factory=list)  # more redis-server arguments
    mode: str = "standalone"  # REDIS_MODE for an edge pointed at it
    config: str = ""  # a config file, given first (a sentinel needs one it can rewrite)

    def client(self) -> Any:
        return redis_sync.Redis.from_url(self.url)

    def flush(self) -> None:
        if self.owned:
            self.client().flushall()

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
                *([self.config] if self.config else []),
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
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis_sync.Redis(port=self.port, socket_timeout=0.5).ping():
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


def _owned(port: int, workdir: str, extra: list[str], *config: str) -> RedisServer:
    """A redis-server on `port`; `config` lines go to a config file (sentinels rewrite theirs)."""
    conf = Path(workdir) / f"redis-{port}.conf"
    if config:
        conf.write_text("\n".join(config) + "\n")
    server = RedisServer(
        f"redis://127.0.0.1:{port}/0",
        owned=True,
        port=port,
        workdir=workdir,
        extra=extra,
        config=str(conf) if config else "",
    )
    server.start()
    return server


def _wait(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except redis_sync.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


@dataclass
class RedisClusterSet:
    """Three masters, every slot assigned; an edge needs REDIS_MODE=cluster and any node's URL."""

    nodes: list[RedisServer]
    owned: bool = True
    mode: str = "cluster"
    process: None = None

    @property
    def url(self) -> str:
        # The first node holds slots 0-5460, `{openai_compat}` (slot 4952) among them; clients
        # are pointed at the last one so that one which does not follow MOVED fails.
        return self.nodes[-1].url

    def client(self) -> Any:
        return redis_cluster_sync.RedisCluster.from_url(self.url)

    def flush(self) -> None:
        self.client().flushall()  # every primary


@contextmanager
def redis_cluster(masters: int = 3) -> Iterator[RedisClusterSet]:
    workdir = tempfile.mkdtemp()
    nodes: list[RedisServer] = []
    try:
        for _ in range(masters):
            port = free_port()
            node_dir = Path(workdir) / str(port)
            node_dir.mkdir()
            nodes.append(
                _owned(
                    port,
                    str(node_dir),
                    ["--cluster-enabled", "yes", "--cluster-port", str(free_port())],
                )
            )
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        _wait(
            lambda: all(n.client().cluster("info")["cluster_state"] == "ok" for n in nodes),
            "cluster_state:ok on every node",
        )
        yield RedisClusterSet(nodes)
    finally:
        for node in nodes:
            node.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class SentinelSet:
    """One master, one replica, three sentinels watching `MASTER`; a quick failover timing."""

    master: RedisServer
    replica: RedisServer
    sentinels: list[RedisServer]
    owned: bool = True
    mode: str = "sentinel"
    name: str = "ccgate"

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.name}"

    def master_port(self) -> int:
        address = self.sentinels[0].client().sentinel_get_master_addr_by_name(self.name)
        return int(address[1])

    def client(self) -> Any:
        return redis_sync.Redis(port=self.master_port())

    def flush(self) -> None:
        self.client().flushall()


@contextmanager
def sentinel_set(down_after_ms: int = 1000) -> Iterator[SentinelSet]:
    workdir = tempfile.mkdtemp()
    started: list[RedisServer] = []
    try:
        master = _owned(free_port(), workdir, [])
        started.append(master)
        replica = _owned(free_port(), workdir, ["--replicaof", "127.0.0.1", str(master.port)])
        started.append(replica)
        _wait(
            lambda: replica.client().info("replication")["master_link_status"] == "up",
            "the replica's sync",
        )
        for _ in range(3):
            started.append(
                _owned(
                    free_port(),
                    workdir,
                    ["--sentinel"],
                    f"sentinel monitor ccgate 127.0.0.1 {master.port} 2",
                    f"sentinel down-after-milliseconds ccgate {down_after_ms}",
                    "sentinel failover-timeout ccgate 10000",
                )
            )
        sentinels = started[2:]
        _wait(
            lambda: all(
                s.client().sentinel_master("ccgate")["num-other-sentinels"] == 2
                and s.client().sentinel_master("ccgate")["num-slaves"] == 1
                for s in sentinels
            ),
            "three sentinels seeing each other and the replica",
        )
        yield SentinelSet(master, replica, sentinels)
    finally:
        for server in started:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
