"""Voice notes, files and photos through the Telegram front end, end to end with the real
CLI: a real voice note (espeak-ng speaks, ffmpeg encodes it as Telegram's OGG/Opus) goes to a
fake OpenAI-compatible transcription server, the transcript is shown back and becomes the
task; files land in the project's uploads/ under a safe name and are named in the prompt;
too big is refused before downloading; a stranger's file is never downloaded."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ccgate.bot.attachments import safe_name
from ccgate.bot.fronts.discord import DiscordFront
from ccgate.bot.fronts.telegram import TelegramFront
from tests.e2e.bot_harness import bot_running, discord_bot, telegram_bot
from tests.e2e.conftest import Harness, until
from tests.fakes.backend import Turn
from tests.fakes.transcription import FakeTranscription
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e
STT_KEY = "stt-PLANTED-key"
ANA, STRANGER = 42, 666
SPOKEN = "create a file named spoken.txt"


def voice_note(tmp: Path) -> bytes:
    wav, ogg = tmp / "note.wav", tmp / "note.ogg"
    subprocess.run(["espeak-ng", "-w", str(wav), SPOKEN], check=True, capture_output=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "libopus", "-b:a", "24k", str(ogg)],
        check=True,
        capture_output=True,
    )
    return ogg.read_bytes()


def prompt_of(h: Harness, index: int) -> str:
    return str(h.backend.requests[index].body["messages"])


def heard_by(stt: FakeTranscription, **extra: Any) -> dict[str, Any]:
    """The bot's settings for transcribing with `stt`."""
    return {"transcription_base_url": stt.url, "transcription_api_key": STT_KEY, **extra}


def test_voice_notes_files_and_photos(
    harness_factory: Callable[..., Harness], bot_redis: RedisServer, tmp_path: Path
) -> None:
    h = harness_factory("openai")
    ws = tmp_path / "ws"
    project = ws / f"telegram-{ANA}" / "default"
    h.backend.script(
        Turn(
            text="Writing.",
            tool_calls=[("Write", {"file_path": str(project / "spoken.txt"), "content": "said\n"})],
        ),
        Turn(text="spoken.txt is there."),
        Turn(text="The log says boom."),
        Turn(text="It is a passwd file."),
        Turn(text="A tiny photo."),
    )
    note = voice_note(tmp_path)
    log = b"2026-12-01 ERROR boom\n"
    with (
        FakeTranscription(SPOKEN, STT_KEY) as stt,
        telegram_bot(
            h,
            bot_redis,
            ws,
            str(ANA),
            **heard_by(stt, transcription_model="whisper-large-v3"),
            bot_upload_max_bytes=100_000,
        ) as (telegram, settings),
    ):

        async def scenario() -> None:
            async with bot_running(settings, TelegramFront):
                telegram.user_sends(ANA, "voice", note)
                await until(lambda: "spoken.txt is there." in telegram.texts(ANA))
                telegram.user_sends(
                    ANA, "document", log, file_name="app.log", caption="fix the bug in this log"
                )
                await until(lambda: "The log says boom." in telegram.texts(ANA))
                telegram.user_sends(ANA, "document", b"root:x:0:0\n", file_name="../../etc/passwd")
                await until(
                    lambda: any(
                        t.startswith("📎 Saved uploads/passwd") for t in telegram.texts(ANA)
                    )
                )
                telegram.user_says(ANA, "what is in it?")
                await until(lambda: "It is a passwd file." in telegram.texts(ANA))
                telegram.user_sends(ANA, "document", b"x" * 200_000, file_name="big.bin")
                await until(lambda: any("BOT_UPLOAD_MAX_BYTES" in t for t in telegram.texts(ANA)))
                telegram.user_sends(STRANGER, "document", b"evil", file_name="evil.sh")
                await until(lambda: any("not allowed" in t for t in telegram.texts(STRANGER)))
                telegram.user_sends(
                    ANA, "photo", b"\xff\xd8\xff tiny jpeg", caption="what is this?"
                )
                await until(lambda: "A tiny photo." in telegram.texts(ANA))

        asyncio.run(scenario())
    texts = telegram.texts(ANA)
    # The voice note: real Opus in Ogg, transcribed with our model, shown back, run.
    assert [(x.codec, x.container, x.model) for x in stt.heard] == [
        ("opus", "ogg", "whisper-large-v3")
    ]
    assert stt.heard[0].duration > 0
    assert f"🎙️ “{SPOKEN}”" in texts
    assert SPOKEN in prompt_of(h, 0)
    assert (project / "spoken.txt").read_text() == "said\n"
    # Files: saved in the project, named in the prompt; a hostile name kept inside.
    assert (project / "uploads" / "app.log").read_bytes() == log
    assert "fix the bug in this log" in prompt_of(h, 2)
    assert "(Attached, in the project: uploads/app.log)" in prompt_of(h, 2)
    assert (project / "uploads" / "passwd").read_bytes() == b"root:x:0:0\n"
    assert "uploads/passwd" in prompt_of(h, 3) and "what is in it?" in prompt_of(h, 3)
    assert not (ws / "etc").exists() and not (tmp_path / "etc").exists()
    photo = next((project / "uploads").glob("photo-*.jpg"))
    assert photo.read_bytes() == b"\xff\xd8\xff tiny jpeg"
    assert f"uploads/{photo.name}" in prompt_of(h, 4)
    # Too big: refused from the announced size, never downloaded; the stranger's file neither.
    assert not (project / "uploads" / "big.bin").exists()
    assert len(telegram.downloads) == 4  # voice, app.log, passwd, photo
    assert not list(ws.glob("telegram-666*/**/evil.sh"))
    assert len(h.backend.requests) == 5
    assert all(STT_KEY not in str(s) for s in telegram.sent)


