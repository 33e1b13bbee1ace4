"""The Telegram front end against a fake Bot API server, with a real Redis, the arq worker and
the real Claude Code CLI behind the edge: allowed users get their work done with progress and
an answer; strangers get a refusal and run nothing; a redelivered update runs once; no
allowlist, no bot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from ccgate.bot.fronts.core import split
from ccgate.bot.fronts.telegram import TelegramFront
from tests.e2e.bot_harness import TELEGRAM_TOKEN, bot_running, telegram_bot
from tests.e2e.conftest import Harness, until
from tests.fakes.backend import Turn
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e
ANA, STRANGER = 42, 666


def test_telegram_conversation(
    harness_factory: Callable[..., Harness], bot_redis: RedisServer, tmp_path: Path
) -> None:
    h = harness_factory("openai")
    target = tmp_path / f"telegram-{ANA}" / "default" / "notes.md"
    h.backend.script(
        Turn(
            text="Writing.",
            reasoning="The user wants a notes file & nothing else.",
            tool_calls=[("Write", {"file_path": str(target), "content": "# notes\n"})],
        ),
        Turn(text="Done: notes.md is there."),
        Turn(text="We talked about notes.md."),
    )
    with telegram_bot(h, bot_redis, tmp_path, str(ANA)) as (telegram, settings):

        async def scenario() -> None:
            async with bot_running(settings, TelegramFront):
                first = telegram.user_says(ANA, "please create notes.md")
                telegram.user_says(ANA, "please create notes.md", message_id=first)  # redelivered
                await until(lambda: "Done: notes.md is there." in telegram.texts(ANA))
                telegram.user_says(STRANGER, "rm -rf / please")
                await until(
                    lambda: any("not allowed" in t for t in telegram.texts(STRANGER)), within=20
                )
                telegram.user_says(ANA, "what did we talk about?")
                await until(lambda: "We talked about notes.md." in telegram.texts(ANA))
                telegram.user_says(ANA, "/status")
                await until(
                    lambda: any(t.startswith("session:") for t in telegram.texts(ANA)), within=20
                )
                for command, reply in (
                    ("/project", "Projects: default (current)."),
                    ("/project web", "Project: web (a fresh session starts there)."),
                    ("/project", "Projects: default, web (current)."),
                    ("/project ../../etc", "a project name is letters"),
                    ("/model haiku", "Model tier: haiku."),
                ):
                    telegram.user_says(ANA, command)
                    await until(
                        lambda r=reply: any(t.startswith(r) for t in telegram.texts(ANA)),  # type: ignore[misc]
                        within=20,
                    )

        asyncio.run(scenario())
        texts = telegram.texts(ANA)
        assert target.read_text() == "# notes\n"
        assert any("🔧 Write" in s.get("text", "") for s in telegram.sent)  # progress was relayed
        # The thinking as a collapsed note (Telegram's expandable quote), escaped.
        assert any(
            "<blockquote expandable>💭 The user wants a notes file &amp; nothing else."
            in s.get("text", "")
            for s in telegram.sent
        )
        assert (
            len(h.backend.requests) == 3
        )  # the redelivered update ran nothing; the stranger neither
        assert "please create notes.md" in str(
            h.backend.requests[-1].body
        )  # the session was resumed
        status = next(t for t in texts if t.startswith("session:"))
        assert "session: (new)" not in status
        assert "limiter: openai_compat 0 running, 0 queued" in status  # asked of the edge
        assert all(TELEGRAM_TOKEN not in str(s) for s in telegram.sent)
        # Rendered as HTML, and Telegram's strict parser (the fake's) took every message.
        assert all(s.get("parse_mode") == "HTML" for s in telegram.sent if "text" in s)
        assert (tmp_path / f"telegram-{ANA}" / "web").is_dir()
        assert not (tmp_path / "etc").exists()


def test_long_answers_are_split_at_the_limit() -> None:
    text = ("line of text\n" * 1000).strip()
    pieces = split(text, 4096)
    assert all(len(p) <= 4096 for p in pieces) and "\n".join(pieces) == text
