"""The bot's worker end to end: an arq job in a real Redis runs the real Claude Code CLI against
the edge and a scripted backend, relays progress to the outbox, keeps the session, resumes it,
and dies whole on /stop."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from arq import create_pool
from arq.connections import RedisSettings
from arq.jobs import Job

from ccgate.bot.jobs import FairWorker, worker_settings
from ccgate.shared.settings import Settings
from tests.e2e.bot_harness import alive, outbox, settings_for
from tests.e2e.conftest import Harness
from tests.fakes.backend import Turn
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e


async def run_jobs(settings: Settings, *requests: dict[str, str]) -> list[Any]:
    options = worker_settings(settings)
    pool = await create_pool(options["redis_settings"])
    try:
        jobs = [
            await pool.enqueue_job("run_claude", r, _queue_name=options["queue_name"])
            for r in requests
        ]
        worker = FairWorker(**options, burst=True, handle_signals=False)
        await worker.main()
        await worker.close()
        return [await job.result(timeout=5) for job in jobs if job is not None]
    finally:
        await pool.aclose()


def request(text: str, message: str) -> dict[str, str]:
    return {
        "platform": "telegram",
        "chat_id": "100",
        "user_id": "42",
        "text": text,
        "message_id": message,
    }


def test_a_chat_turn_creates_a_file_and_the_next_one_resumes(
    harness_factory: Callable[..., Harness], bot_redis: RedisServer, tmp_path: Path
) -> None:
    h = harness_factory("openai")
    settings = settings_for(h, bot_redis, tmp_path)
    target = tmp_path / "telegram-42" / "default" / "hello.txt"
    h.backend.script(
        Turn(
            text="Writing it.",
            tool_calls=[("Write", {"file_path": str(target), "content": "hi from the bot\n"})],
        ),
        Turn(text="Created hello.txt."),
        Turn(text="You asked me to create hello.txt."),
    )
    first = asyncio.run(run_jobs(settings, request("create hello.txt", "1")))[0]
    assert target.read_text() == "hi from the bot\n"
    assert first["final"] == "Created hello.txt." and first["session_id"]
    posted = asyncio.run(outbox(bot_redis.url))
    kinds = [p["kind"] for p in posted]
    assert "tool" in kinds and kinds[-1] == "final"
    assert any(p["text"].startswith("🔧 Write") for p in posted)
    assert posted[-1]["text"] == "Created hello.txt."

    second = asyncio.run(run_jobs(settings, request("what did I ask before?", "2")))[0]
    assert second["final"] == "You asked me to create hello.txt."
    assert second["session_id"] == first["session_id"]  # the same Claude Code session
    shown = orjson.dumps(h.backend.requests[-1].body).decode()
    assert "create hello.txt" in shown and "hi from the bot" in shown  # the earlier turns


def test_stop_kills_the_whole_process_group(
    harness_factory: Callable[..., Harness], bot_redis: RedisServer, tmp_path: Path
) -> None:
    h = harness_factory("openai")
    settings = settings_for(h, bot_redis, tmp_path)
    # Not a sleep: Claude Code blocks long sleeps (even inside python) and suggests the background.
    marker = f"ccgate-stop-test-{os.getpid()}"
    command = f"python3 -c 'import select; select.select([], [], [], 300)' {marker}"
    h.backend.script(
        Turn(text="Waiting.", tool_calls=[("Bash", {"command": command, "description": "wait"})])
    )

    async def scenario() -> str | None:
        options = worker_settings(settings)
        pool = await create_pool(options["redis_settings"])
        worker = FairWorker(**options, handle_signals=False)
        running = asyncio.create_task(worker.main())
        try:
            job = await pool.enqueue_job(
                "run_claude", request("wait a while", "3"), _queue_name=options["queue_name"]
            )
            assert job is not None
            deadline = time.monotonic() + 60
            while not await asyncio.to_thread(alive, marker):
                assert time.monotonic() < deadline, "the tool never started"
                await asyncio.sleep(0.2)
            assert await Job(job.job_id, pool, _queue_name=options["queue_name"]).abort(timeout=10)
            started = time.monotonic()
            while await asyncio.to_thread(alive, marker):
                assert time.monotonic() - started < 5, "the tool outlived /stop"
                await asyncio.sleep(0.1)
            return job.job_id
        finally:
            running.cancel()
            await worker.close()
            await pool.aclose()

    assert asyncio.run(scenario())


def test_an_interrupted_job_is_reported_not_rerun(
    harness_factory: Callable[..., Harness], bot_redis: RedisServer, tmp_path: Path
) -> None:
    from ccgate.bot.jobs import run_claude

    h = harness_factory("openai")
    settings = settings_for(h, bot_redis, tmp_path)

    async def second_try() -> Any:
        pool = await create_pool(RedisSettings.from_dsn(bot_redis.url))
        try:
            return await run_claude(
                {"settings": settings, "redis": pool, "job_try": 2, "job_id": "j"},
                request("do it", "4"),
            )
        finally:
            await pool.aclose()

    assert asyncio.run(second_try()) == {"interrupted": True}
    assert h.backend.requests == []  # nothing ran behind the user's back
    assert "interrupted" in asyncio.run(outbox(bot_redis.url))[-1]["text"]


def test_the_chat_message_trace_reaches_the_edge(
    harness_factory: Callable[..., Harness], bot_redis: RedisServer, tmp_path: Path
) -> None:
    """A traceparent from the front end goes through the job and the CLI (via
    ANTHROPIC_CUSTOM_HEADERS) to the edge, whose server span joins that trace and knows the
    chat user."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    h = harness_factory("openai")
    h.backend.script(Turn(text="Traced."))
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    job = {**request("trace me", "5"), "traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}
    assert asyncio.run(run_jobs(settings_for(h, bot_redis, tmp_path), job))[0]["final"] == "Traced."
    spans = exporter.get_finished_spans()
    run = next(s for s in spans if s.name == "claude run")
    edge = [s for s in spans if s.name == "POST /v1/messages"]
    assert format(run.context.trace_id, "032x") == trace_id
    assert edge and all(format(s.context.trace_id, "032x") == trace_id for s in edge)
    assert edge[0].parent is not None and edge[0].parent.span_id == run.context.span_id
    assert (edge[0].attributes or {})["ccgate.chat_user"] == "telegram:42"


def test_failures_reach_the_chat_as_a_clear_message(
    harness_factory: Callable[..., Harness], bot_redis: RedisServer, tmp_path: Path
) -> None:
    """The provider refusing the request, and the CLI itself crashing, both end as one ⚠️ chat
    message that says what happened."""
    h = harness_factory("openai")
    # Every request refused: after a single 400, Claude Code sent another request and used its
    # answer.
    h.backend.default = Turn(
        status=400, error_body={"error": {"message": "model fake-model is not served here"}}
    )
    refused = asyncio.run(run_jobs(settings_for(h, bot_redis, tmp_path), request("go", "6")))[0]
    assert "model fake-model is not served here" in refused["error"]
    posted = asyncio.run(outbox(bot_redis.url))[-1]
    assert posted["kind"] == "error" and posted["text"].startswith("⚠️")
    assert "model fake-model is not served here" in posted["text"]

    crashing = tmp_path / "claude-that-crashes"
    crashing.write_text("#!/bin/sh\necho 'fatal: the CLI could not start' >&2\nexit 3\n")
    crashing.chmod(0o755)
    settings = replace(settings_for(h, bot_redis, tmp_path), claude_bin=str(crashing))
    crashed = asyncio.run(run_jobs(settings, request("go again", "7")))[0]
    assert crashed["error"] == "fatal: the CLI could not start"
    assert asyncio.run(outbox(bot_redis.url))[-1]["text"] == "⚠️ fatal: the CLI could not start"
