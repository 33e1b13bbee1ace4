"""The Telegram front end (python-telegram-bot, long polling): updates from allowed users go to
the shared core; the core's replies and the workers' progress are sent with the Bot API.
With no ALLOWED_TELEGRAM_USER_ID it refuses to start."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from arq import ArqRedis
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from ccgate.bot.fronts.approval_desk import Press
from ccgate.bot.fronts.core import ChatCore, ConfigurationError, Incoming, allowed_users
from ccgate.bot.fronts.markdown import telegram_html
from ccgate.bot.fronts.media import FILE, VOICE, Media
from ccgate.shared.settings import Settings


def unparsable(exc: BadRequest) -> bool:
    return "can't parse entities" in exc.message


class TelegramPlatform:
    name = "telegram"
    message_limit = 4096
    edit_interval = 1.5  # Telegram's flood limits allow about one edit a second per chat
    command_prefixes: tuple[str, ...] = ("/",)

    def __init__(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        self._bot = app.bot

    async def send(
        self, chat_id: str, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> str:
        try:
            sent = await self._bot.send_message(
                chat_id, telegram_html(text), parse_mode="HTML", reply_markup=markup
            )
        except BadRequest as exc:  # Telegram could not parse our HTML: the text as it is, then
            if not unparsable(exc):
                raise
            sent = await self._bot.send_message(chat_id, text, reply_markup=markup)
        return str(sent.message_id)

    async def send_buttons(self, chat_id: str, text: str, buttons: list[tuple[str, str]]) -> str:
        rows = [[InlineKeyboardButton(label, callback_data=data)] for label, data in buttons]
        return await self.send(chat_id, text, InlineKeyboardMarkup(rows))

    async def close(self, chat_id: str, message_id: str, text: str) -> None:
        await self.edit(
            chat_id, message_id, text
        )  # an edit without reply_markup drops the keyboard

    async def edit(self, chat_id: str, message_id: str, text: str) -> None:
        try:
            try:
                await self._bot.edit_message_text(
                    telegram_html(text),
                    chat_id=chat_id,
                    message_id=int(message_id),
                    parse_mode="HTML",
                )
            except BadRequest as exc:
                if not unparsable(exc):
                    raise
                await self._bot.edit_message_text(text, chat_id=chat_id, message_id=int(message_id))
        except BadRequest as exc:
            # Telegram refuses an edit that changes nothing; the message already says it.
            if "message is not modified" not in exc.message:
                raise

    def collapsed(self, text: str) -> str:
        # A Markdown quote: telegram_html makes it an expandable blockquote.
        return "\n".join("> " + line for line in text.splitlines() or [""])

    async def send_file(self, chat_id: str, filename: str, data: bytes) -> None:
        await self._bot.send_document(chat_id, document=data, filename=filename)


def _media(message: Message) -> list[Media]:
    """What the message carries besides text; downloaded only when the core asks."""
    found: list[tuple[str, Any, str, str]] = []  # kind, Telegram file, name, mime
    if message.voice:
        found.append((VOICE, message.voice, "voice.ogg", message.voice.mime_type or "audio/ogg"))
    if message.audio:
        audio = message.audio
        found.append((VOICE, audio, audio.file_name or "audio", audio.mime_type or "audio/mpeg"))
    if message.document:
        document = message.document
        name = document.file_name or "file"
        found.append((FILE, document, name, document.mime_type or "application/octet-stream"))
    if message.photo:  # the sizes of one photo: the largest
        photo = message.photo[-1]
        found.append((FILE, photo, f"photo-{message.message_id}.jpg", "image/jpeg"))

    def fetcher(item: Any) -> Callable[[], Awaitable[bytes]]:
        async def fetch() -> bytes:
            return bytes(await (await item.get_file()).download_as_bytearray())

        return fetch

    return [
        Media(kind, name, mime, item.file_size, fetcher(item)) for kind, item, name, mime in found
    ]


class TelegramFront:
    def __init__(self, settings: Settings, arq: ArqRedis) -> None:
        allowed = allowed_users(settings.allowed_telegram_user_id, "ALLOWED_TELEGRAM_USER_ID")
        if settings.telegram_bot_token is None:
            raise ConfigurationError("TELEGRAM_BOT_TOKEN is not set")
        base = settings.telegram_api_base_url.rstrip("/")
        self.app = (
            Application.builder()
            .token(settings.telegram_bot_token.get_secret_value())
            .base_url(base if base.endswith("/bot") else base + "/bot")
            .base_file_url((base[:-4] if base.endswith("/bot") else base) + "/file/bot")
            # Telegram's flood limits kept, and a 429's retry_after waited out before the call
            # is made again (up to 3 times).
            .rate_limiter(AIORateLimiter(max_retries=3))
            .build()
        )
        self.core = ChatCore(settings, arq, TelegramPlatform(self.app), allowed)
        self.app.add_handler(
            MessageHandler(
                filters.TEXT | filters.VOICE | filters.AUDIO | filters.Document.ALL | filters.PHOTO,
                self._on_message,
            )
        )
        self.app.add_handler(CallbackQueryHandler(self._on_press))

    async def _on_message(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        chat, message, user = update.effective_chat, update.effective_message, update.effective_user
        if chat is None or message is None or user is None:
            return
        text = message.text or message.caption or ""
        media = tuple(_media(message))
        await self.core.handle(
            Incoming(str(chat.id), str(user.id), str(message.message_id), text, media)
        )

    async def _on_press(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or query.message is None:
            return
        chat_id, message_id = str(query.message.chat.id), str(query.message.message_id)
        reply = await self.core.desk.press(
            Press(chat_id, str(query.from_user.id), message_id, query.data or "")
        )
        # Every callback query is answered (the button stops spinning); a refusal as an alert.
        await query.answer(reply.notice, show_alert=reply.settled is None and reply.say is None)
        if reply.settled is not None:
            await self.core.platform.close(chat_id, message_id, reply.settled)
        if reply.say is not None:
            await self.core.platform.send(chat_id, reply.say)

    async def run(self) -> None:
        async with self.app:
            await self.app.start()
            assert self.app.updater is not None
            await self.app.updater.start_polling(drop_pending_updates=False)
            relay = asyncio.create_task(self.core.relay_outbox())
            try:
                await asyncio.Event().wait()
            finally:
                relay.cancel()
                await self.app.updater.stop()
                await self.app.stop()
