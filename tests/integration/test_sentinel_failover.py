"""A Sentinel set (1 master, 1 replica, 3 sentinels) behind 4 edges: the master is killed with
kill -9 mid-load and the edges follow the promoted replica without a restart. What the failover
costs is measured and bounded: no request fails; while Redis is away each edge admits its
1/LIMITER_REPLICAS share locally, so at most one extra quota's worth is admitted (the Redis
grants still running plus the local shares); the seconds until every edge is back on Redis are
printed (README, "Redis Cluster and Sentinel")."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from arq import create_pool

from ccgate.bot import sessions
from ccgate.bot.jobs import worker_settings
from ccgate.bot.queue import QUEUE
from ccgate.shared.settings import Settings
from tests.fakes.backend import FakeBackend, Turn
from tests.integration.test_replicas import start_edges, stop
from tests.redis_server import SentinelSet, sentinel_set

RATE, WINDOW, CONCURRENCY, EDGES, USERS = 8, 1.0, 4, 4, 8
LOAD_BEFORE, LOAD_AFTER = 3.0, 12.0  # seconds of load before the kill, after recovery


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSet]:
    with sentinel_set() as s:
        yield s


async def test_the_bot_queue_and_sessions_run_on_the_sentinel_set(sentinels: SentinelSet) -> None:
    settings = Settings.from_env(None, redis_url=sentinels.url, redis_mode="sentinel")
    pool = await create_pool(worker_settings(settings)["redis_settings"])  # arq's Sentinel
    try:
        job = await pool.enqueue_job(
            "run_claude", {"text": "hi"}, _job_id="sentinel-job", _queue_name=QUEUE
        )
        assert job is not None
        await sessions.update(pool, "telegram", "42", session_id="s-1", project="p")
        assert (await sessions.load(pool, "telegram", "42")).session_id == "s-1"
    finally:
        await pool.aclose()
    master = sentinels.client()  # the master the sentinels name holds both
    assert master.zscore(QUEUE, "sentinel-job") is not None
    assert master.exists(sessions.chat_key("telegram", "42"))


def worst_window(arrivals: list[float]) -> int:
    """Most backend arrivals in any WINDOW (50 ms shorter: jitter between grant and arrival)."""
    return max(sum(1 for t in arrivals if s <= t < s + WINDOW - 0.05) for s in arrivals)


def test_edges_follow_a_new_master_and_the_cost_is_bounded(sentinels: SentinelSet) -> None:
    sentinels.flush()
    old_master = sentinels.master_port()
    with FakeBackend(default=Turn(text="answer " * 10, chunk_size=10, delay=0.05)) as backend:
        env = {
            "MODEL": "openai_compat/m",
            "OPENAI_COMPAT_BASE_URL": backend.url + "/v1",
            "REDIS_URL": sentinels.url,
            "REDIS_MODE": "sentinel",
            "PROVIDER_RATE_LIMIT": str(RATE),
            "PROVIDER_RATE_WINDOW": str(WINDOW),
            "PROVIDER_MAX_CONCURRENCY": str(CONCURRENCY),
            "LIMITER_REPLICAS": str(EDGES),  # the local share while Redis is away
            "LIMITER_QUEUE_TIMEOUT": "60",  # LIMITER_LEASE_TTL: the default 30 s
        }
        edges = start_edges(EDGES, env)
        results: list[tuple[float, int]] = []  # (finished at, status)
        stop_load = threading.Event()
        body = {
            "model": "claude-sonnet-4-8",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }

        def user(index: int) -> None:
            with httpx.Client(timeout=90) as client:
                n = 0
                while not stop_load.is_set():
                    url = edges[(index + n) % EDGES][1]
                    n += 1
                    try:
                        status = client.post(
                            url + "/v1/messages",
                            json={
                                **body,
                                "metadata": {"user_id": f'{{"device_id": "user-{index}"}}'},
                            },
                        ).status_code
                    except httpx.HTTPError:
                        status = 0
                    results.append((time.monotonic(), status))

        def leases() -> set[bytes]:
            return set(sentinels.client().zrange("ccgate:{openai_compat}:leases", 0, -1))

        def leases_left() -> int:
            return len(leases())

        def all_on_redis() -> bool:
            for _, url in edges:
                health = httpx.get(url + "/readyz", timeout=5).json()
                if health["status"] != "ready":
                    return False
            return True

        try:
            with ThreadPoolExecutor(USERS) as pool:
                for i in range(USERS):
                    pool.submit(user, i)
                time.sleep(LOAD_BEFORE)
                assert all_on_redis()
                held_at_kill = leases()  # their releases will find the master gone
                killed_at = time.monotonic()
                sentinels.master.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
                sentinels.master.process.wait(10)  # type: ignore[union-attr]
                sentinels.master.process = None
                promoted_at = back_at = None
                saw_degraded = False
                deadline = killed_at + 60
                while back_at is None:
                    assert time.monotonic() < deadline, "the edges did not come back to Redis"
                    try:
                        if promoted_at is None and sentinels.master_port() != old_master:
                            promoted_at = time.monotonic()
                    except Exception:
                        pass
                    on_redis = all_on_redis()
                    saw_degraded = saw_degraded or not on_redis
                    if promoted_at is not None and saw_degraded and on_redis:
                        back_at = time.monotonic()
                    time.sleep(0.1)
                time.sleep(3)  # each request takes ~0.5 s: those held at the kill have ended
                stuck = held_at_kill & leases()  # still taking a slot on the promoted replica
                time.sleep(LOAD_AFTER - 3)
                stop_load.set()
            # Every request has finished: no lease may be left behind on the new master (one
            # whose release failed while Redis was away is sent again, not left to its TTL).
            settle = time.monotonic() + 3
            while leases_left() and time.monotonic() < settle:
                time.sleep(0.05)
            stale_leases = leases_left()
        finally:
            stop_load.set()
            stop(edges)
        assert promoted_at is not None
        arrivals = sorted(backend.arrivals)
        failed = [s for _, s in results if s != 200]
        before = [t for t in arrivals if t < killed_at]
        after_recovery = [t for t in arrivals if t > back_at + 1]
        report = {
            "requests": len(results),
            "failed": len(failed),
            "promoted_after_s": round(promoted_at - killed_at, 2),
            "edges_back_on_redis_after_s": round(back_at - killed_at, 2),
            "worst_window_whole_run": worst_window(arrivals),
            "worst_window_before_kill": worst_window(before),
            "worst_window_after_recovery": worst_window(after_recovery),
            "max_in_flight": backend.max_in_flight,
            "leases_held_at_kill": len(held_at_kill),
            "of_them_stuck_3s_after_recovery": len(stuck),
            "served_per_s_after_recovery": round(
                sum(1 for t in arrivals if back_at < t <= back_at + LOAD_AFTER) / LOAD_AFTER, 2
            ),
            "leases_left_behind": stale_leases,
        }
        print("\nsentinel failover:", report)
        assert failed == []  # nothing failed: admitted locally while Redis was away
        assert held_at_kill and not stuck  # released late, not left to the 30 s lease TTL
        assert stale_leases == 0
        assert sentinels.client().ping()  # the replica is the master now
        assert report["worst_window_before_kill"] <= RATE
        assert report["worst_window_after_recovery"] <= RATE  # back to the shared quota
        # Bound on the transition: the shared quota plus every edge's local share of it.
        assert report["worst_window_whole_run"] <= 2 * RATE
        assert backend.max_in_flight <= 2 * CONCURRENCY
