"""The answer always reaches the person, whatever Telegram refuses on the way. The Telegram
front end relays the worker's posts (written to the real outbox in a real Redis, as a worker
writes them) to a fake Bot API as strict as Telegram's: an edit that changes nothing, an edit
of a message the user deleted, a 429 flood wait."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from arq import create_pool
from arq.connections import RedisSettings

from ccgate.bot import sessions
from ccgate.bot.fronts.telegram import TelegramFront
from ccgate.shared.settings import Settings
from tests.e2e.bot_harness import TELEGRAM_TOKEN, bot_running
from tests.e2e.conftest import until
from tests.fakes.telegram import NOT_MODIFIED, FakeTelegram
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e
ANA = 42


def _settings(redis: RedisServer, telegram: FakeTelegram, workspace: Path) -> Settings:
    return Settings.from_env(
        None,
        redis_url=redis.url,
        claude_workspace=str(workspace),
        telegram_bot_token=TELEGRAM_TOKEN,
        telegram_api_base_url=telegram.url,
        allowed_telegram_user_id=str(ANA),
    )


async def _posts(redis: RedisServer, job: str, *posts: tuple[str, str]) -> None:
    pool = await create_pool(RedisSettings.from_dsn(redis.url))
    try:
        for kind, text in posts:
            await sessions.post(pool, "telegram", str(ANA), kind, text, job)
    finally:
        await pool.aclose()


def test_the_answer_survives_a_refused_edit(bot_redis: RedisServer, tmp_path: Path) -> None:
    """A run with one tool call: the progress note shows `🔧 Bash: ls`, and when the run ends
    the note's last edit would show the same text — Telegram refuses it (not modified). Then
    the user deletes a progress note before its run ends (message to edit not found)."""
    with FakeTelegram(TELEGRAM_TOKEN) as telegram:

        async def scenario() -> None:
            async with bot_running(
                _settings(bot_redis, telegram, tmp_path), TelegramFront, worker=False
            ):
                await _posts(bot_redis, "j1", ("tool", "🔧 Bash: ls"), ("final", "First answer."))
                await until(lambda: "First answer." in telegram.texts(ANA), within=30)
                await _posts(bot_redis, "j2", ("tool", "🔧 Bash: pwd"))
                await until(lambda: "🔧 Bash: pwd" in telegram.texts(ANA), within=30)
                note = max(message_id for _, message_id in telegram.messages)
                telegram.delete(ANA, note)
                await _posts(bot_redis, "j2", ("final", "Second answer."))
                await until(lambda: "Second answer." in telegram.texts(ANA), within=30)

        asyncio.run(scenario())
    refusals = [description for _, description in telegram.refused]
    assert "Bad Request: " + NOT_MODIFIED in refusals  # the case happened, and cost nothing
    assert "Bad Request: message to edit not found" in refusals
    assert telegram.texts(ANA) == ["🔧 Bash: ls", "First answer.", "🔧 Bash: pwd", "Second answer."]


def test_a_flood_wait_is_honoured(bot_redis: RedisServer, tmp_path: Path) -> None:
    """Telegram answers 429 with parameters.retry_after; the answer goes out after that wait,
    and no call is made before it is over (the fake refuses and counts those)."""
    with FakeTelegram(TELEGRAM_TOKEN) as telegram:

        async def scenario() -> None:
            async with bot_running(
                _settings(bot_redis, telegram, tmp_path), TelegramFront, worker=False
            ):
                await _posts(bot_redis, "j1", ("final", "Warm-up."))
                await until(lambda: "Warm-up." in telegram.texts(ANA), within=30)
                telegram.flood(2, "sendMessage")
                await _posts(bot_redis, "j2", ("final", "The answer."), ("final", "And more."))
                await until(lambda: "And more." in telegram.texts(ANA), within=30)

        asyncio.run(scenario())
    assert ("sendMessage", "Too Many Requests: retry after 2") in telegram.refused
    assert telegram.early_calls == 0
    assert telegram.texts(ANA) == ["Warm-up.", "The answer.", "And more."]
