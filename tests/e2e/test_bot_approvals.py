"""Approving Claude Code's actions from the chat, end to end: the real CLI, run by the worker
in ask mode (BOT_PERMISSION_MODE=ask, the default) with our MCP server as its permission
prompt tool, a real Redis, and the fake Telegram with its inline keyboards and callback
queries. Allow once, allow for the session (not asked again in the next turn, which resumes
the session), deny with a typed reason (Claude Code receives it), a stranger's press refused,
no answer within BOT_APPROVAL_TIMEOUT (denied, the run goes on), /stop while a request waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from ccgate.bot.fronts.discord import DiscordFront
from ccgate.bot.fronts.telegram import TelegramFront
from tests.e2e.bot_harness import alive, bot_running, discord_bot, telegram_bot
from tests.e2e.conftest import Harness, until
from tests.fakes.backend import Turn
from tests.fakes.telegram import FakeTelegram
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e
ANA, BEA, STRANGER = 42, 43, 666
ALLOWED = f"{ANA},{BEA}"
ASKED = {"bot_allowed_tools": "Read"}  # Bash and Write are asked


def tool_results(h: Harness) -> list[str]:
    return [
        str(m.get("content"))
        for r in h.backend.requests
        for m in r.body.get("messages", [])
        if m.get("role") == "tool"
    ]


async def buttons_shown(telegram: FakeTelegram, chat: int, seen: int) -> int:
    """Waits for a new message with buttons in the chat; its id."""
    await until(
        lambda: len(telegram.with_buttons(chat)) > 0 and max(telegram.with_buttons(chat)) > seen
    )
    return max(telegram.with_buttons(chat))


def test_approvals_from_telegram(
    harness_factory: Callable[..., Harness], bot_redis: RedisServer, tmp_path: Path
) -> None:
    h = harness_factory("openai")
    ws = tmp_path / f"telegram-{ANA}" / "default"
    h.backend.script(
        Turn(text="First.", tool_calls=[("Bash", {"command": "touch one.txt"})]),
        Turn(text="One done."),
        Turn(text="Second.", tool_calls=[("Bash", {"command": "touch two.txt"})]),
        Turn(text="Two done."),
        Turn(text="Third.", tool_calls=[("Bash", {"command": "touch three.txt"})]),
        Turn(text="Three done."),
        Turn(
            text="Writing.",
            tool_calls=[("Write", {"file_path": str(ws / "x.md"), "content": "x\n"})],
        ),
        Turn(text="Not writing, then."),
        Turn(text="Again.", tool_calls=[("Bash", {"command": "sleep 1 && echo five > five.txt"})]),
        Turn(text="never reached"),
    )
    with telegram_bot(h, bot_redis, tmp_path, ALLOWED, **ASKED) as (telegram, settings):
        presses: dict[str, str] = {}

        async def scenario() -> None:
            async with bot_running(settings, TelegramFront):
                # Allow once; a stranger's press first, refused.
                telegram.user_says(ANA, "write one.txt")
                first = await buttons_shown(telegram, ANA, 0)
                presses["stranger"] = telegram.user_presses(STRANGER, ANA, first, "✅ Allow once")
                await until(lambda: telegram.answer(presses["stranger"]) is not None)
                assert first in telegram.with_buttons(ANA)  # still waiting
                presses["once"] = telegram.user_presses(ANA, ANA, first, "✅ Allow once")
                await until(lambda: "One done." in telegram.texts(ANA))
                # Allow for the session (another allowlisted user may answer too) …
                telegram.user_says(ANA, "write two.txt")
                second = await buttons_shown(telegram, ANA, first)
                telegram.user_presses(BEA, ANA, second, "♾️ Allow `touch` commands")
                await until(lambda: "Two done." in telegram.texts(ANA))
                # … so the next turn (a new CLI process resuming the session) is not asked.
                telegram.user_says(ANA, "write three.txt")
                await until(lambda: "Three done." in telegram.texts(ANA))
                # Deny with a typed reason: Claude Code gets it.
                telegram.user_says(ANA, "write x.md")
                third = await buttons_shown(telegram, ANA, second)
                telegram.user_presses(ANA, ANA, third, "✍️ Deny with reason")
                await until(lambda: any(t.startswith("✍️ Why not?") for t in telegram.texts(ANA)))
                telegram.user_says(ANA, "keep notes in docs/ instead")
                await until(lambda: "Not writing, then." in telegram.texts(ANA))
                # A compound command: no session rule covers it, it is asked; /stop denies it
                # and stops the run.
                telegram.user_says(ANA, "write five.txt")
                fourth = await buttons_shown(telegram, ANA, third)
                telegram.user_says(ANA, "/stop")
                await until(lambda: "Stopped." in telegram.texts(ANA))
                await until(lambda: fourth not in telegram.with_buttons(ANA))
                await until(lambda: not alive(str(tmp_path)), within=30)

        asyncio.run(scenario())
    assert all((ws / f"{n}.txt").exists() for n in ("one", "two", "three"))
    assert not (ws / "x.md").exists() and not (ws / "five.txt").exists()
    asked = [s for s in telegram.sent if s["method"] == "sendMessage" and s.get("reply_markup")]
    assert len(asked) == 4  # one.txt, two.txt, x.md, five.txt — three.txt was not asked
    assert "$ touch one.txt" in asked[0]["text"]  # the command, shown (as HTML)
    assert "x.md" in asked[2]["text"] and "+x" in asked[2]["text"]  # the file and its diff
    # The stranger was refused with an alert, the owner's press acknowledged.
    assert telegram.answer(presses["stranger"]) == {
        "text": "Only the person who started this run (or an allowed user) can answer.",
        "show_alert": True,
    }
    assert telegram.answer(presses["once"]) == {"text": "Done.", "show_alert": False}
    results = tool_results(h)
    assert any("keep notes in docs/ instead" in r for r in results)  # the reason reached it
    # Every answered request's message says what was decided, its buttons gone.
    texts = telegram.texts(ANA)
    assert any("Bash: ✅ allowed once" in t for t in texts)
    assert any("<code>touch</code> commands allowed for this session" in t for t in texts)
    assert any("Write: 🚫 denied — “keep notes in docs/ instead”" in t for t in texts)
    assert any("Bash: 🛑 stopped" in t for t in texts)
    assert telegram.with_buttons(ANA) == []


def test_an_unanswered_request_is_denied_and_the_run_goes_on(
    harness_factory: Callable[..., Harness], bot_redis: RedisServer, tmp_path: Path
) -> None:
    h = harness_factory("openai")
    ws = tmp_path / f"telegram-{ANA}" / "default"
    h.backend.script(
        Turn(text="Trying.", tool_calls=[("Bash", {"command": "echo late > late.txt"})]),
        Turn(text="Nobody answered; I left it."),
    )
    soon = {**ASKED, "bot_approval_timeout": 2}
    with telegram_bot(h, bot_redis, tmp_path, ALLOWED, **soon) as (telegram, settings):

        async def scenario() -> None:
            async with bot_running(settings, TelegramFront):
                telegram.user_says(ANA, "write late.txt")
                await until(lambda: "Nobody answered; I left it." in telegram.texts(ANA))

        asyncio.run(scenario())
    assert not (ws / "late.txt").exists()
    assert any("BOT_APPROVAL_TIMEOUT" in r for r in tool_results(h))
    assert any("no answer within" in t for t in telegram.texts(ANA))
    # Said once, on the request's message: not again as a "not allowed" line of the run.
    assert not any("Not allowed here" in t for t in telegram.texts(ANA))
    assert telegram.with_buttons(ANA) == []


D_ANA, D_STRANGER = "4242", "6666"
D_DM = f"77{D_ANA}"


def test_approvals_from_discord(
    harness_factory: Callable[..., Harness], bot_redis: RedisServer, tmp_path: Path
) -> None:
    """The same through Discord's buttons and interactions: a stranger's press is answered with
    a note only they see, the owner's updates the message in place; deny with a reason."""
    h = harness_factory("openai")
    ws = tmp_path / f"discord-{D_ANA}" / "default"
    h.backend.script(
        Turn(text="First.", tool_calls=[("Bash", {"command": "touch one.txt"})]),
        Turn(text="One done."),
        Turn(text="Again.", tool_calls=[("Bash", {"command": "touch two.txt"})]),
        Turn(text="Left it."),
    )
    with discord_bot(h, bot_redis, tmp_path, D_ANA, **ASKED) as (discord, settings):
        presses: dict[str, str] = {}

        async def scenario() -> None:
            async with bot_running(settings, DiscordFront):
                await until(discord.identified.is_set, within=30)
                discord.user_says(D_ANA, "make one.txt")
                await until(lambda: bool(discord.with_buttons(D_DM)))
                first = discord.with_buttons(D_DM)[-1]
                presses["stranger"] = discord.user_presses(D_STRANGER, first, "✅ Allow once")
                await until(lambda: discord.answer(presses["stranger"]) is not None)
                presses["once"] = discord.user_presses(D_ANA, first, "✅ Allow once")
                await until(lambda: "One done." in discord.texts(D_DM))
                discord.user_says(D_ANA, "make two.txt")
                await until(lambda: any(int(m) > int(first) for m in discord.with_buttons(D_DM)))
                second = discord.with_buttons(D_DM)[-1]
                presses["why"] = discord.user_presses(D_ANA, second, "✍️ Deny with reason")
                await until(lambda: any(t.startswith("✍️ Why not?") for t in discord.texts(D_DM)))
                discord.user_says(D_ANA, "not in this folder")
                await until(lambda: "Left it." in discord.texts(D_DM))

        asyncio.run(scenario())
    assert (ws / "one.txt").exists() and not (ws / "two.txt").exists()
    refusal = discord.answer(presses["stranger"])
    assert refusal is not None and refusal["type"] == 4
    assert refusal["flags"] == 64  # ephemeral: the stranger alone sees it
    assert refusal["content"] == (
        "Only the person who started this run (or an allowed user) can answer."
    )
    once = discord.answer(presses["once"])
    assert once is not None and once["type"] == 7 and once["components"] == []
    assert "Bash: ✅ allowed once" in once["content"]
    assert any("not in this folder" in r for r in tool_results(h))
    assert discord.with_buttons(D_DM) == []
    assert any("Bash: 🚫 denied — “not in this folder”" in t for t in discord.texts(D_DM))
