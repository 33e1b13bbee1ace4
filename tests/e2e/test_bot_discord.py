"""The Discord front end against a fake Discord (REST + gateway WebSocket on 127.0.0.1), with a
real Redis, the arq worker and the real Claude Code CLI behind the edge: the same service as
on Telegram — work done with progress and an answer, sessions resumed, strangers refused,
long answers uploaded as a file, no allowlist no bot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from ccgate.bot.fronts.discord import DiscordFront
from tests.e2e.bot_harness import DISCORD_TOKEN, bot_running, discord_bot
from tests.e2e.conftest import Harness, until
from tests.fakes.backend import Turn
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e
ANA, STRANGER = "4242", "6666"
DM = f"77{ANA}"


def test_discord_conversation(
    harness_factory: Callable[..., Harness], bot_redis: RedisServer, tmp_path: Path
) -> None:
    h = harness_factory("openai")
    target = tmp_path / f"discord-{ANA}" / "default" / "todo.md"
    long_answer = "\n".join(f"line {i}: " + "x" * 70 for i in range(150))  # > 4 × 2000
    h.backend.script(
        Turn(
            text="Writing.",
            reasoning="A todo file, then.",
            tool_calls=[("Write", {"file_path": str(target), "content": "- ship it\n"})],
        ),
        Turn(text="Done: todo.md is there."),
        Turn(text="We talked about todo.md."),
        Turn(text=long_answer),
        Turn(text="Four."),
    )
    with discord_bot(h, bot_redis, tmp_path, ANA, discord_channels="556") as (discord, settings):

        async def scenario() -> None:
            async with bot_running(settings, DiscordFront):
                await until(discord.identified.is_set, within=30)
                discord.user_says(ANA, "please create todo.md")
                await until(lambda: "Done: todo.md is there." in discord.texts(DM))
                discord.user_says(STRANGER, "delete everything")
                await until(lambda: any("not allowed" in t for t in discord.texts(f"77{STRANGER}")))
                discord.user_says(ANA, "what did we talk about?")
                await until(lambda: "We talked about todo.md." in discord.texts(DM))
                discord.user_says(ANA, "!new")
                await until(lambda: any(t.startswith("Fresh session") for t in discord.texts(DM)))
                discord.user_says(ANA, "print a long report")
                await until(lambda: any(s.get("file") == "answer.md" for s in discord.sent))
                discord.user_says(ANA, "/status")
                await until(lambda: any(t.startswith("session:") for t in discord.texts(DM)))
                # In a server: talk among people is left alone; a mention, or a channel set
                # aside for the bot, is a message for it.
                discord.user_says(ANA, "lunch at noon?", channel_id="555")
                discord.user_says(ANA, "what is 2+2", channel_id="555", mention_bot=True)
                await until(lambda: "Four." in discord.texts("555"))
                discord.user_says(ANA, "/model opus", channel_id="556")
                await until(lambda: "Model tier: opus." in discord.texts("556"))

        asyncio.run(scenario())
        assert target.read_text() == "- ship it\n"
        assert any("🔧 Write" in t for t in discord.texts(DM))  # progress was relayed
        assert any("||💭 A todo file, then.||" in t for t in discord.texts(DM))  # a spoiler
        assert all(len(s["content"]) <= 2000 for s in discord.sent)  # Discord's limit
        assert len(h.backend.requests) == 5  # the stranger and the lunch chat ran nothing
        assert "what is 2+2" in str(h.backend.requests[4].body)
        assert "<@" not in str(h.backend.requests[4].body["messages"][-1])  # mention stripped
        assert discord.texts("555") == ["Working on it…", "Four."]  # a plain answer, no notes
        resumed = str(h.backend.requests[2].body)
        assert "please create todo.md" in resumed  # the second message resumed the session
        assert "please create todo.md" not in str(h.backend.requests[3].body)  # !new: fresh
        assert discord.intents is not None and discord.intents & (1 << 15)  # message content
        assert all(DISCORD_TOKEN not in str(s) for s in discord.sent)
