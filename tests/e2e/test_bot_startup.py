"""Fail closed: a front end with no allowlist does not start, and `ccgate bot` exits with a
message that names the setting to set — without ever printing the bot's token."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from ccgate.bot.fronts.core import ConfigurationError
from ccgate.bot.fronts.discord import DiscordFront
from ccgate.bot.fronts.telegram import TelegramFront
from ccgate.shared.settings import Settings
from tests.e2e.bot_harness import DISCORD_TOKEN, TELEGRAM_TOKEN
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e
CASES = {
    "telegram": (TelegramFront, "TELEGRAM_BOT_TOKEN", TELEGRAM_TOKEN, "ALLOWED_TELEGRAM_USER_ID"),
    "discord": (DiscordFront, "DISCORD_BOT_TOKEN", DISCORD_TOKEN, "ALLOWED_DISCORD_USER_ID"),
}


@pytest.mark.parametrize("platform", sorted(CASES))
def test_no_allowlist_no_bot(platform: str, redis_url: RedisServer) -> None:
    front: Any
    front, token_setting, token, allowlist = CASES[platform]
    settings = Settings.from_env(None, **{token_setting.lower(): token})
    with pytest.raises(ConfigurationError, match=allowlist):
        front(settings, None)
    env = {
        **os.environ,
        # Both platforms: the other one is configured well, and the bot still refuses.
        "MESSAGING_PLATFORM": "both",
        "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
        "ALLOWED_TELEGRAM_USER_ID": "1",
        "DISCORD_BOT_TOKEN": DISCORD_TOKEN,
        "ALLOWED_DISCORD_USER_ID": "1",
        "REDIS_URL": redis_url.url,
        allowlist: " ",
    }
    result = subprocess.run(
        [sys.executable, "-m", "ccgate.cli", "bot"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert allowlist in result.stderr
    assert TELEGRAM_TOKEN not in result.stderr + result.stdout
    assert DISCORD_TOKEN not in result.stderr + result.stdout
