"""What the bot's end-to-end tests share: settings pointing the worker at the test edge, a fake
chat platform with the settings for it, the worker and a front end running together, and looks
at the outbox and the process table."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from arq import ArqRedis, create_pool
from arq.connections import RedisSettings

from ccgate.bot import sessions
from ccgate.bot.jobs import FairWorker, worker_settings
from ccgate.shared.settings import Settings
from tests.e2e.conftest import Harness, claude_path
from tests.fakes.discord import FakeDiscord
from tests.fakes.telegram import FakeTelegram
from tests.redis_server import RedisServer

TELEGRAM_TOKEN = "123456:PLANTED-telegram-token"
DISCORD_TOKEN = "MTAwMDAw.PLANTED.discord-token"


def settings_for(h: Harness, redis: RedisServer, workspace: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {"bot_allowed_tools": "Write,Bash,Read", **extra}
    return Settings.from_env(
        None,
        redis_url=redis.url,
        ccgate_edge_url=h.edge_url,
        claude_bin=claude_path(),
        claude_workspace=str(workspace),
        **values,
    )


@contextlib.contextmanager
def telegram_bot(
    h: Harness, redis: RedisServer, workspace: Path, allowed: str, **extra: Any
) -> Iterator[tuple[FakeTelegram, Settings]]:
    """A fake Telegram, and the bot's settings for it with `allowed` (user ids) on its list."""
    with FakeTelegram(TELEGRAM_TOKEN) as telegram:
        settings = settings_for(
            h,
            redis,
            workspace,
            telegram_bot_token=TELEGRAM_TOKEN,
            telegram_api_base_url=telegram.url,
            allowed_telegram_user_id=allowed,
            **extra,
        )
        yield telegram, settings


@contextlib.contextmanager
def discord_bot(
    h: Harness, redis: RedisServer, workspace: Path, allowed: str, **extra: Any
) -> Iterator[tuple[FakeDiscord, Settings]]:
    """A fake Discord, and the bot's settings for it with `allowed` (user ids) on its list."""
    with FakeDiscord(DISCORD_TOKEN) as discord:
        settings = settings_for(
            h,
            redis,
            workspace,
            discord_bot_token=DISCORD_TOKEN,
            discord_api_base_url=discord.api_url,
            allowed_discord_user_id=allowed,
            **extra,
        )
        yield discord, settings


@dataclass
class RunningBot:
    front: Any
    pool: ArqRedis
    worker: FairWorker
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def start_worker(self) -> None:
        self.tasks.append(asyncio.create_task(self.worker.main()))


@contextlib.asynccontextmanager
async def bot_running(
    settings: Settings, front: Callable[[Settings, ArqRedis], Any], *, worker: bool = True
) -> AsyncIterator[RunningBot]:
    """A front end and a worker against the settings' Redis, torn down on exit."""
    options = worker_settings(settings)
    pool = await create_pool(options["redis_settings"])
    bot = RunningBot(front(settings, pool), pool, FairWorker(**options, handle_signals=False))
    bot.tasks.append(asyncio.create_task(bot.front.run()))
    if worker:
        bot.start_worker()
    try:
        yield bot
    finally:
        # A job whose answer the test has seen may still be storing its result; arq's close()
        # cancels such a task and then re-raises its CancelledError (seen once in CI).
        finishing = [t for t in bot.worker.tasks.values() if not t.done()]
        if finishing:
            await asyncio.wait(finishing, timeout=15)
        for task in bot.tasks:
            task.cancel()
        await asyncio.gather(*bot.tasks, return_exceptions=True)
        await bot.worker.close()
        await pool.aclose()


async def outbox(redis_url: str) -> list[dict[str, str]]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        entries = await pool.xrange(sessions.OUTBOX)
        return [orjson.loads(fields[b"data"]) for _, fields in entries]
    finally:
        await pool.aclose()


def alive(marker: str) -> bool:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0