@pytest.mark.parametrize(
    ("given", "saved"),
    [
        ("../../etc/passwd", "passwd"),
        ("..", "file"),
        (".bashrc", "bashrc"),
        ("C:\\Users\\me\\report final.pdf", "report_final.pdf"),
        ("naïve résumé.txt", "naive_resume.txt"),
        ("$(rm -rf ~);.sh", "rm_-rf_.sh"),
        ("a" * 300 + ".log", "a" * 96 + ".log"),
    ],
)
def test_upload_names_are_sanitised(given: str, saved: str) -> None:
    assert safe_name(given) == saved


D_ANA = "4242"


def test_discord_voice_messages_and_files(
    harness_factory: Callable[..., Harness], bot_redis: RedisServer, tmp_path: Path
) -> None:
    """The same on Discord: a voice message (flag IS_VOICE_MESSAGE, OGG/Opus attachment) and a
    file attached to a message, fetched from the attachment's URL."""
    h = harness_factory("openai")
    ws = tmp_path / "ws"
    project = ws / f"discord-{D_ANA}" / "default"
    h.backend.script(Turn(text="Heard you."), Turn(text="Read the notes."))
    with (
        FakeTranscription(SPOKEN, STT_KEY) as stt,
        discord_bot(h, bot_redis, ws, D_ANA, **heard_by(stt)) as (discord, settings),
    ):
        dm = f"77{D_ANA}"

        async def scenario() -> None:
            async with bot_running(settings, DiscordFront):
                await until(discord.identified.is_set, within=30)
                discord.user_says(D_ANA, "", attachments={"voice-message.ogg": note}, voice=True)
                await until(lambda: "Heard you." in discord.texts(dm))
                discord.user_says(D_ANA, "summarise these", attachments={"notes.txt": b"n1\n"})
                await until(lambda: "Read the notes." in discord.texts(dm))

        note = voice_note(tmp_path)
        asyncio.run(scenario())
    assert [(x.codec, x.model) for x in stt.heard] == [("opus", "whisper-1")]
    assert f"🎙️ “{SPOKEN}”" in discord.texts(dm)
    assert SPOKEN in prompt_of(h, 0)
    assert (project / "uploads" / "notes.txt").read_bytes() == b"n1\n"
    assert "(Attached, in the project: uploads/notes.txt)" in prompt_of(h, 1)
    assert len(discord.downloads) == 2
