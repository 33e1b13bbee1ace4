"""`/usage` in the chat, end to end: the edge runs with team keys and the bot's key fans out
per chat user; two people's runs (the real CLI) are recorded apart, and each person's /usage
shows their own requests and tokens, today and this month."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ccgate.bot.fronts.telegram import TelegramFront
from ccgate.edge.keys import FileKeyStore, new_record
from tests.e2e.bot_harness import bot_running, telegram_bot
from tests.e2e.conftest import Harness, until
from tests.fakes.backend import Turn
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e
ANA, BEA = 42, 43


def test_usage_per_chat_user(
    harness_factory: Callable[..., Harness], bot_redis: RedisServer, tmp_path: Path
) -> None:
    bot_key, record = new_record("bot", chat_users=True)
    FileKeyStore(tmp_path / "keys.json").save(record)
    h = harness_factory("openai", CCGATE_KEYS_FILE=str(tmp_path / "keys.json"))
    h.backend.script(Turn(text="Hi Ana."), Turn(text="Hi Bea."), Turn(text="Again, Ana."))
    with telegram_bot(
        h, bot_redis, tmp_path / "ws", f"{ANA},{BEA}", ccgate_bot_api_key=bot_key
    ) as (telegram, settings):

        async def scenario() -> None:
            async with bot_running(settings, TelegramFront):
                telegram.user_says(ANA, "hello")
                await until(lambda: "Hi Ana." in telegram.texts(ANA))
                telegram.user_says(BEA, "hello")
                await until(lambda: "Hi Bea." in telegram.texts(BEA))
                telegram.user_says(ANA, "hello again")
                await until(lambda: "Again, Ana." in telegram.texts(ANA))
                for user in (ANA, BEA):
                    telegram.user_says(user, "/usage")
                    await until(
                        lambda u=user: any(t.startswith("Your usage") for t in telegram.texts(u))  # type: ignore[misc]
                    )

        asyncio.run(scenario())
    rows = httpx.get(
        h.edge_url + "/ccgate/usage", headers={"x-api-key": bot_key}, timeout=10
    ).json()["rows"]
    assert {r["key"] for r in rows} == {"bot"}
    for user in (ANA, BEA):
        mine = [r for r in rows if r["chat_user"] == f"telegram:{user}"]
        requests = sum(r["requests"] for r in mine)
        tokens_in = sum(r["input_tokens"] for r in mine)
        reply = next(t for t in telegram.texts(user) if t.startswith("Your usage"))
        today = re.search(r"today: (\d+) requests, ([\d,]+) in", reply)
        assert today is not None, reply
        assert (int(today[1]), int(today[2].replace(",", ""))) == (requests, tokens_in)
        assert f"this month: {requests} requests" in reply
    ana = next(t for t in telegram.texts(ANA) if t.startswith("Your usage"))
    bea = next(t for t in telegram.texts(BEA) if t.startswith("Your usage"))
    assert ana != bea  # two runs against one: recorded apart
    assert bot_key not in str(telegram.sent)
