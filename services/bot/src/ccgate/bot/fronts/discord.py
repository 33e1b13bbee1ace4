"""The Discord front end (discord.py over the gateway): messages from allowed users go to the
shared core — every DM; in a server, messages that mention the bot or are posted in one of
DISCORD_CHANNELS. A channel or thread is one chat. Commands are plain messages starting with
`/` or `!` (no slash-command registration needed).
With no ALLOWED_DISCORD_USER_ID it refuses to start."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import discord
import yarl
from arq import ArqRedis
from discord.gateway import DiscordWebSocket
from discord.http import Route

from ccgate.bot.fronts.approval_desk import Press
from ccgate.bot.fronts.core import ChatCore, ConfigurationError, Incoming, allowed_users
from ccgate.bot.fronts.media import FILE, VOICE, Media
from ccgate.shared.settings import Settings

DEFAULT_API = "https://discord.com/api/v10"


class DiscordPlatform:
    name = "discord"
    message_limit = 2000
    edit_interval = 1.2  # Discord allows 5 edits per 5 s per channel
    command_prefixes: tuple[str, ...] = ("/", "!")

    def __init__(self, client: discord.Client) -> None:
        self._client = client

    def _channel(self, chat_id: str) -> discord.PartialMessageable:
        return self._client.get_partial_messageable(int(chat_id))

    async def send(self, chat_id: str, text: str) -> str:
        return str((await self._channel(chat_id).send(text)).id)

    async def edit(self, chat_id: str, message_id: str, text: str) -> None:
        await self._channel(chat_id).get_partial_message(int(message_id)).edit(content=text)

    async def send_file(self, chat_id: str, filename: str, data: bytes) -> None:
        await self._channel(chat_id).send(file=discord.File(io.BytesIO(data), filename=filename))

    async def send_buttons(self, chat_id: str, text: str, buttons: list[tuple[str, str]]) -> str:
        view = discord.ui.View(timeout=None)
        for label, data in buttons:
            style = (
                discord.ButtonStyle.danger
                if ":deny" in data or ":why" in data
                else (discord.ButtonStyle.success)
            )
            view.add_item(discord.ui.Button(label=label[:80], custom_id=data, style=style))
        # The presses are read in DiscordFront.on_interaction (any replica, after a restart
        # too), not by this view: stopped, discord.py keeps no listener for it.
        view.stop()
        return str((await self._channel(chat_id).send(text, view=view)).id)

    async def close(self, chat_id: str, message_id: str, text: str) -> None:
        message = self._channel(chat_id).get_partial_message(int(message_id))
        await message.edit(content=text, view=None)

    def collapsed(self, text: str) -> str:
        return f"||{text.replace('|', '¦')}||"  # a spoiler: hidden until clicked


class DiscordFront:
    def __init__(self, settings: Settings, arq: ArqRedis) -> None:
        allowed = allowed_users(settings.allowed_discord_user_id, "ALLOWED_DISCORD_USER_ID")
        if settings.discord_bot_token is None:
            raise ConfigurationError("DISCORD_BOT_TOKEN is not set")
        self._token = settings.discord_bot_token
        self._api = settings.discord_api_base_url.rstrip("/")
        self.channels = {c.strip() for c in settings.discord_channels.split(",") if c.strip()}
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = True
        intents.message_content = True  # privileged: enable it in the developer portal
        self.client = discord.Client(intents=intents)
        self.core = ChatCore(settings, arq, DiscordPlatform(self.client), allowed)
        self.client.event(self.on_message)
        self.client.event(self.on_interaction)

    async def on_message(self, message: discord.Message) -> None:
        me = self.client.user
        if message.author.bot or me is None or message.author.id == me.id:
            return
        text = message.content
        if not isinstance(message.channel, discord.DMChannel):
            # In a server, people talk to each other too: a message is for the bot when it
            # mentions the bot, or in the channels set aside for it.
            mention = f"<@{me.id}>"
            if me.id in message.raw_mentions:
                text = text.replace(mention, "").replace(f"<@!{me.id}>", "").strip()
            elif not {str(message.channel.id), str(getattr(message.channel, "parent_id", ""))} & (
                self.channels
            ):
                return  # (a thread counts as its parent channel)
        media = tuple(
            Media(
                VOICE
                if a.is_voice_message() or (a.content_type or "").startswith("audio/")
                else FILE,
                a.filename,
                a.content_type or "application/octet-stream",
                a.size,
                a.read,
            )
            for a in message.attachments
        )
        await self.core.handle(
            Incoming(str(message.channel.id), str(message.author.id), str(message.id), text, media)
        )

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is not discord.InteractionType.component or interaction.message is None:
            return
        raw: dict[str, Any] = dict(interaction.data or {})
        data = str(raw.get("custom_id", ""))
        chat_id, message_id = str(interaction.channel_id), str(interaction.message.id)
        reply = await self.core.desk.press(
            Press(chat_id, str(interaction.user.id), message_id, data)
        )
        # An interaction is answered once: the message updated in place, or a note for the
        # presser alone.
        if reply.settled is not None:
            await interaction.response.edit_message(content=reply.settled, view=None)
        else:
            await interaction.response.send_message(reply.notice, ephemeral=True)
        if reply.say is not None:
            await self.core.platform.send(chat_id, reply.say)

    async def run(self) -> None:
        if self._api != DEFAULT_API:
            # discord.py keeps its endpoints in class attributes; another API (a proxy, the
            # tests' fake server) is set there, and its gateway asked for, as Discord's is.
            Route.BASE = self._api
        async with self.client:
            await self.client.login(self._token.get_secret_value())
            if self._api != DEFAULT_API:
                _, url, _ = await self.client.http.get_bot_gateway()
                DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
            relay = asyncio.create_task(self.core.relay_outbox())
            try:
                await self.client.connect()
            finally:
                relay.cancel()
