"""What every chat front end does, whatever the platform: the allowlist, the commands, turning
a message into a job, and sending the workers' progress back with throttled edits.

A platform (Telegram, Discord) only says how to send, edit and upload, and its limits. The
front end never runs Claude Code itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from arq import ArqRedis
from opentelemetry import propagate, trace
from redis.exceptions import RedisError, ResponseError

from ccgate.bot import approvals, queue, sessions
from ccgate.bot.fronts.approval_desk import ApprovalDesk
from ccgate.bot.fronts.edge_views import limiter_line, usage_text
from ccgate.bot.fronts.markdown import FENCE_ROOM, balanced
from ccgate.bot.fronts.media import Media, MediaDesk
from ccgate.bot.workspace import WorkspaceError, list_projects, project_dir, user_root
from ccgate.shared.settings import Settings

log = logging.getLogger("ccgate.bot")
tracer = trace.get_tracer("ccgate.bot")

TIERS = ("opus", "sonnet", "haiku")
MAX_PIECES = 4  # a longer answer goes as a file
HELP = (
    "Send me a task and I run it with Claude Code in your workspace.\n"
    "/new starts a fresh session · /stop cancels · /status shows what runs · "
    "/model opus|sonnet|haiku · /project [name] lists or picks a project · /usage shows "
    "your requests and tokens"
)


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


def split(text: str, limit: int) -> list[str]:
    """Split at line breaks where possible, never over `limit` characters a piece."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut if cut > limit // 2 else limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    return [*pieces, text] if text else pieces


class Platform(Protocol):
    """How to talk to one chat platform."""

    name: str
    message_limit: int
    edit_interval: float  # seconds between edits of one message (the platform's rate limits)
    command_prefixes: tuple[str, ...]

    async def send(self, chat_id: str, text: str) -> str: ...

    async def edit(self, chat_id: str, message_id: str, text: str) -> None: ...

    async def send_file(self, chat_id: str, filename: str, data: bytes) -> None: ...

    async def send_buttons(self, chat_id: str, text: str, buttons: list[tuple[str, str]]) -> str:
        """Send `text` with buttons, (label, data) each, one per row; returns the message id."""
        ...

    async def close(self, chat_id: str, message_id: str, text: str) -> None:
        """Edit a message with buttons to `text`, the buttons gone."""
        ...

    def collapsed(self, text: str) -> str:
        """`text` (Markdown) as a note the reader opens if they want (the model's thinking)."""
        ...


@dataclass(frozen=True)
class Incoming:
    chat_id: str
    user_id: str
    message_id: str
    text: str
    media: tuple[Media, ...] = ()  # voice notes and files, not fetched yet
    files: tuple[str, ...] = ()  # saved, relative to the project


def interim(text: str) -> str:
    """How the model's text between tool calls shows in the progress message."""
    return "💬 " + text[:300]


@dataclass
class Progress:
    message_id: str | None = None
    lines: list[str] = field(default_factory=list)
    last_edit: float = 0.0

    def text(self, limit: int) -> str:
        return "\n".join(self.lines)[-limit:]


