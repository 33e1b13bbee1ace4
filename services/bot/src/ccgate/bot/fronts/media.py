"""Voice notes and files in the chat, whatever the platform: a voice note is transcribed,
shown back and becomes the task; a file or photo is saved into the user's current project
and named in the prompt — of its caption's task, or of the person's next message."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ccgate.bot import sessions
from ccgate.bot.attachments import (
    AttachmentError,
    check_size,
    prompt_with_files,
    save_upload,
    transcribe,
)
from ccgate.bot.workspace import WorkspaceError, project_dir, user_root
from ccgate.shared.settings import Settings

if TYPE_CHECKING:
    from ccgate.bot.fronts.core import Incoming

VOICE, FILE = "voice", "file"
PENDING_TTL = 24 * 3600


@dataclass(frozen=True)
class Media:
    kind: str  # VOICE or FILE
    name: str
    mime: str
    size: int | None  # as the platform announces it (checked before downloading)
    fetch: Callable[[], Awaitable[bytes]]


def pending_key(platform: str, chat_id: str) -> str:
    return f"ccgate:bot:files:{platform}:{chat_id}"


class MediaDesk:
    def __init__(self, settings: Settings, redis: Any, platform: str, send: Any) -> None:
        self.settings, self.redis, self.platform = settings, redis, platform
        self.send: Callable[[str, str], Awaitable[str]] = send

    async def take(self, message: Incoming) -> Incoming | None:
        """The message as a task: its text the transcript or the caption, its files saved.
        None when there is nothing to run (a file without a caption; an error, said)."""
        saved: list[str] = []
        text = message.text.strip()
        try:
            for media in message.media:
                limit = self.settings.bot_upload_max_bytes
                check_size(media.size or 0, limit)  # before downloading it
                data = await media.fetch()
                check_size(len(data), limit)
                if media.kind == VOICE:
                    heard = await transcribe(self.settings, data, media.name, media.mime)
                    await self.send(message.chat_id, f"🎙️ “{heard}”")
                    text = f"{text}\n{heard}".strip()
                else:
                    project = await self._project(message)
                    saved.append(str(save_upload(project, media.name, data, limit)))
        except (AttachmentError, WorkspaceError) as exc:
            await self.send(message.chat_id, f"⚠️ {exc}")
            return None
        if saved and not text:
            await self.redis.rpush(pending_key(self.platform, message.chat_id), *saved)
            await self.redis.expire(pending_key(self.platform, message.chat_id), PENDING_TTL)
            await self.send(
                message.chat_id,
                f"📎 Saved {', '.join(saved)}. Tell me what to do with it.",
            )
            return None
        return dataclasses.replace(message, text=text, media=(), files=tuple(saved))

    async def prompt(self, message: Incoming) -> str:
        """The task's prompt: its text, naming the files it came with and any sent before."""
        key = pending_key(self.platform, message.chat_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrange(key, 0, -1)
            pipe.delete(key)
            earlier, _ = await pipe.execute()
        files = [raw.decode() for raw in earlier] + list(message.files)
        return prompt_with_files(message.text, files)

    async def _project(self, message: Incoming) -> Any:
        state = await sessions.load(self.redis, self.platform, message.chat_id)
        root = user_root(self.settings.claude_workspace, self.platform, message.user_id)
        return project_dir(root, state.project)
