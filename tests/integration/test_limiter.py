"""One suite, both limiters: the in-memory twin and the Redis limiter against a real Redis."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis as redis_sync

from ccgate.limiter.api import Denied, Lease, Limiter, ProviderLimits
from ccgate.limiter.failover import FailoverLimiter
from ccgate.limiter.memory import MemoryLimiter
from ccgate.limiter.redis import RedisLimiter
from tests.redis_server import RedisServer, redis_server

Factory = Callable[[ProviderLimits], Limiter]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest, redis_url: RedisServer) -> AsyncIterator[Factory]:
    made: list[Limiter] = []

    def factory(limits: ProviderLimits, **kwargs: Any) -> Limiter:
        limiter: Limiter
        if request.param == "memory":
            limiter = MemoryLimiter(lambda _: limits)
        else:
            limiter = RedisLimiter(redis_url.url, lambda _: limits, **kwargs)
        made.append(limiter)
        return limiter

    yield factory
    for limiter in made:
        await limiter.close()


def provider() -> str:
    return "t" + secrets.token_hex(4)  # fresh keys per test, even on a shared Redis


def soon(seconds: float) -> float:
    return time.monotonic() + seconds


async def test_rate_is_exact_and_denial_says_when(make: Factory) -> None:
    limiter, p = make(ProviderLimits(5, 1.0, 0)), provider()
    leases = [await limiter.admit(p, "u", soon(0)) for _ in range(5)]
    assert all(isinstance(lease, Lease) for lease in leases)
    denied = await limiter.admit(p, "u", soon(0.05))
    assert isinstance(denied, Denied) and denied.reason == "rate"
    assert 0.5 <= denied.retry_after <= 1.5


async def test_queued_requests_get_the_next_window(make: Factory) -> None:
    limiter, p = make(ProviderLimits(2, 0.5, 0)), provider()
    started = time.monotonic()
    results = await asyncio.gather(*(limiter.admit(p, "u", soon(3)) for _ in range(4)))
    assert all(isinstance(r, Lease) for r in results)
    assert time.monotonic() - started >= 0.45  # two had to wait for the window to slide
    assert sum(1 for r in results if isinstance(r, Lease) and r.waited > 0.3) == 2


async def test_concurrency_cap_and_release(make: Factory) -> None:
    limiter, p = make(ProviderLimits(0, 1.0, 2)), provider()
    a = await limiter.admit(p, "u", soon(0))
    b = await limiter.admit(p, "u", soon(0))
    assert isinstance(a, Lease) and isinstance(b, Lease)
    waiting = asyncio.create_task(limiter.admit(p, "u", soon(3)))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await limiter.release(a, "ok")
    c = await asyncio.wait_for(waiting, 3)
    assert isinstance(c, Lease)
    status = (await limiter.status())["providers"][p]
    assert status["in_flight"] == 2


async def test_cancel_while_queued_leaves_no_trace(make: Factory) -> None:
    limiter, p = make(ProviderLimits(0, 1.0, 1)), provider()
    held = await limiter.admit(p, "u", soon(0))
    assert isinstance(held, Lease)
    waiting = asyncio.create_task(limiter.admit(p, "other", soon(5)))
    await asyncio.sleep(0.2)
    assert (await limiter.status())["providers"][p]["queued"] == 1  # both backends say so
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await limiter.release(held, "ok")
    await asyncio.sleep(0.1)
    status = (await limiter.status())["providers"][p]
    assert status["in_flight"] == 0 and sum(status["queue_depth"].values()) == 0
    assert status["queued"] == 0
    assert isinstance(await limiter.admit(p, "u", soon(0)), Lease)


async def test_deadline_gives_429_with_retry_after(make: Factory) -> None:
    limiter, p = make(ProviderLimits(0, 1.0, 1)), provider()
    assert isinstance(await limiter.admit(p, "u", soon(0)), Lease)
    started = time.monotonic()
    denied = await limiter.admit(p, "u", soon(0.3))
    assert isinstance(denied, Denied) and denied.retry_after >= 1
    assert time.monotonic() - started >= 0.25
    assert sum((await limiter.status())["providers"][p]["queue_depth"].values()) == 0


async def test_upstream_429_pauses_the_provider(make: Factory) -> None:
    limiter, p = make(ProviderLimits(0, 1.0, 0)), provider()
    await limiter.report_429(p, 0.5)
    denied = await limiter.admit(p, "u", soon(0.1))
    assert isinstance(denied, Denied) and denied.reason == "paused"
    started = time.monotonic()
    lease = await limiter.admit(p, "u", soon(3))
    assert isinstance(lease, Lease) and time.monotonic() - started >= 0.3


async def test_daily_quota(make: Factory) -> None:
    limiter, p = make(ProviderLimits(0, 1.0, 0, daily_limit=2)), provider()
    for _ in range(2):
        lease = await limiter.admit(p, "u", soon(0))
        assert isinstance(lease, Lease)
        await limiter.release(lease, "ok")
    denied = await limiter.admit(p, "u", soon(5))
    assert isinstance(denied, Denied) and denied.reason == "daily"
    assert 0 < denied.retry_after <= 86400


async def test_round_robin_between_users(make: Factory) -> None:
    limiter, p = make(ProviderLimits(0, 1.0, 1)), provider()
    held = await limiter.admit(p, "x", soon(0))
    assert isinstance(held, Lease)
    order: list[str] = []

    async def ask(user: str) -> None:
        lease = await limiter.admit(p, user, soon(10))
        assert isinstance(lease, Lease)
        order.append(user)
        await asyncio.sleep(0.05)
        await limiter.release(lease, "ok")

    tasks = []
    for user in ["burst", "burst", "burst", "burst", "solo"]:
        tasks.append(asyncio.create_task(ask(user)))
        await asyncio.sleep(0.05)  # queue in this order
    await limiter.release(held, "ok")
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert order.index("solo") <= 1  # served after at most one of the burst, not after all


async def test_redis_lease_expires_after_a_crash(redis_url: RedisServer) -> None:
    limits = ProviderLimits(0, 1.0, 1)
    p = provider()
    crashed = RedisLimiter(redis_url.url, lambda _: limits, lease_ttl=1.0, heartbeat=60)
    survivor = RedisLimiter(redis_url.url, lambda _: limits)
    try:
        assert isinstance(await crashed.admit(p, "u", soon(0)), Lease)
        await crashed.close()  # gone without releasing, no more heartbeats
        assert isinstance(await survivor.admit(p, "u", soon(0)), Denied)
        started = time.monotonic()
        lease = await survivor.admit(p, "u", soon(5))
        assert isinstance(lease, Lease) and time.monotonic() - started < 3
    finally:
        await survivor.close()


async def test_redis_heartbeat_keeps_a_long_lease(redis_url: RedisServer) -> None:
    limits = ProviderLimits(0, 1.0, 1)
    p = provider()
    holder = RedisLimiter(redis_url.url, lambda _: limits, lease_ttl=1.0, heartbeat=0.3)
    other = RedisLimiter(redis_url.url, lambda _: limits)
    try:
        assert isinstance(await holder.admit(p, "u", soon(0)), Lease)
        await asyncio.sleep(2)
        assert isinstance(await other.admit(p, "u", soon(0.1)), Denied)  # still held
    finally:
        await holder.close()
        await other.close()


async def test_redis_scripts_survive_script_flush(redis_url: RedisServer) -> None:
    limiter = RedisLimiter(redis_url.url, lambda _: ProviderLimits(10, 1.0, 0))
    try:
        p = provider()
        assert isinstance(await limiter.admit(p, "u", soon(0)), Lease)
        redis_sync.Redis.from_url(redis_url.url).script_flush()
        assert isinstance(await limiter.admit(p, "u", soon(0)), Lease)
    finally:
        await limiter.close()


async def test_redis_uncontended_admission_is_one_round_trip(redis_url: RedisServer) -> None:
    limiter = RedisLimiter(redis_url.url, lambda _: ProviderLimits(100, 1.0, 10))
    try:
        p = provider()
        before = limiter.round_trips
        assert isinstance(await limiter.admit(p, "u", soon(0)), Lease)
        assert limiter.round_trips - before == 1
    finally:
        await limiter.close()


async def test_two_replicas_share_one_quota(redis_url: RedisServer) -> None:
    limits = ProviderLimits(6, 2.0, 0)
    p = provider()
    a = RedisLimiter(redis_url.url, lambda _: limits)
    b = RedisLimiter(redis_url.url, lambda _: limits)
    try:
        results = await asyncio.gather(
            *[(a if i % 2 else b).admit(p, f"u{i}", soon(0)) for i in range(12)]
        )
        assert sum(isinstance(r, Lease) for r in results) == 6
    finally:
        await a.close()
        await b.close()


async def test_failover_to_local_and_back(redis_url: RedisServer) -> None:
    if not redis_url.owned or redis_url.process is None:
        pytest.skip("needs a redis-server the tests started themselves (to stop and restart it)")
    limits = ProviderLimits(4, 1.0, 0)
    primary = RedisLimiter(redis_url.url, lambda _: limits)
    limiter = FailoverLimiter(primary, lambda _: limits, "local", replicas=2, retry_after=0.5)
    p = provider()
    try:
        assert isinstance(await limiter.admit(p, "u", soon(0)), Lease)
        assert await limiter.health() == {"backend": "redis", "degraded": False}
        redis_url.stop()
        # A readiness probe alone notices (one PING, no status scripts).
        assert (await limiter.health())["degraded"] is True
        local = [await limiter.admit(p, "u", soon(0)) for _ in range(3)]
        assert limiter.degraded
        # 4 per second shared by 2 replicas: this replica alone may grant 2.
        assert [isinstance(r, Lease) for r in local] == [True, True, False]
        redis_url.start()
        await asyncio.sleep(0.6)
        lease = await limiter.admit(p, "u", soon(0))
        assert isinstance(lease, Lease) and not limiter.degraded
        assert (await limiter.status())["backend"] == "redis"
    finally:
        if redis_url.process is None:
            redis_url.start()
        await limiter.close()


async def test_user_limits_sit_on_top_of_the_provider_quota(make: Factory) -> None:
    from ccgate.limiter.api import UserLimits

    limiter, p = make(ProviderLimits(100, 60.0, 10)), provider()
    ana = UserLimits(rpm=2)
    assert isinstance(await limiter.admit(p, "ana", soon(0), ana), Lease)
    assert isinstance(await limiter.admit(p, "ana", soon(0), ana), Lease)
    denied = await limiter.admit(p, "ana", soon(0.1), ana)
    assert isinstance(denied, Denied) and denied.reason == "user_rate"
    assert 50 <= denied.retry_after <= 61
    assert isinstance(await limiter.admit(p, "bo", soon(0)), Lease)  # others are not held back


async def test_user_concurrency_does_not_block_other_users(make: Factory) -> None:
    from ccgate.limiter.api import UserLimits

    limiter, p = make(ProviderLimits(0, 1.0, 5)), provider()
    one = UserLimits(max_concurrency=1)
    first = await limiter.admit(p, "ana", soon(0), one)
    assert isinstance(first, Lease)
    second = asyncio.create_task(limiter.admit(p, "ana", soon(5), one))
    await asyncio.sleep(0.2)
    assert not second.done()
    other = await limiter.admit(p, "bo", soon(1))  # queued behind ana, yet served at once
    assert isinstance(other, Lease)
    await limiter.release(first, "ok")
    assert isinstance(await asyncio.wait_for(second, 3), Lease)


async def test_a_keys_chat_users_share_its_limits_in_total_and_fairly(make: Factory) -> None:
    """The chat users of one key (one bucket) never exceed the key's rpm or concurrency in
    sum; queued, they are served round-robin, so one's burst does not starve another; every
    slot comes back, from a release, a timeout or a hang-up while queued."""
    from ccgate.limiter.api import UserLimits

    limiter, p = make(ProviderLimits(1000, 60.0, 100)), provider()
    key = UserLimits(rpm=8, max_concurrency=2, bucket="bot")
    in_flight, peak, order = 0, 0, []

    async def run(user: str, hold: float, wait: float = 5.0) -> Lease | Denied:
        nonlocal in_flight, peak
        lease = await limiter.admit(p, user, soon(wait), key)
        if isinstance(lease, Lease):
            in_flight += 1
            peak = max(peak, in_flight)
            order.append(user)
            await asyncio.sleep(hold)
            in_flight -= 1
            await limiter.release(lease, "ok")
        return lease

    # Ana bursts 5; Bea asks once, after Ana's burst is queued: she is served second in line.
    ana = [asyncio.create_task(run("bot@ana", 0.15)) for _ in range(5)]
    await asyncio.sleep(0.1)
    bea = asyncio.create_task(run("bot@bea", 0.15))
    await asyncio.gather(*ana, bea)
    assert peak == 2  # the key's concurrency, for both of them together
    assert order.index("bot@bea") <= 3  # not after all of Ana's burst
    # 6 of the key's 8 requests this minute are used: three chat users bursting get 2 in all.
    results = await asyncio.gather(*(run(f"bot@u{i % 3}", 0.0, 0.5) for i in range(6)))
    assert sum(isinstance(r, Lease) for r in results) == 2
    assert peak == 2

    # Concurrency alone: a hang-up while queued and a queue timeout leave nothing behind.
    limiter2, p2 = make(ProviderLimits(0, 1.0, 100)), provider()
    two = UserLimits(max_concurrency=2, bucket="team")
    held = [await limiter2.admit(p2, f"team@c{i}", soon(0), two) for i in range(2)]
    assert all(isinstance(h, Lease) for h in held)
    third = await limiter2.admit(p2, "team@c2", soon(0.2), two)  # a new chat user: still 2
    assert isinstance(third, Denied)
    hung_up = asyncio.create_task(limiter2.admit(p2, "team@c3", soon(5), two))
    await asyncio.sleep(0.1)
    hung_up.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hung_up
    for lease in held:
        assert isinstance(lease, Lease)
        await limiter2.release(lease, "ok")
    again = [await limiter2.admit(p2, f"team@d{i}", soon(0), two) for i in range(3)]
    assert [isinstance(a, Lease) for a in again] == [True, True, False]
    for lease in again:
        if isinstance(lease, Lease):
            await limiter2.release(lease, "ok")
    status = (await limiter2.status())["providers"][p2]
    assert status["in_flight"] == 0 and status["queued"] == 0