class ChatCore:
    def __init__(
        self, settings: Settings, arq: ArqRedis, platform: Platform, allowed: set[str]
    ) -> None:
        self.settings = settings
        self.arq = arq
        self.platform = platform
        self.allowed = allowed
        self.progress: dict[str, Progress] = {}
        self.desk = ApprovalDesk(arq, platform.name, allowed, settings.bot_approval_timeout)
        self.media = MediaDesk(settings, arq, platform.name, platform.send)

    # -- incoming ----------------------------------------------------------------------------
    async def handle(self, message: Incoming) -> None:
        if message.user_id not in self.allowed:
            # Logged without its content: who tried, not what they wrote.
            log.warning("%s: refused a message from user %s", self.platform.name, message.user_id)
            await self.platform.send(message.chat_id, "Sorry, you are not allowed to use this bot.")
            return
        if message.media:  # fetched only now: a stranger's file is never downloaded
            taken = await self.media.take(message)
            if taken is None:
                return
            message = taken
        text = message.text.strip()
        reply: str | None
        if not text.startswith(self.platform.command_prefixes) and (
            denied := await self.desk.reason(message.chat_id, message.user_id, text)
        ):
            await self._close(message.chat_id, *denied)
            reply = "Denied; Claude Code has your reason."
        elif text.startswith(self.platform.command_prefixes):
            word, _, rest = text[1:].partition(" ")
            name = word.split("@", 1)[0].lower()  # Telegram groups: /status@our_bot
            reply = await self.command(name, rest.split(), message)
        else:
            reply = await self.submit(message)
        if reply:
            await self.platform.send(message.chat_id, reply)

    async def submit(self, message: Incoming) -> str | None:
        with tracer.start_as_current_span(
            "chat message",
            attributes={
                "ccgate.chat_platform": self.platform.name,
                "ccgate.chat_user": f"{self.platform.name}:{message.user_id}",
            },
        ):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            request = {
                "platform": self.platform.name,
                "chat_id": message.chat_id,
                "user_id": message.user_id,
                "text": await self.media.prompt(message),
                "message_id": message.message_id,
                **({"traceparent": carrier["traceparent"]} if "traceparent" in carrier else {}),
            }
            outcome = await queue.enqueue(
                self.arq,
                request,
                f"{self.platform.name}:{message.chat_id}:{message.message_id}",
                self.settings.bot_user_queue_cap,
                int(self.settings.bot_job_timeout) + 600,
            )
        if isinstance(outcome, queue.Duplicate):
            return None  # a redelivered message: it runs once
        if isinstance(outcome, queue.Refused):
            return (
                f"You already have {outcome.in_flight} request(s) queued or running; /stop first."
            )
        return "Queued." if outcome.ahead_of_yours else "Working on it…"

    async def command(self, name: str, args: list[str], message: Incoming) -> str:
        chat, platform = message.chat_id, self.platform.name
        if name in ("start", "help"):
            return HELP
        if name == "new":
            await sessions.update(self.arq, platform, chat, session_id=None)
            await approvals.forget_session_rules(self.arq, platform, chat)
            return "Fresh session: the next message starts over."
        if name == "stop":
            for request, settled in await self.desk.deny_waiting(chat):
                await self._close(chat, request, settled)
            stopped = await queue.abort_chat_jobs(self.arq, platform, chat)
            return "Stopped." if stopped else "Nothing was running."
        if name == "status":
            return await self.status(message)
        if name == "model":
            choice = args[0].lower() if args else ""
            if choice not in TIERS:
                return "Use /model opus, /model sonnet or /model haiku."
            await sessions.update(self.arq, platform, chat, model=choice)
            return f"Model tier: {choice}."
        if name == "project":
            return await self.project(args, message)
        if name == "usage":
            return await usage_text(self.settings, f"{platform}:{message.user_id}")
        return f"Unknown command /{name}. {HELP}"

    async def project(self, args: list[str], message: Incoming) -> str:
        try:
            root = user_root(self.settings.claude_workspace, self.platform.name, message.user_id)
            if not args:
                state = await sessions.load(self.arq, self.platform.name, message.chat_id)
                current = state.project or "default"
                names = list_projects(root) or ["default"]
                listed = ", ".join(f"{n} (current)" if n == current else n for n in names)
                return f"Projects: {listed}. /project NAME picks one (or creates it)."
            project_dir(root, args[0])
        except WorkspaceError as exc:
            return str(exc)
        await sessions.update(
            self.arq, self.platform.name, message.chat_id, project=args[0], session_id=None
        )
        await approvals.forget_session_rules(self.arq, self.platform.name, message.chat_id)
        return f"Project: {args[0]} (a fresh session starts there)."

    async def status(self, message: Incoming) -> str:
        state = await sessions.load(self.arq, self.platform.name, message.chat_id)
        root = user_root(self.settings.claude_workspace, self.platform.name, message.user_id)
        lines = [
            f"session: {state.session_id or '(new)'}",
            f"project: {state.project or 'default'} ({root.name}/{state.project or 'default'})",
            f"model: {state.model or 'default'}",
            *(await queue.describe_chat_jobs(self.arq, self.platform.name, message.chat_id)),
            f"jobs waiting across all chats: {await queue.waiting_total(self.arq)}",
            await limiter_line(self.settings),
        ]
        return "\n".join(lines)

    # -- the workers' progress ---------------------------------------------------------------
    async def relay_outbox(self) -> None:
        """Send what the workers post for this platform; one consumer group per platform, so
        several front end replicas share the work and each post is sent once. Redis going away
        pauses the relay; it goes on where it stopped when Redis is back."""
        group, consumer = self.platform.name, f"front-{id(self)}"
        while True:
            try:
                await self._ensure_group(group)
                while True:
                    await self._relay_batch(group, consumer)
            except (RedisError, OSError) as exc:
                log.warning("%s: outbox unreachable (%s); retrying", group, type(exc).__name__)
                await asyncio.sleep(1.0)

    async def _ensure_group(self, group: str) -> None:
        try:
            await self.arq.xgroup_create(sessions.OUTBOX, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _relay_batch(self, group: str, consumer: str) -> None:
        entries = await self.arq.xreadgroup(
            group, consumer, {sessions.OUTBOX: ">"}, count=50, block=1000
        )
        for _, items in entries or []:
            for entry_id, fields in items:
                post = orjson.loads(fields[b"data"])
                if post.get("platform") == self.platform.name:
                    try:
                        await self.deliver(post)
                    except Exception as exc:  # one bad send must not stop the relay
                        log.warning("%s: send failed: %s", group, type(exc).__name__)
                await self.arq.xack(sessions.OUTBOX, group, entry_id)

    async def _close(self, chat_id: str, request: approvals.Request, text: str) -> None:
        if request.message_id:
            await self.platform.close(chat_id, request.message_id, text)

    async def _approval(self, post: dict[str, Any]) -> None:
        request = await approvals.load(self.arq, post.get("approval", ""))
        if request is None:
            return
        if post["kind"] == "approval_closed":
            await self._close(post["chat_id"], request, f"{request.text()}\n\n{post['text']}")
            return
        message_id = await self.platform.send_buttons(
            post["chat_id"],
            post["text"],
            request.buttons(),
        )
        await approvals.note_message(self.arq, request.id, message_id)

    async def deliver(self, post: dict[str, Any]) -> None:
        platform, limit = self.platform, self.platform.message_limit
        chat_id, kind, text, job = post["chat_id"], post["kind"], post["text"], post.get("job", "")
        if kind in ("approval", "approval_closed"):
            await self._approval(post)
            return
        if kind in ("tool", "thinking", "text"):
            progress = self.progress.setdefault(job, Progress())
            if kind == "thinking":
                text = platform.collapsed(text)
            elif kind == "text":
                text = interim(text)
            progress.lines.append(text)
            body = progress.text(limit)
            if progress.message_id is None:
                if kind == "text":
                    return  # held: a run that only answers shows its answer, not a copy of it
                progress.message_id = await platform.send(chat_id, body)
                progress.last_edit = time.monotonic()
            elif time.monotonic() - progress.last_edit >= platform.edit_interval:
                await platform.edit(chat_id, progress.message_id, body)
                progress.last_edit = time.monotonic()
            return
        done = self.progress.pop(job, None)
        if done is not None and done.message_id is not None:
            if kind == "final" and done.lines[-1:] == [interim(text)]:
                done.lines.pop()  # the answer comes next, in full: not twice
            try:
                await platform.edit(chat_id, done.message_id, done.text(limit) or "✅")
            except Exception as exc:  # the progress note is lost (deleted, refused): not the answer
                log.warning("%s: progress edit failed: %s", platform.name, type(exc).__name__)
        pieces = balanced(split(text, limit - FENCE_ROOM))
        if len(pieces) > MAX_PIECES:
            await platform.send_file(chat_id, "answer.md", text.encode())
        else:
            for piece in pieces:
                await platform.send(chat_id, piece)
