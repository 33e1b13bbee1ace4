"""The bot's job queue under pressure, with the real CLI: two users share the workers fairly;
a worker killed mid-job takes its tool processes along and the job is reported interrupted,
not run again; a Redis restart loses no queued job and the worker and the front end carry on."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis as redis_sync
from arq import create_pool
from arq.jobs import Job

from ccgate.bot import queue, sessions
from ccgate.bot.fronts.telegram import TelegramFront
from ccgate.bot.jobs import FairWorker, worker_settings
from tests.e2e.bot_harness import alive, bot_running, outbox, settings_for, telegram_bot
from tests.e2e.conftest import Harness, until
from tests.fakes.backend import Turn
from tests.redis_server import RedisServer, redis_server

pytestmark = pytest.mark.e2e


def chat_request(user: str, text: str) -> dict[str, str]:
    return {
        "platform": "telegram",
        "chat_id": user,
        "user_id": user,
        "text": text,
        "message_id": text,
    }


def test_one_users_burst_does_not_starve_another(
    harness_factory: Callable[..., Harness], bot_redis: RedisServer, tmp_path: Path
) -> None:
    """Two worker slots. Ana sends three requests; while her first two run, Bob sends one.
    Bob's starts before Ana's third (arq alone is first-come-first-served, and a worker
    reading a batch of ids would have taken Ana's third already), and never more than two
    Claude Code processes run at once."""
    h = harness_factory("openai")
    h.backend.default = Turn(text="done", stall=2.0)
    # ana-1's run takes longer, so the two slots free one at a time: the first must go to Bob,
    # the second to ana-2. (Both freed in the same millisecond, arq's start times could not
    # order the two starts: seen once in CI.)
    h.backend.intercept = lambda body: (
        Turn(text="done", stall=4.0) if b"ana-1" in orjson.dumps(body) else None
    )
    settings = settings_for(h, bot_redis, tmp_path, bot_worker_concurrency=2, bot_user_queue_cap=3)

    async def scenario() -> dict[str, Any]:
        options = worker_settings(settings)
        pool = await create_pool(options["redis_settings"])
        worker = FairWorker(**options, handle_signals=False)
        running = asyncio.create_task(worker.main())
        try:
            ana = []
            for i in range(3):
                outcome = await queue.enqueue(
                    pool, chat_request("1", f"ana-{i}"), f"ana-{i}", 3, 600
                )
                assert isinstance(outcome, queue.Enqueued)
                ana.append(outcome.job_id)
            refused = await queue.enqueue(pool, chat_request("1", "ana-3"), "ana-3", 3, 600)
            assert isinstance(refused, queue.Refused)  # the per-user cap

            async def started(job_id: str) -> bool:
                return bool(await pool.exists(f"arq:in-progress:{job_id}"))

            deadline = time.monotonic() + 30
            while not (await started(ana[0]) and await started(ana[1])):
                assert time.monotonic() < deadline, "the worker did not start two jobs"
                await asyncio.sleep(0.05)
            assert not await started(ana[2])
            bob = await queue.enqueue(pool, chat_request("2", "bob-0"), "bob-0", 3, 600)
            assert isinstance(bob, queue.Enqueued)
            assert await queue.position(pool, bob.job_id) == 1  # next, ahead of ana-2
            infos = {}
            for job_id in [*ana, bob.job_id]:
                job = Job(job_id, pool, _queue_name=queue.QUEUE)
                await job.result(timeout=120)
                infos[job_id] = await job.result_info()
            return infos
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await worker.close()
            await pool.aclose()

    infos = asyncio.run(scenario())
    spans = {k: (v.start_time.timestamp(), v.finish_time.timestamp()) for k, v in infos.items()}
    assert spans["bob-0"][0] < spans["ana-2"][0]
    moments = sorted({t for span in spans.values() for t in span})
    most = max(sum(1 for s, f in spans.values() if s <= m < f) for m in moments)
    assert most == 2  # both slots used, never more
    assert any(
        s < spans["bob-0"][1] and spans["bob-0"][0] < f
        for k, (s, f) in spans.items()
        if k != "bob-0"
    )


def test_a_killed_worker_leaves_no_process_and_its_job_is_reported_interrupted(
    harness_factory: Callable[..., Harness], bot_redis: RedisServer, tmp_path: Path
) -> None:
    h = harness_factory("openai")
    marker = f"ccgate-kill-tool-{os.getpid()}"  # the tool's; the CLI's argv has another
    command = f"python3 -c 'import select; select.select([], [], [], 300)' {marker}"
    h.backend.script(
        Turn(text="Waiting.", tool_calls=[("Bash", {"command": command, "description": "wait"})])
    )
    settings = settings_for(h, bot_redis, tmp_path)
    env = {
        **os.environ,
        "REDIS_URL": bot_redis.url,
        "CCGATE_EDGE_URL": h.edge_url,
        "CLAUDE_BIN": str(settings.claude_bin),
        "CLAUDE_WORKSPACE": str(tmp_path),
        "BOT_ALLOWED_TOOLS": "Bash",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "ccgate.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cli_marker = f"ccgate-kill-cli-{os.getpid()}"
    prompt = f"run the waiting tool {cli_marker}"

    async def scenario() -> Any:
        options = worker_settings(settings)
        pool = await create_pool(options["redis_settings"])
        try:
            outcome = await queue.enqueue(pool, chat_request("5", prompt), "job-k", 3, 600)
            assert isinstance(outcome, queue.Enqueued)
            deadline = time.monotonic() + 60
            while not await asyncio.to_thread(alive, marker):
                assert time.monotonic() < deadline, "the tool never started"
                await asyncio.sleep(0.2)
            worker.kill()  # SIGKILL: no cleanup of its own
            worker.wait(10)
            started = time.monotonic()
            for what in (marker, cli_marker):  # the tool; the CLI and its guard
                while await asyncio.to_thread(alive, what):
                    assert time.monotonic() - started < 5, f"{what} outlived its worker"
                    await asyncio.sleep(0.1)
            # Another worker notices the job lost its owner (seconds, not the half-hour job
            # timeout arq alone would wait for), takes it up again, and reports it.
            second = FairWorker(**options, handle_signals=False)
            running = asyncio.create_task(second.main())
            try:
                job = Job("job-k", pool, _queue_name=queue.QUEUE)
                return await job.result(timeout=60)
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                await second.close()
        finally:
            await pool.aclose()

    try:
        assert asyncio.run(scenario()) == {"interrupted": True}
    finally:
        if worker.poll() is None:
            worker.kill()
    assert len(h.backend.requests) == 1  # not run a second time behind the user's back
    posted = asyncio.run(outbox(bot_redis.url))
    assert "interrupted" in posted[-1]["text"] and posted[-1]["job"] == "job-k"


def test_a_redis_restart_loses_no_queued_job(
    harness_factory: Callable[..., Harness], tmp_path: Path
) -> None:
    with redis_server() as redis:
        if not redis.port:
            pytest.skip("restarting Redis needs a redis-server these tests start themselves")
        h = harness_factory("openai")
        h.backend.script(Turn(text="First answer."), Turn(text="Second answer."))
        ana = 42
        with telegram_bot(h, redis, tmp_path, str(ana)) as (telegram, settings):

            async def scenario() -> None:
                async with bot_running(settings, TelegramFront, worker=False) as bot:
                    telegram.user_says(ana, "first question")
                    await until(lambda: "Working on it…" in telegram.texts(ana), within=20)
                    # Queued, no worker yet. Redis goes down and comes back (with its data).
                    await asyncio.to_thread(redis.restart)
                    bot.start_worker()
                    await until(lambda: "First answer." in telegram.texts(ana), within=90)
                    # Down again while both run; both carry on without a restart of their own.
                    await asyncio.to_thread(redis.restart)
                    telegram.user_says(ana, "second question")
                    await until(lambda: "Second answer." in telegram.texts(ana), within=90)

            asyncio.run(scenario())
        assert len(h.backend.requests) == 2  # each question ran once
        posted = [
            orjson.loads(f[b"data"])
            for _, f in redis_sync.Redis.from_url(redis.url).xrange(sessions.OUTBOX)
        ]
        assert [p["text"] for p in posted if p["kind"] == "final"] == [
            "First answer.",
            "Second answer.",
        ]
