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

from arq import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.jobs import Job, JobStatus, serialize_job

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


# The cap and the enqueue in one step: two messages in the same instant cannot both see room
# for one more. KEYS: user set, chat set, queue, job key. ARGV: job id, serialized job,
# cap, now (ms), step (ms), max steps, set ttl (s), job expiry margin (ms), key prefixes
# (result, in-progress, job). A job is live as arq sees it: no result yet, and running or
# still in the queue.
_ENQUEUE = """
local user_set, chat_set, queue, job_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local job_id, cap, now = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4])
local step, max_steps, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local result_prefix, running_prefix, job_prefix = ARGV[9], ARGV[10], ARGV[11]
local live = 0
for _, id in ipairs(redis.call('SMEMBERS', user_set)) do
  local alive = redis.call('EXISTS', result_prefix .. id) == 0 and
    (redis.call('EXISTS', running_prefix .. id) == 1 or redis.call('ZSCORE', queue, id))
  if alive then live = live + 1 else redis.call('SREM', user_set, id) end
end
if redis.call('EXISTS', job_key, result_prefix .. job_id) > 0 then return {'duplicate', live} end
if live >= cap then return {'refused', live} end
local score = now - max_steps * step + math.min(live, max_steps) * step
redis.call('SET', job_key, ARGV[2], 'PX', score - now + tonumber(ARGV[8]))
redis.call('ZADD', queue, score, job_id)
for _, key in ipairs({user_set, chat_set}) do
  redis.call('SADD', key, job_id)
  redis.call('EXPIRE', key, ttl)
end
return {'enqueued', live}
"""
JOB_EXPIRY_MARGIN_MS = 24 * 3600 * 1000  # arq's own: a job not started within a day expires


async def enqueue(
    arq: ArqRedis, request: dict[str, str], job_id: str, user_cap: int, ttl: int
) -> Enqueued | Refused | Duplicate:
    platform, user_id, chat_id = request["platform"], request["user_id"], request["chat_id"]
    now_ms = int(time.time() * 1000)
    job = serialize_job("run_claude", (request,), {}, None, now_ms, serializer=arq.job_serializer)
    outcome, live = await arq.eval(  # type: ignore[misc]
        _ENQUEUE,
        4,
        user_jobs_key(platform, user_id),
        chat_jobs_key(platform, chat_id),
        QUEUE,
        job_key_prefix + job_id,
        job_id,
        job,  # type: ignore[arg-type]  # bytes: the pickled job, as arq stores it
        str(user_cap),
        str(now_ms),
        str(STEP_MS),
        str(MAX_STEPS),
        str(ttl),
        str(JOB_EXPIRY_MARGIN_MS),
        result_key_prefix,
        in_progress_key_prefix,
        job_key_prefix,
    )
    if outcome == b"duplicate":
        return Duplicate(job_id)
    if outcome == b"refused":
        return Refused(int(live))
    return Enqueued(job_id, int(live))


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
