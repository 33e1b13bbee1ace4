"""The bot's job queue: arq's sorted set, ordered fairly between users.

arq runs the lowest score first, and a score not in the future is ready at once. A job's score
is its enqueue time, moved *back* by a fixed bias and *forward* by one step for every job of
the same user already queued or running. So a user with nothing in flight goes ahead of
another user's second and third request, and nobody's request waits forever: after one step
of real time an older job outranks any newer one. (`jobs.FairWorker` fills its free slots in
this order and never from a stale batch, so this order is the order jobs start in.)

Per user and per chat, a set of job ids records what is in flight; finished jobs are pruned
on read, so a set never needs a worker to clean up after it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from arq import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import Job, JobStatus

QUEUE = "ccgate:bot:queue"
STEP_MS = 10 * 60 * 1000  # one job of yours in flight counts as ten minutes of waiting
MAX_STEPS = 20  # the bias: no score is ever in the future (arq would hold the job back)
LIVE = (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress)


def user_jobs_key(platform: str, user_id: str) -> str:
    return f"ccgate:bot:jobs:user:{platform}:{user_id}"


def chat_jobs_key(platform: str, chat_id: str) -> str:
    return f"ccgate:bot:jobs:chat:{platform}:{chat_id}"


@dataclass(frozen=True)
class Enqueued:
    job_id: str
    ahead_of_yours: int  # your own jobs already in flight


@dataclass(frozen=True)
class Refused:
    in_flight: int


@dataclass(frozen=True)
class Duplicate:
    job_id: str


def fair_score_ms(now_ms: int, own_in_flight: int) -> int:
    steps = min(own_in_flight, MAX_STEPS)
    return now_ms - MAX_STEPS * STEP_MS + steps * STEP_MS


async def live_jobs(arq: ArqRedis, key: str) -> list[str]:
    """The ids in `key` whose jobs are still queued or running; the others are dropped."""
    live: list[str] = []
    for raw in await arq.smembers(key):  # type: ignore[misc]
        job_id = raw.decode()
        if await Job(job_id, arq, _queue_name=QUEUE).status() in LIVE:
            live.append(job_id)
        else:
            await arq.srem(key, raw)  # type: ignore[misc]
    return sorted(live)


async def enqueue(
    arq: ArqRedis, request: dict[str, str], job_id: str, user_cap: int, ttl: int
) -> Enqueued | Refused | Duplicate:
    platform, user_id, chat_id = request["platform"], request["user_id"], request["chat_id"]
    mine = await live_jobs(arq, user_jobs_key(platform, user_id))
    if job_id in mine:
        return Duplicate(job_id)
    if len(mine) >= user_cap:
        return Refused(len(mine))
    score = fair_score_ms(int(time.time() * 1000), len(mine))
    job = await arq.enqueue_job(
        "run_claude",
        request,
        _job_id=job_id,  # the message's identity: a redelivered update enqueues nothing new
        _queue_name=QUEUE,
        _defer_until=datetime.fromtimestamp(score / 1000, UTC),
    )
    if job is None:
        return Duplicate(job_id)
    for key in (user_jobs_key(platform, user_id), chat_jobs_key(platform, chat_id)):
        await arq.sadd(key, job_id)  # type: ignore[misc]
        await arq.expire(key, ttl)
    return Enqueued(job_id, len(mine))


async def _snapshot(arq: ArqRedis) -> tuple[list[str], set[str]]:
    """The queue in start order (arq keeps running jobs in it) and which of them run."""
    ids = [raw.decode() for raw in await arq.zrange(QUEUE, 0, -1)]
    async with arq.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.exists(in_progress_key_prefix + job_id)
        flags = await pipe.execute()
    return ids, {job_id for job_id, running in zip(ids, flags, strict=True) if running}


def _waiting(ids: list[str], running: set[str]) -> list[str]:
    return [job_id for job_id in ids if job_id not in running]


async def position(arq: ArqRedis, job_id: str) -> int | None:
    """1 for the next job to start; None when it is not waiting (running or gone)."""
    waiting = _waiting(*await _snapshot(arq))
    return waiting.index(job_id) + 1 if job_id in waiting else None


async def describe_chat_jobs(arq: ArqRedis, platform: str, chat_id: str) -> list[str]:
    ids, running = await _snapshot(arq)
    waiting = _waiting(ids, running)
    lines: list[str] = []
    for job_id in await live_jobs(arq, chat_jobs_key(platform, chat_id)):
        if job_id in running:
            lines.append(f"job {job_id}: running")
        else:
            place = waiting.index(job_id) + 1 if job_id in waiting else None
            lines.append(f"job {job_id}: queued, position {place}")
    return lines


async def abort_chat_jobs(arq: ArqRedis, platform: str, chat_id: str) -> int:
    """Queued jobs are taken out of the queue; running ones are aborted (the worker cancels
    them, and the runner kills the CLI's whole process tree)."""
    stopped = 0
    key = chat_jobs_key(platform, chat_id)
    _, running = await _snapshot(arq)
    for job_id in await live_jobs(arq, key):
        if job_id in running:
            stopped += int(await Job(job_id, arq, _queue_name=QUEUE).abort(timeout=10))
        elif await arq.zrem(QUEUE, job_id):
            await arq.delete(job_key_prefix + job_id)
            stopped += 1
        await arq.srem(key, job_id)  # type: ignore[misc]
    return stopped


async def waiting_total(arq: ArqRedis) -> int:
    """Jobs waiting for a worker, across all chats."""
    return len(_waiting(*await _snapshot(arq)))
