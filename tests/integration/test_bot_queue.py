"""The bot's job queue and the orphaned-job scan against a real Redis (no worker, no CLI):
fair order, the per-user cap, redelivery, positions, /stop of queued jobs, and reclaiming only
the jobs whose worker is gone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.jobs import Job

from ccgate.bot import liveness, queue
from tests.redis_server import RedisServer, redis_server


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def message(user: str, text: str, chat: str | None = None) -> dict[str, str]:
    return {
        "platform": "telegram",
        "chat_id": chat or user,
        "user_id": user,
        "text": text,
        "message_id": text,
    }


async def test_fair_order_cap_redelivery_positions_and_stop(redis: RedisServer) -> None:
    redis.flush()
    pool = await create_pool(RedisSettings.from_dsn(redis.url))
    try:
        for i in range(3):
            assert isinstance(
                await queue.enqueue(pool, message("ana", f"a{i}"), f"a{i}", 3, 600),
                queue.Enqueued,
            )
        assert isinstance(
            await queue.enqueue(pool, message("ana", "a0"), "a0", 3, 600), queue.Duplicate
        )
        refused = await queue.enqueue(pool, message("ana", "a3"), "a3", 3, 600)
        assert refused == queue.Refused(3)
        assert isinstance(
            await queue.enqueue(pool, message("bob", "b0"), "b0", 3, 600), queue.Enqueued
        )
        # The order a worker takes them in: each user's first, then the rest.
        order = [raw.decode() for raw in await pool.zrange(queue.QUEUE, 0, -1)]
        assert order == ["a0", "b0", "a1", "a2"]
        assert [await queue.position(pool, j) for j in order] == [1, 2, 3, 4]
        # a0 starts: it keeps its place in arq's set, but no longer counts as waiting.
        await pool.psetex(in_progress_key_prefix + "a0", 60_000, b"1")
        assert await queue.position(pool, "a0") is None
        assert await queue.position(pool, "b0") == 1
        assert await queue.waiting_total(pool) == 3
        lines = await queue.describe_chat_jobs(pool, "telegram", "ana")
        assert lines[0] == "job a0: running" and "position 2" in lines[1]
        # /stop in Ana's chat (nothing of hers running now): her jobs leave the queue.
        await pool.delete(in_progress_key_prefix + "a0")
        assert await queue.abort_chat_jobs(pool, "telegram", "ana") == 3
        assert [raw.decode() for raw in await pool.zrange(queue.QUEUE, 0, -1)] == ["b0"]
        # Ana may send again: nothing of hers is in flight.
        assert isinstance(
            await queue.enqueue(pool, message("ana", "a4"), "a4", 3, 600), queue.Enqueued
        )
    finally:
        await pool.aclose()


async def test_only_jobs_whose_worker_is_gone_are_reclaimed(redis: RedisServer) -> None:
    redis.flush()
    pool = await create_pool(RedisSettings.from_dsn(redis.url))
    in_progress_ms = 1_000_000
    old = in_progress_ms - int((liveness.OWNER_TTL + liveness.SCAN_INTERVAL + 5) * 1000)
    try:
        for job_id in ("orphan", "owned", "fresh", "waiting"):
            await pool.zadd(queue.QUEUE, {job_id: 1})
        await pool.psetex(in_progress_key_prefix + "orphan", old, b"1")  # running long, no owner
        await pool.psetex(in_progress_key_prefix + "owned", old, b"1")
        async with liveness.holding(pool, "owned", "worker-1"):
            await pool.psetex(in_progress_key_prefix + "fresh", in_progress_ms - 1000, b"1")
            assert await liveness.reclaim_orphans(pool, in_progress_ms) == ["orphan"]
        assert not await pool.exists(in_progress_key_prefix + "orphan")  # taken up again
        assert await pool.exists(in_progress_key_prefix + "owned")
        assert await pool.exists(in_progress_key_prefix + "fresh")  # just started: grace
        assert not await pool.exists(liveness.owner_key("owned"))  # released after the run
    finally:
        await pool.aclose()


async def test_an_owner_key_is_refreshed_while_the_job_runs(
    redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis.flush()
    monkeypatch.setattr(liveness, "OWNER_TTL", 1)
    pool = await create_pool(RedisSettings.from_dsn(redis.url))
    try:
        async with liveness.holding(pool, "long", "worker-1"):
            await asyncio.sleep(2.5)  # well past one TTL
            assert await pool.get(liveness.owner_key("long")) == b"worker-1"
    finally:
        await pool.aclose()


async def test_the_cap_and_the_enqueue_are_one_step(redis: RedisServer) -> None:
    """Messages arriving in the same instant: the cap holds (checked and enqueued in one
    script), and the job is scored as the fair order says."""
    redis.flush()
    pool = await create_pool(RedisSettings.from_dsn(redis.url))
    try:
        outcomes = await asyncio.gather(
            *(queue.enqueue(pool, message("cy", f"c{i}"), f"c{i}", 2, 600) for i in range(8))
        )
        assert sum(isinstance(o, queue.Enqueued) for o in outcomes) == 2
        assert sum(isinstance(o, queue.Refused) for o in outcomes) == 6
        assert len(await pool.zrange(queue.QUEUE, 0, -1)) == 2
        # Each job's score: its enqueue time, moved by the user's jobs already in flight.
        for job_id in [raw.decode() for raw in await pool.zrange(queue.QUEUE, 0, -1)]:
            info = await Job(job_id, pool, _queue_name=queue.QUEUE).info()
            assert info is not None and info.args == (message("cy", job_id),)
            ahead = next(o.ahead_of_yours for o in outcomes if getattr(o, "job_id", "") == job_id)
            enqueued_ms = round(info.enqueue_time.timestamp() * 1000)
            score = await pool.zscore(queue.QUEUE, job_id)
            assert score == queue.fair_score_ms(enqueued_ms, ahead)
    finally:
        await pool.aclose()
