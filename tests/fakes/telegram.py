"""A fake Telegram Bot API: a real HTTP server that python-telegram-bot is pointed at with its
base URL setting. It hands out scripted updates through getUpdates and records every message
the bot sends or edits."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import ServedApp
from tests.fakes.telegram_rules import (
    MESSAGE_LIMIT,
    NOT_MODIFIED,
    EntityError,
    TelegramError,
    bad_request,
    check_markup,
    rendered,
)

BOT = {
    "id": 999,
    "is_bot": True,
    "first_name": "ccgate",
    "username": "ccgate_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


@dataclass
class Stored:
    """A message as Telegram keeps it: what the reader sees, and its buttons."""

    chat_id: str
    plain: str
    entities: tuple[tuple[str, int, int], ...]
    markup: Any = None


class FakeTelegram(ServedApp):
    """Refuses what Telegram refuses, with Telegram's descriptions: HTML it cannot parse, a
    text over 4096 characters or empty, an edit of a message that is not there (or not the
    bot's), an edit that changes nothing; and, when `flood` is called, 429 with
    `parameters.retry_after` — a call made before that time has passed is refused again and
    counted in `early_calls`."""

    def __init__(self, token: str) -> None:
        self.token = token
        self._updates: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self.sent: list[dict[str, Any]] = []  # accepted sends and edits, in order
        self.refused: list[tuple[str, str]] = []  # (method, description)
        self.messages: dict[tuple[str, int], Stored] = {}
        self.early_calls = 0
        self._query_ids = itertools.count(5000)
        self.files: dict[str, bytes] = {}  # file_id → content (what users sent)
        self.downloads: list[str] = []  # file_ids the bot downloaded
        self._queries: dict[str, dict[str, Any] | None] = {}  # callback query → its answer
        self._flood_next: tuple[str | None, int] | None = None
        self._flood_until = 0.0
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._call, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._download),
            ]
        )

    @property
    def url(self) -> str:
        return self.server_url + "/bot"

    # -- the test's side ---------------------------------------------------------------------
    def user_says(
        self, user_id: int, text: str, chat_id: int | None = None, message_id: int | None = None
    ) -> int:
        """Queue an update; returns its message id (repeat it to simulate a redelivery)."""
        message_id = message_id or next(self._message_ids)
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id or user_id, "type": "private"},
            "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
            "text": text,
        }
        if text.startswith("/"):
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}
            ]
        self._push({"message": message})
        return message_id

    def _push(self, update: dict[str, Any]) -> None:
        with self._lock:
            self._updates.append({"update_id": next(self._ids), **update})

    def user_sends(
        self,
        user_id: int,
        kind: str,
        data: bytes,
        *,
        file_name: str | None = None,
        caption: str | None = None,
        size: int | None = None,
    ) -> int:
        """A voice note, audio file, document or photo from `user_id` (`size` is what Telegram
        announces, the real size unless the test says otherwise); returns the message id."""
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = data
        item: dict[str, Any] = {
            "file_id": file_id,
            "file_unique_id": "u" + file_id,
            "file_size": size if size is not None else len(data),
        }
        if kind == "voice":
            item |= {"duration": 2, "mime_type": "audio/ogg"}
        elif kind in ("document", "audio"):
            item |= {"file_name": file_name or "file", "mime_type": "application/octet-stream"}
            if kind == "audio":
                item["duration"] = 2
        elif kind == "photo":
            item = [item | {"width": 90, "height": 90}]  # type: ignore[assignment]
        message_id = next(self._message_ids)
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private"},
            "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
            kind: item,
        }
        if caption:
            message["caption"] = caption
        self._push({"message": message})
        return message_id

    async def _download(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return Response(status_code=401)
        file_id = request.path_params["path"].rsplit("/", 1)[-1]
        if file_id not in self.files:
            return Response(status_code=404)
        self.downloads.append(file_id)
        return Response(self.files[file_id], media_type="application/octet-stream")

    def user_presses(self, user_id: int, chat_id: int, message_id: int, label: str) -> str:
        """A callback query: `user_id` presses the button whose text starts with `label` on a
        message of the bot's (only a button that is there can be pressed); returns its id."""
        stored = self.messages[(str(chat_id), message_id)]
        rows = (stored.markup or {}).get("inline_keyboard", [])
        data = next(b["callback_data"] for row in rows for b in row if b["text"].startswith(label))
        query_id = str(next(self._query_ids))
        self._queries[query_id] = None
        query = {
            "id": query_id,
            "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": BOT,
                "text": stored.plain,
            },
            "chat_instance": f"instance-{chat_id}",
            "data": data,
        }
        self._push({"callback_query": query})
        return query_id

    def answer(self, query_id: str) -> dict[str, Any] | None:
        """How the bot answered a callback query (None: not yet)."""
        return self._queries.get(query_id)

    def with_buttons(self, chat_id: int) -> list[int]:
        """The ids of the bot's messages in the chat that show buttons now."""
        return sorted(
            m for (c, m), stored in self.messages.items() if c == str(chat_id) and stored.markup
        )

    def flood(self, retry_after: int, method: str | None = None) -> None:
        """The next call (of `method`, or any) is refused with 429 Too Many Requests."""
        self._flood_next = (method, retry_after)

    def delete(self, chat_id: int, message_id: int) -> None:
        """The user deleted a message (the bot may still try to edit it)."""
        self.messages.pop((str(chat_id), message_id), None)

    def texts(self, chat_id: int) -> list[str]:
        return [
            s["text"] for s in self.sent if str(s.get("chat_id")) == str(chat_id) and "text" in s
        ]

    # -- the Bot API ---------------------------------------------------------------------------
    async def _params(self, request: Request) -> dict[str, Any]:
        kind = request.headers.get("content-type", "")
        raw = await request.body()
        if kind.startswith("application/json"):
            return dict(json.loads(raw or b"{}"))
        if kind.startswith("multipart/form-data"):
            # Only sendDocument uploads: keep the plain fields, note that a file came.
            params: dict[str, Any] = {"document": "<file>"}
            for part in raw.split(b"--" + kind.split("boundary=")[1].encode()):
                head, _, value = part.partition(b"\r\n\r\n")
                if b'name="' in head and b"filename=" not in head:
                    name = head.split(b'name="')[1].split(b'"')[0].decode()
                    params[name] = value.rstrip(b"\r\n-").decode(errors="replace")
            return params
        return dict(parse_qsl(raw.decode()))

    async def _call(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != self.token:
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401
            )
        method = request.path_params["method"]
        params = await self._params(request)
        try:
            if method != "getUpdates":
                self._flood_control(method)
            return JSONResponse({"ok": True, "result": await self._result(method, params)})
        except TelegramError as exc:
            self.refused.append((method, exc.description))
            return exc.response()

    def _flood_control(self, method: str) -> None:
        now = time.monotonic()
        if now < self._flood_until:
            self.early_calls += 1
            raise TelegramError(
                429,
                f"Too Many Requests: retry after {math.ceil(self._flood_until - now)}",
                math.ceil(self._flood_until - now),
            )
        if self._flood_next is not None and self._flood_next[0] in (None, method):
            retry_after = self._flood_next[1]
            self._flood_next, self._flood_until = None, now + retry_after
            raise TelegramError(429, f"Too Many Requests: retry after {retry_after}", retry_after)

    async def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT
        if method in ("deleteWebhook", "setMyCommands", "close", "logOut"):
            return True
        if method == "getUpdates":
            return await self._get_updates(params)
        if method in ("sendMessage", "editMessageText", "sendDocument"):
            return self._message(method, params)
        if method == "getFile":
            file_id = str(params.get("file_id"))
            if file_id not in self.files:
                raise bad_request("invalid file_id")
            if len(self.files[file_id]) > 20 * 1024 * 1024:  # the Bot API's download limit
                raise bad_request("file is too big")
            return {
                "file_id": file_id,
                "file_unique_id": "u" + file_id,
                "file_size": len(self.files[file_id]),
                "file_path": f"documents/{file_id}",
            }
        if method == "answerCallbackQuery":
            query_id = str(params.get("callback_query_id"))
            if query_id not in self._queries or self._queries[query_id] is not None:
                raise bad_request(
                    "query is too old and response timeout expired or query ID is invalid"
                )
            self._queries[query_id] = {
                "text": params.get("text", ""),
                "show_alert": str(params.get("show_alert", "")).lower() == "true",
            }
            return True
        raise bad_request(f"method {method} not found")

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 1.0)
        while True:
            with self._lock:
                ready = [u for u in self._updates if u["update_id"] >= offset]
            if ready or time.monotonic() >= deadline:
                return ready
            await asyncio.sleep(0.05)

    def _message(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = str(params.get("chat_id", ""))
        markup = params.get("reply_markup")
        markup = json.loads(markup) if isinstance(markup, str) else markup
        check_markup(markup)
        if method == "sendDocument":
            stored = Stored(chat_id, "", ())
        else:
            try:
                plain, entities = rendered(str(params.get("text", "")), params.get("parse_mode"))
            except EntityError as exc:
                raise bad_request(f"can't parse entities: {exc}") from None
            if not plain.strip():
                raise bad_request("message text is empty")
            if len(plain) > MESSAGE_LIMIT:
                raise bad_request("message is too long")
            stored = Stored(chat_id, plain, entities, markup)
        if method == "editMessageText":
            message_id = int(params.get("message_id") or 0)
            current = self.messages.get((chat_id, message_id))
            if current is None:
                raise bad_request("message to edit not found")
            if (current.plain, current.entities, current.markup) == (plain, entities, markup):
                raise bad_request(NOT_MODIFIED)
        else:
            message_id = next(self._message_ids)
        self.messages[(chat_id, message_id)] = stored
        self.sent.append({"method": method, **params})
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": int(chat_id or 0), "type": "private"},
            "from": BOT,
            "text": stored.plain,
        }
