"""Several `ccgate serve` processes, one Redis (or a 3-master Redis Cluster): the quota holds
across replicas and users, and a replica killed mid-stream gives its slot back by lease expiry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.fakes.backend import FakeBackend, Turn
from tests.fakes.server import free_port
from tests.redis_server import RedisClusterSet, RedisServer, redis_cluster, redis_server

RATE, WINDOW, CONCURRENCY = 8, 1.0, 3


@pytest.fixture(scope="module")
def redis_url() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module", params=["standalone", "cluster"])
def shared_redis(
    request: pytest.FixtureRequest, redis_url: RedisServer
) -> Iterator[RedisServer | RedisClusterSet]:
    """The same guarantees on one Redis and on a Redis Cluster (REDIS_MODE=cluster)."""
    if request.param == "standalone":
        yield redis_url
        return
    with redis_cluster() as cluster:
        yield cluster


def start_edges(n: int, env: dict[str, str]) -> list[tuple[subprocess.Popen[bytes], str]]:
    edges = []
    for _ in range(n):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "ccgate.cli", "serve", "--port", str(port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        edges.append((process, f"http://127.0.0.1:{port}"))
    for process, url in edges:
        deadline = time.monotonic() + 60  # a loaded 2-core CI machine starts 4 edges slowly
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("edge did not start")
            time.sleep(0.1)
    return edges


def stop(edges: list[tuple[subprocess.Popen[bytes], str]]) -> None:
    for process, _ in edges:
        if process.poll() is None:
            process.terminate()
    for process, _ in edges:
        process.wait(15)


def edge_env(
    backend: FakeBackend, redis: RedisServer | RedisClusterSet, provider_tag: str, **extra: str
) -> dict[str, str]:
    return {
        "MODEL": "openai_compat/m",
        "OPENAI_COMPAT_BASE_URL": backend.url + "/v1",
        "REDIS_URL": redis.url,
        "REDIS_MODE": redis.mode,
        "PROVIDER_RATE_LIMIT": str(RATE),
        "PROVIDER_RATE_WINDOW": str(WINDOW),
        "PROVIDER_MAX_CONCURRENCY": str(CONCURRENCY),
        "LIMITER_QUEUE_TIMEOUT": "60",
        "CCGATE_TEST_TAG": provider_tag,
        **extra,
    }


def leases_in_redis(redis: RedisServer | RedisClusterSet) -> int:
    return int(redis.client().zcard("ccgate:{openai_compat}:leases"))


def test_four_replicas_eight_users_never_exceed_the_quota(
    shared_redis: RedisServer | RedisClusterSet,
) -> None:
    redis_url = shared_redis
    if not redis_url.owned:
        pytest.skip("uses the fixed provider keys of openai_compat; needs a Redis the tests own")
    redis_url.flush()
    with FakeBackend(default=Turn(text="answer " * 20, chunk_size=20, delay=0.05)) as backend:
        edges = start_edges(4, edge_env(backend, redis_url, "rate"))
        try:
            body = {
                "model": "claude-sonnet-4-8",
                "max_tokens": 50,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            }

            def user(index: int) -> list[int]:
                statuses = []
                with httpx.Client(timeout=90) as client:
                    for burst in range(4):
                        url = edges[(index + burst) % 4][1]
                        statuses.append(
                            client.post(
                                url + "/v1/messages",
                                json={
                                    **body,
                                    "metadata": {"user_id": f'{{"device_id": "user-{index}"}}'},
                                },
                            ).status_code
                        )
                return statuses

            with ThreadPoolExecutor(8) as pool:
                statuses = [s for result in pool.map(user, range(8)) for s in result]
            assert statuses == [200] * 32  # no request lost: all waited their turn
            assert backend.max_in_flight <= CONCURRENCY
            arrivals = sorted(backend.arrivals)
            assert len(arrivals) == 32
            # Grants are timed on Redis's clock; arrivals at the backend carry a few ms of
            # network jitter, so the window checked here is 50 ms shorter than the quota's.
            worst = max(
                sum(1 for t in arrivals if start <= t < start + WINDOW - 0.05) for start in arrivals
            )
            assert worst <= RATE
            assert arrivals[-1] - arrivals[0] >= (32 / RATE - 1) * WINDOW * 0.9
        finally:
            stop(edges)
        assert leases_in_redis(redis_url) == 0


def test_killed_replica_gives_its_slot_back(shared_redis: RedisServer | RedisClusterSet) -> None:
    redis_url = shared_redis
    if not redis_url.owned:
        pytest.skip("uses the fixed provider keys of openai_compat; needs a Redis the tests own")
    redis_url.flush()
    with FakeBackend() as backend:
        env = edge_env(
            backend, redis_url, "kill", PROVIDER_MAX_CONCURRENCY="1", LIMITER_LEASE_TTL="2"
        )
        edges = start_edges(2, env)
        try:
            backend.script(Turn(text="never finishes", stall_after_first=60))
            body = {
                "model": "claude-sonnet-4-8",
                "max_tokens": 50,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            }

            def hold() -> None:
                try:
                    httpx.post(edges[0][1] + "/v1/messages", json=body, timeout=70)
                except httpx.HTTPError:
                    pass

            threading.Thread(target=hold, daemon=True).start()
            deadline = time.monotonic() + 10
            while not backend.open_streams and time.monotonic() < deadline:
                time.sleep(0.05)  # the held stream is at the backend (it took the stalling turn)
            assert leases_in_redis(redis_url) == 1
            edges[0][0].send_signal(signal.SIGKILL)
            edges[0][0].wait(10)
            started = time.monotonic()
            response = httpx.post(
                edges[1][1] + "/v1/messages", json={**body, "stream": False}, timeout=30
            )
            assert response.status_code == 200
            assert time.monotonic() - started < 2 + 3  # lease TTL plus scheduling slack
        finally:
            stop(edges)


def test_redis_restart_degrades_then_recovers_and_disconnects_free_slots(
    redis_url: RedisServer,
) -> None:
    if not redis_url.owned or redis_url.process is None:
        pytest.skip("needs a redis-server the tests started themselves (to stop and restart it)")
    redis_url.flush()
    body = {
        "model": "claude-sonnet-4-8",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with FakeBackend() as backend:
        edges = start_edges(1, edge_env(backend, redis_url, "restart"))
        url = edges[0][1]
        try:
            # A client that goes away mid-stream frees its slot at once.
            backend.script(Turn(text="x" * 200, chunk_size=1, delay=0.05))
            with httpx.stream(
                "POST", url + "/v1/messages", json={**body, "stream": True}, timeout=10
            ) as r:
                for _ in r.iter_bytes():
                    break
            deadline = time.monotonic() + 1.0
            while leases_in_redis(redis_url) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert leases_in_redis(redis_url) == 0

            redis_url.stop()
            assert httpx.post(url + "/v1/messages", json=body, timeout=30).status_code == 200
            assert httpx.get(url + "/readyz", timeout=5).json()["status"] == "degraded"
            redis_url.start()
            deadline = time.monotonic() + 15
            while httpx.get(url + "/readyz", timeout=5).json()["status"] != "ready":
                assert time.monotonic() < deadline, "the edge did not recover without a restart"
                httpx.post(url + "/v1/messages", json=body, timeout=30)
                time.sleep(0.5)
            assert httpx.post(url + "/v1/messages", json=body, timeout=30).status_code == 200
            assert leases_in_redis(redis_url) == 0
        finally:
            if redis_url.process is None:
                redis_url.start()
            stop(edges)
