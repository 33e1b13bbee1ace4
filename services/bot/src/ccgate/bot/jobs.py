"""The arq side: one job runs one Claude Code turn for one chat. Any number of workers can run
against one Redis; each runs at most BOT_WORKER_CONCURRENCY Claude processes."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker
from opentelemetry import propagate, trace
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ccgate.bot import liveness, sessions
from ccgate.bot.queue import QUEUE
from ccgate.bot.runner import asks_the_chat, run_turn
from ccgate.bot.streamjson import Item, Text, Thinking, ToolUse
from ccgate.bot.workspace import WorkspaceError, home_dir, project_dir, user_root
from ccgate.shared.redis import queue_redis_url
from ccgate.shared.redis_url import SENTINEL_SCHEMES, parse_sentinel_url
from ccgate.shared.settings import Settings

log = logging.getLogger("ccgate.bot")
tracer = trace.get_tracer("ccgate.bot")


def redis_settings(url: str) -> RedisSettings:
    """Every command is retried with backoff for about half a minute, so a Redis restart is
    ridden out by the worker and the front ends alike instead of ending them. A
    redis+sentinel:// URL gives arq's own Sentinel support (it follows a failover)."""
    if url.partition("://")[0].lower() in SENTINEL_SCHEMES:
        target = parse_sentinel_url(url)
        settings = RedisSettings(
            host=target.sentinels,
            sentinel=True,
            sentinel_master=target.master,
            database=target.db,
            username=target.username,
            password=target.password,
            ssl=target.ssl,
        )
    else:
        settings = RedisSettings.from_dsn(url)
    settings.conn_retries = 30
    settings.retry = Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=20)
    settings.retry_on_error = [RedisConnectionError, RedisTimeoutError, ConnectionError, OSError]
    return settings


def describe(item: Item) -> tuple[str, str] | None:
    """(kind, chat text) for a progress item."""
    if isinstance(item, ToolUse):
        return "tool", f"🔧 {item.name}: {item.argument}"
    if isinstance(item, Thinking):
        return "thinking", f"💭 {item.text}"
    if isinstance(item, Text):
        return "text", item.text
    return None


async def run_claude(ctx: dict[str, Any], request: dict[str, str]) -> dict[str, Any]:
    settings: Settings = ctx["settings"]
    redis = ctx["redis"]
    platform, chat_id = request["platform"], request["chat_id"]
    job = str(ctx.get("job_id", ""))
    if ctx.get("job_try", 1) > 1:
        # This turn was cut off when a worker went down; say so instead of running it again
        # behind the user's back.
        await sessions.post(
            redis,
            platform,
            chat_id,
            "error",
            "⚠️ Your last request was interrupted (the worker stopped). Send it again to retry.",
            job,
        )
        return {"interrupted": True}
    async with liveness.holding(redis, job, ctx.get("worker_name", "worker")):
        return await _turn(settings, redis, request, job)


async def _turn(
    settings: Settings, redis: Any, request: dict[str, str], job: str
) -> dict[str, Any]:
    platform, chat_id, user_id = request["platform"], request["chat_id"], request["user_id"]

    async def say(kind: str, text: str) -> None:
        await sessions.post(redis, platform, chat_id, kind, text, job)

    state = await sessions.load(redis, platform, chat_id)
    try:
        root = user_root(settings.claude_workspace, platform, user_id)
        cwd = project_dir(root, state.project)
    except WorkspaceError as exc:
        await say("error", f"⚠️ {exc}")
        return {"error": str(exc)}

    async def relay(item: Item) -> None:
        described = describe(item)
        if described is not None:
            await say(*described)

    # The chat message's trace goes on through this run into every edge request it makes.
    parent = propagate.extract(
        {"traceparent": request["traceparent"]} if request.get("traceparent") else {}
    )
    span = tracer.start_span(
        "claude run",
        context=parent,
        attributes={"ccgate.chat_user": f"{platform}:{user_id}", "ccgate.job": job},
    )
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span, parent))
    try:
        result = await run_turn(
            settings,
            request["text"],
            cwd,
            home_dir(root),
            session_id=state.session_id,
            model=state.model,
            user_label=f"{platform}:{user_id}",
            on_item=relay,
            traceparent=carrier.get("traceparent"),
            chat={"platform": platform, "chat_id": chat_id, "owner": user_id, "job": job},
        )
    except TimeoutError:
        span.end()
        await say("error", f"⏱️ Stopped after {settings.bot_job_timeout:.0f}s (BOT_JOB_TIMEOUT).")
        return {"error": "timeout"}
    except BaseException:
        span.end()
        raise
    span.set_attribute("ccgate.outcome", "error" if result.is_error else "ok")
    span.end()
    if result.session_id:
        await sessions.update(redis, platform, chat_id, session_id=result.session_id)
    if result.denied and not asks_the_chat(settings):  # (asked: the chat saw each answer)
        await say("error", "🚫 Not allowed here: " + ", ".join(sorted(set(result.denied))))
    if result.is_error or result.returncode not in (0, None):
        last_stderr = result.stderr.strip().splitlines()[-1:]
        text = result.text or (last_stderr[0] if last_stderr else "the Claude Code run failed")
        await say("error", f"⚠️ {text}")
        return {"error": text, "session_id": result.session_id}
    await say("final", result.text or "(no answer)")
    return {"session_id": result.session_id, "final": result.text}


class FairWorker(Worker):
    """arq's worker, minus one habit: with its slots full, arq waits on the batch of job ids it
    read *before* they filled — so a job that arrived meanwhile, however high in the fair
    order (queue.py), would wait behind that stale batch. This worker fills the free slots and
    leaves the rest to the next poll, which reads the queue's order afresh."""

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        for job_id in job_ids:
            if self.job_counter >= self.max_jobs:
                return
            await super().start_jobs([job_id])


def worker_settings(settings: Settings) -> dict[str, Any]:
    try:
        redis_url = queue_redis_url(settings)  # BOT_REDIS_URL, else REDIS_URL; never a cluster
    except ValueError as exc:
        raise RuntimeError(f"the worker's Redis: {exc}") from None

    job_timeout = int(settings.bot_job_timeout + 15)
    in_progress_ms = (job_timeout + 10) * 1000  # arq's in-progress mark: job timeout + 10 s

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["settings"] = settings
        ctx["worker_name"] = f"{socket.gethostname()}:{os.getpid()}"
        ctx["liveness"] = asyncio.create_task(liveness.watch(ctx["redis"], in_progress_ms))

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "liveness" in ctx:
            ctx["liveness"].cancel()

    return {
        "functions": [run_claude],
        "redis_settings": redis_settings(redis_url),
        "max_jobs": settings.bot_worker_concurrency,
        "poll_delay": 0.25,
        "job_timeout": job_timeout,  # the runner stops the CLI at BOT_JOB_TIMEOUT already
        "max_tries": 2,  # the second try only reports the interruption (see run_claude)
        "allow_abort_jobs": True,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "queue_name": QUEUE,
        "keep_result": 3600,
    }
