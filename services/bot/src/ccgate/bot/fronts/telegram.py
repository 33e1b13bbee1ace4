"""The Telegram front end: allowed users' messages become arq jobs; the worker's progress comes
back through the Redis outbox and is sent here, with message edits throttled.

It never runs Claude Code itself. With no ALLOWED_TELEGRAM_USER_ID it refuses to start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from arq import ArqRedis
from arq.jobs import Job, JobStatus
from opentelemetry import trace
from telegram import Message, Update, User
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters

from ccgate.bot import sessions
from ccgate.bot.workspace import WorkspaceError, project_dir, user_root
from ccgate.shared.settings import Settings

log = logging.getLogger("ccgate.bot")
tracer = trace.get_tracer("ccgate.bot")

PLATFORM = "telegram"
MESSAGE_LIMIT = 4096
EDIT_INTERVAL = 1.5  # seconds between edits of one progress message (Telegram's flood limits)
TIERS = ("opus", "sonnet", "haiku")


class ConfigurationError(RuntimeError):
    pass


def allowed_users(raw: str | None, setting: str) -> set[str]:
    users = {part.strip() for part in (raw or "").split(",") if part.strip()}
    if not users:
        raise ConfigurationError(
            f"{setting} is empty: set it to the user ids allowed to use the bot (comma separated); "
            "the bot refuses to start open to everyone"
        )
    return users


def split(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split at line breaks where possible, never over `limit` characters a piece."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut if cut > limit // 2 else limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    return [*pieces, text] if text else pieces


def running_key(chat_id: str) -> str:
    return f"ccgate:bot:running:{PLATFORM}:{chat_id}"


@dataclass
class Progress:
    message_id: int | None = None
    lines: list[str] = field(default_factory=list)
    last_edit: float = 0.0


class TelegramFront:
    def __init__(self, settings: Settings, arq: ArqRedis, queue: str) -> None:
        if settings.telegram_bot_token is None:
            raise ConfigurationError("TELEGRAM_BOT_TOKEN is not set")
        self.settings = settings
        self.allowed = allowed_users(settings.allowed_telegram_user_id, "ALLOWED_TELEGRAM_USER_ID")
        self.arq = arq
        self.queue = queue
        self.progress: dict[str, Progress] = {}
        base = settings.telegram_api_base_url.rstrip("/")
        self.app = (
            Application.builder()
            .token(settings.telegram_bot_token.get_secret_value())
            .base_url(base if base.endswith("/bot") else base + "/bot")
            .base_file_url((base[:-4] if base.endswith("/bot") else base) + "/file/bot")
            .build()
        )
        for name, handler in (
            ("new", self.new),
            ("stop", self.stop),
            ("status", self.status),
            ("model", self.model),
            ("project", self.project),
            ("start", self.hello),
        ):
            self.app.add_handler(CommandHandler(name, handler))
        self.app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, self.message))

    # -- access ----------------------------------------------------------------------------
    async def _allowed(self, update: Update) -> bool:
        user = update.effective_user
        if user is not None and str(user.id) in self.allowed:
            return True
        log.warning("telegram: refused a message from user %s", user.id if user else "unknown")
        if update.effective_message is not None:
            await update.effective_message.reply_text("Sorry, you are not allowed to use this bot.")
        return False

    async def _caller(self, update: Update) -> tuple[str, Message, User] | None:
        """(chat id, message, user) of an allowed caller; None (after a refusal) otherwise."""
        if not await self._allowed(update):
            return None
        chat, message, user = update.effective_chat, update.effective_message, update.effective_user
        if chat is None or message is None or user is None:
            return None
        return str(chat.id), message, user

    # -- commands --------------------------------------------------------------------------
    async def hello(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        caller = await self._caller(update)
        if caller is not None:
            await caller[1].reply_text("Send me a task; /new starts over, /stop cancels.")

    async def message(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        caller = await self._caller(update)
        if caller is None:
            return
        chat_id, message, user = caller
        active = await self.arq.scard(running_key(chat_id))  # type: ignore[misc]
        if active >= self.settings.bot_user_queue_cap:
            await message.reply_text(
                f"You already have {active} request(s) queued or running; /stop one first."
            )
            return
        request = {
            "platform": PLATFORM,
            "chat_id": chat_id,
            "user_id": str(user.id),
            "text": message.text or "",
            "message_id": str(message.message_id),
        }
        # The job id is the update's identity: a redelivered update enqueues nothing new.
        job = await self.arq.enqueue_job(
            "run_claude",
            request,
            _job_id=f"{PLATFORM}:{chat_id}:{message.message_id}",
            _queue_name=self.queue,
        )
        if job is None:
            return
        await self.arq.sadd(running_key(chat_id), job.job_id)  # type: ignore[misc]
        await self.arq.expire(running_key(chat_id), int(self.settings.bot_job_timeout) + 600)
        await message.reply_text("Queued." if active else "Working on it…")

    async def new(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        caller = await self._caller(update)
        if caller is None:
            return
        chat_id, message, _user = caller
        await sessions.update(self.arq, PLATFORM, chat_id, session_id=None)
        await message.reply_text("Fresh session: the next message starts over.")

    async def stop(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        caller = await self._caller(update)
        if caller is None:
            return
        chat_id, message, _user = caller
        stopped = 0
        for raw in await self.arq.smembers(running_key(chat_id)):  # type: ignore[misc]
            job = Job(raw.decode(), self.arq, _queue_name=self.queue)
            if await job.status() in (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress):
                stopped += int(await job.abort(timeout=10))
            await self.arq.srem(running_key(chat_id), raw)  # type: ignore[misc]
        await message.reply_text("Stopped." if stopped else "Nothing was running.")

    async def status(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        caller = await self._caller(update)
        if caller is None:
            return
        chat_id, message, _user = caller
        state = await sessions.load(self.arq, PLATFORM, chat_id)
        lines = [
            f"session: {state.session_id or '(new)'}",
            f"project: {state.project or 'default'}",
            f"model: {state.model or 'default'}",
        ]
        for raw in await self.arq.smembers(running_key(chat_id)):  # type: ignore[misc]
            job = Job(raw.decode(), self.arq, _queue_name=self.queue)
            lines.append(f"job {raw.decode()}: {(await job.status()).value}")
        queued = await self.arq.zcard(self.queue)
        lines.append(f"jobs waiting across all chats: {queued}")
        await message.reply_text("\n".join(lines))

    async def model(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        caller = await self._caller(update)
        if caller is None:
            return
        chat_id, message, _user = caller
        choice = (context.args or [""])[0].lower()
        if choice not in TIERS:
            await message.reply_text("Use /model opus, /model sonnet or /model haiku.")
            return
        await sessions.update(self.arq, PLATFORM, chat_id, model=choice)
        await message.reply_text(f"Model tier: {choice}.")

    async def project(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        caller = await self._caller(update)
        if caller is None:
            return
        chat_id, message, user = caller
        name = (context.args or [""])[0]
        try:
            root = user_root(self.settings.claude_workspace, PLATFORM, user.id)
            project_dir(root, name)
        except WorkspaceError as exc:
            await message.reply_text(str(exc))
            return
        await sessions.update(self.arq, PLATFORM, chat_id, project=name, session_id=None)
        await message.reply_text(f"Project: {name} (a fresh session starts there).")

    # -- the worker's progress ---------------------------------------------------------------
    async def relay_outbox(self) -> None:
        """Send what the workers post; one consumer group for every Telegram front."""
        group = "telegram"
        try:
            await self.arq.xgroup_create(sessions.OUTBOX, group, id="0", mkstream=True)
        except Exception:
            pass  # the group exists
        consumer = f"front-{id(self)}"
        while True:
            entries = await self.arq.xreadgroup(
                group, consumer, {sessions.OUTBOX: ">"}, count=50, block=1000
            )
            for _, items in entries or []:
                for entry_id, fields in items:
                    post = orjson.loads(fields[b"data"])
                    if post.get("platform") == PLATFORM:
                        try:
                            await self.deliver(post)
                        except Exception as exc:  # one bad send must not stop the relay
                            log.warning("telegram: send failed: %s", type(exc).__name__)
                    await self.arq.xack(sessions.OUTBOX, group, entry_id)

    async def deliver(self, post: dict[str, Any]) -> None:
        bot = self.app.bot
        chat_id, kind, text, job = post["chat_id"], post["kind"], post["text"], post.get("job", "")
        if kind in ("tool", "thinking", "text"):
            progress = self.progress.setdefault(job, Progress())
            progress.lines.append(text if kind != "text" else text[:300])
            body = "\n".join(progress.lines)[-MESSAGE_LIMIT:]
            if progress.message_id is None:
                sent = await bot.send_message(chat_id, body)
                progress.message_id, progress.last_edit = sent.message_id, time.monotonic()
            elif time.monotonic() - progress.last_edit >= EDIT_INTERVAL:
                await bot.edit_message_text(body, chat_id=chat_id, message_id=progress.message_id)
                progress.last_edit = time.monotonic()
            return
        done = self.progress.pop(job) if job in self.progress else None
        if done is not None and done.message_id is not None:
            await bot.edit_message_text(
                "\n".join(done.lines)[-MESSAGE_LIMIT:],
                chat_id=chat_id,
                message_id=done.message_id,
            )
        pieces = split(text)
        if len(pieces) > 4:  # a very long answer goes as a file
            await bot.send_document(chat_id, document=text.encode(), filename="answer.md")
        else:
            for piece in pieces:
                await bot.send_message(chat_id, piece)
        if kind in ("final", "error") and job:
            await self.arq.srem(running_key(chat_id), job)  # type: ignore[misc]

    async def run(self) -> None:
        async with self.app:
            await self.app.start()
            assert self.app.updater is not None
            await self.app.updater.start_polling(drop_pending_updates=False)
            relay = asyncio.create_task(self.relay_outbox())
            try:
                await asyncio.Event().wait()
            finally:
                relay.cancel()
                await self.app.updater.stop()
                await self.app.stop()
