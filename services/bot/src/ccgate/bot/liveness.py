"""Jobs of a worker that died are reclaimed in seconds, not after the whole job timeout.

arq marks a running job with an in-progress key that lives as long as the job may run
(BOT_JOB_TIMEOUT, half an hour by default): a worker killed mid-job leaves that key behind and
the user would hear nothing for that long. So a running job also holds a short-lived owner
key, refreshed while its worker lives; every worker looks for running jobs whose owner key is
gone and drops their in-progress key, and the next poll takes the job up again — its second
try, which reports the interruption to the chat (jobs.run_claude) rather than running again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from arq.constants import in_progress_key_prefix

from ccgate.bot import heartbeat
from ccgate.bot.queue import QUEUE

log = logging.getLogger("ccgate.bot")

OWNER_TTL = 15  # seconds an owner key outlives its worker's last refresh
SCAN_INTERVAL = 5.0
SCAN_DEPTH = 500  # queue entries looked at per scan (running jobs sit at the front)


def owner_key(job_id: str) -> str:
    return f"ccgate:bot:owner:{job_id}"


@contextlib.asynccontextmanager
async def holding(redis: Any, job_id: str, worker: str) -> AsyncIterator[None]:
    """Keep this job's owner key alive while the body runs."""

    async def refresh() -> None:
        while True:
            await redis.set(owner_key(job_id), worker, ex=OWNER_TTL)
            await asyncio.sleep(OWNER_TTL / 3)

    await redis.set(owner_key(job_id), worker, ex=OWNER_TTL)
    task = asyncio.create_task(refresh())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(Exception):
            await redis.delete(owner_key(job_id))


async def reclaim_orphans(redis: Any, in_progress_ms: int) -> list[str]:
    """Drop the in-progress mark of running jobs nobody owns any more; returns their ids."""
    ids = [raw.decode() for raw in await redis.zrange(QUEUE, 0, SCAN_DEPTH)]
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.pttl(in_progress_key_prefix + job_id)
            pipe.exists(owner_key(job_id))
        answers = await pipe.execute()
    reclaimed: list[str] = []
    for job_id, left, owned in zip(ids, answers[::2], answers[1::2], strict=True):
        # Not running (no mark), owned, or started so recently that it may not have taken its
        # owner key yet: left alone.
        if left <= 0 or owned or in_progress_ms - left <= (OWNER_TTL + SCAN_INTERVAL) * 1000:
            continue
        await redis.delete(in_progress_key_prefix + job_id)
        reclaimed.append(job_id)
        log.warning("job %s lost its worker; it will be reported as interrupted", job_id)
    return reclaimed


async def watch(redis: Any, in_progress_ms: int) -> None:
    """Every worker runs this; any of them may reclaim a dead one's jobs. Each round also
    refreshes the worker's own heartbeat (its container health check)."""
    while True:
        try:
            await heartbeat.beat(redis, "worker")
            await reclaim_orphans(redis, in_progress_ms)
        except Exception as exc:  # Redis away for a moment: try again next round
            log.warning("orphaned-job scan failed: %s", type(exc).__name__)
        await asyncio.sleep(SCAN_INTERVAL)
