"""A fake Discord: a real HTTP + WebSocket server on 127.0.0.1 that discord.py is pointed at
(the front end's DISCORD_API_BASE_URL). REST: `/users/@me`, `/gateway/bot`, sending and
editing channel messages (JSON or multipart with a file), all recorded. Gateway: HELLO,
IDENTIFY → READY, heartbeats acknowledged, and MESSAGE_CREATE events the test scripts with
`user_says` — plain JSON text frames (discord.py only decompresses binary frames)."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes.discord_objects import (
    BOT_ID,
    BOT_USER,
    GUILD_ID,
    check_components,
    component_interaction,
    new_message,
    user,
)
from tests.fakes.server import ServedApp

API = "/api/v10"


@dataclass
class Pressed:
    """An interaction the fake sent, and the bot's response to it (None: not yet)."""

    token: str
    message_id: str
    channel_id: str
    answer: dict[str, Any] | None = None


class FakeDiscord(ServedApp):
    def __init__(self, token: str) -> None:
        self.token = token
        self._ids = itertools.count(1_000_000_000_000_000_000)
        self.sent: list[dict[str, Any]] = []  # messages sent or edited by the bot, in order
        self.identified = threading.Event()
        self.intents: int | None = None
        self._events: asyncio.Queue[dict[str, Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sequence = itertools.count(1)
        self.messages: dict[str, dict[str, Any]] = {}  # the bot's messages, as they are now
        self.files: dict[str, bytes] = {}  # attachment id → content, on the fake's CDN
        self.downloads: list[str] = []
        self._interactions: dict[str, Pressed] = {}
        self.app = Starlette(
            routes=[
                Route(API + "/users/@me", self._me),
                Route(API + "/oauth2/applications/@me", self._application),
                Route(API + "/gateway/bot", self._gateway_bot),
                Route(API + "/gateway", self._gateway_bot),
                Route(API + "/channels/{channel}/messages", self._send, methods=["POST"]),
                Route(
                    API + "/channels/{channel}/messages/{message}", self._edit, methods=["PATCH"]
                ),
                Route(
                    API + "/interactions/{interaction}/{token}/callback",
                    self._interaction_callback,
                    methods=["POST"],
                ),
                Route("/attachments/{channel}/{attachment}/{name}", self._cdn),
                WebSocketRoute("/gateway", self._gateway),
            ]
        )

    @property
    def api_url(self) -> str:
        return self.server_url + API

    # -- the test's side ---------------------------------------------------------------------
    def user_says(
        self,
        user_id: str,
        text: str,
        channel_id: str | None = None,
        mention_bot: bool = False,
        attachments: dict[str, bytes] | None = None,
        voice: bool = False,
    ) -> str:
        """A MESSAGE_CREATE from `user_id`: a DM when no channel is given, else a message in
        that server channel (mentioning the bot if asked), with files (name → content) on
        the fake's CDN — a voice message when `voice`; returns its id."""
        assert self._loop is not None and self._events is not None, "the bot is not connected"
        message_id = str(next(self._ids))
        message = new_message(message_id, channel_id or f"77{user_id}", user(user_id, "u"), text)
        for name, data in (attachments or {}).items():
            attachment_id = str(next(self._ids))
            self.files[attachment_id] = data
            url = f"{self.server_url}/attachments/{message['channel_id']}/{attachment_id}/{name}"
            item = {"id": attachment_id, "filename": name, "size": len(data), "url": url}
            item |= {"proxy_url": url, "content_type": "audio/ogg" if voice else "text/plain"}
            if voice:
                item |= {"duration_secs": 2.0, "waveform": "AAAA"}
            message["attachments"].append(item)
        if voice:
            message["flags"] = 1 << 13  # IS_VOICE_MESSAGE
        if channel_id:
            message["guild_id"] = GUILD_ID
        if mention_bot:
            message["content"] = f"<@{BOT_ID}> {text}"
            message["mentions"] = [BOT_USER]
        self._loop.call_soon_threadsafe(
            self._events.put_nowait, {"t": "MESSAGE_CREATE", "d": message}
        )
        return message_id

    def user_presses(self, user_id: str, message_id: str, label: str) -> str:
        """An INTERACTION_CREATE: `user_id` presses the button whose label starts with `label`
        on a message of the bot's (only a button that is there can be pressed); returns the
        interaction's id."""
        assert self._loop is not None and self._events is not None, "the bot is not connected"
        message = self.messages[message_id]
        buttons = [c for row in message["components"] for c in row["components"]]
        custom_id = next(b["custom_id"] for b in buttons if b["label"].startswith(label))
        interaction_id, token = str(next(self._ids)), f"token-{next(self._ids)}"
        channel_id = message["channel_id"]
        self._interactions[interaction_id] = Pressed(token, message_id, channel_id)
        interaction = component_interaction(interaction_id, token, user_id, custom_id, message)
        self._loop.call_soon_threadsafe(
            self._events.put_nowait, {"t": "INTERACTION_CREATE", "d": interaction}
        )
        return interaction_id

    def answer(self, interaction_id: str) -> dict[str, Any] | None:
        """How the bot answered an interaction (None: not yet)."""
        return self._interactions[interaction_id].answer

    def with_buttons(self, channel_id: str) -> list[str]:
        """The bot's messages in the channel that show buttons now."""
        return sorted(
            (
                m["id"]
                for m in self.messages.values()
                if m["channel_id"] == channel_id and m["components"]
            ),
            key=int,
        )

    def texts(self, channel_id: str) -> list[str]:
        return [s["content"] for s in self.sent if s["channel_id"] == channel_id and s["content"]]

    # -- REST ----------------------------------------------------------------------------------
    async def _cdn(self, request: Request) -> Response:
        attachment = request.path_params["attachment"]
        if attachment not in self.files:
            return Response(status_code=404)
        self.downloads.append(attachment)
        return Response(self.files[attachment], media_type="application/octet-stream")

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bot {self.token}"

    @staticmethod
    def _unauthorized() -> JSONResponse:
        return JSONResponse({"message": "401: Unauthorized", "code": 0}, status_code=401)

    async def _me(self, request: Request) -> JSONResponse:
        return JSONResponse(BOT_USER) if self._authorized(request) else self._unauthorized()

    async def _application(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return self._unauthorized()
        app = {
            "id": BOT_ID,
            "name": "ccgate",
            "description": "",
            "icon": None,
            "bot_public": False,
            "bot_require_code_grant": False,
            "owner": user("900000000000000002", "owner"),
            "verify_key": "0" * 64,
            "flags": 1 << 19,  # the message content intent, granted
        }
        return JSONResponse(app)

    async def _gateway_bot(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return self._unauthorized()
        url = str(request.base_url).replace("http://", "ws://").rstrip("/") + "/gateway"
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return JSONResponse({"url": url, "shards": 1, "session_start_limit": limit})

    async def _payload(self, request: Request) -> tuple[dict[str, Any], str | None]:
        kind, raw = request.headers.get("content-type", ""), await request.body()
        if not kind.startswith("multipart/form-data"):
            return json.loads(raw or b"{}"), None
        payload: dict[str, Any] = {}
        filename = None
        for part in raw.split(b"--" + kind.split("boundary=")[1].strip('"').encode()):
            head, _, value = part.partition(b"\r\n\r\n")
            if b'name="payload_json"' in head:
                payload = json.loads(value.rstrip(b"\r\n-"))
            elif b"filename=" in head:
                filename = head.split(b'filename="')[1].split(b'"')[0].decode()
        return payload, filename

    async def _send(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return self._unauthorized()
        payload, filename = await self._payload(request)
        channel, message_id = request.path_params["channel"], str(next(self._ids))
        content = payload.get("content") or ""
        if error := check_components(payload.get("components")):
            return error
        self.sent.append(
            {"op": "send", "channel_id": channel, "content": content, "file": filename}
        )
        message = new_message(message_id, channel, BOT_USER, content)
        message["components"] = payload.get("components") or []
        self.messages[message_id] = message
        return JSONResponse(message)

    async def _edit(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return self._unauthorized()
        payload, _ = await self._payload(request)
        channel, message_id = request.path_params["channel"], request.path_params["message"]
        message = self.messages.get(message_id)
        if message is None or message["channel_id"] != channel:
            return JSONResponse({"message": "Unknown Message", "code": 10008}, status_code=404)
        self._update(message, payload)
        self.sent.append(
            {
                "op": "edit",
                "channel_id": channel,
                "content": message["content"],
                "message_id": message_id,
            }
        )
        return JSONResponse(message)

    @staticmethod
    def _update(message: dict[str, Any], payload: dict[str, Any]) -> None:
        """A PATCH changes only the fields it names."""
        if "content" in payload:
            message["content"] = payload["content"] or ""
        if "components" in payload:
            message["components"] = payload["components"] or []
        message["edited_timestamp"] = datetime.now(UTC).isoformat()

    async def _interaction_callback(self, request: Request) -> JSONResponse:
        """Discord's interaction response: once per interaction, with its token (no bot
        authorization needed). 4: a new message (flags 64: seen by the presser alone), 6: a
        deferred update, 7: the button's message updated in place."""
        interaction_id, token = request.path_params["interaction"], request.path_params["token"]
        pressed = self._interactions.get(interaction_id)
        if pressed is None or pressed.token != token:
            return JSONResponse({"message": "Unknown interaction", "code": 10062}, status_code=404)
        if pressed.answer is not None:
            return JSONResponse(
                {"message": "Interaction has already been acknowledged.", "code": 40060},
                status_code=400,
            )
        payload, _ = await self._payload(request)
        kind, data = payload.get("type"), payload.get("data") or {}
        if kind not in (4, 5, 6, 7) or check_components(data.get("components")):
            return JSONResponse({"message": "Invalid Form Body", "code": 50035}, status_code=400)
        pressed.answer = {"type": kind, **data}
        if kind in (6, 7):
            message = self.messages[pressed.message_id]
            self._update(message, data)
            self.sent.append(
                {
                    "op": "edit",
                    "channel_id": message["channel_id"],
                    "content": message["content"],
                    "message_id": message["id"],
                }
            )
        else:
            content = data.get("content") or ""
            message = new_message(str(next(self._ids)), pressed.channel_id, BOT_USER, content)
            message["flags"] = int(data.get("flags") or 0)
        body = {
            "interaction": {
                "id": interaction_id,
                "type": 3,
                "response_message_id": message["id"],
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(int(data.get("flags") or 0) & 64),
            },
            "resource": {"type": kind, "message": message},
        }
        return JSONResponse(body)

    # -- the gateway ---------------------------------------------------------------------------
    async def _gateway(self, ws: WebSocket) -> None:
        await ws.accept()
        self._loop = asyncio.get_running_loop()
        self._events = asyncio.Queue()
        await ws.send_text(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        reader = asyncio.create_task(self._read(ws))
        try:
            while True:
                event = await self._events.get()
                await self._dispatch(ws, event["t"], event["d"])
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            reader.cancel()

    async def _dispatch(self, ws: WebSocket, name: str, data: dict[str, Any]) -> None:
        frame = {"op": 0, "t": name, "s": next(self._sequence), "d": data}
        await ws.send_text(json.dumps(frame))

    async def _read(self, ws: WebSocket) -> None:
        while True:
            frame = json.loads(await ws.receive_text())
            if frame["op"] == 1:  # heartbeat
                await ws.send_text(json.dumps({"op": 11}))
            elif frame["op"] == 2:  # identify
                if frame["d"].get("token") != self.token:
                    await ws.close(4004)
                    return
                self.intents = frame["d"].get("intents")
                ready = {
                    "v": 10,
                    "user": BOT_USER,
                    "guilds": [],
                    "session_id": "fake-session",
                    "resume_gateway_url": str(ws.url).split("?")[0],
                    "application": {"id": BOT_ID, "flags": 0},
                }
                await self._dispatch(ws, "READY", ready)
                self.identified.set()
