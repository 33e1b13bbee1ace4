"""A fake Telegram Bot API: a real HTTP server that python-telegram-bot is pointed at with its
base URL setting. It hands out scripted updates through getUpdates and records every message
the bot sends or edits."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.server import ServedApp

BOT = {
    "id": 999,
    "is_bot": True,
    "first_name": "ccgate",
    "username": "ccgate_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "code",
    "pre",
    "a",
    "blockquote",
}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.bad = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.bad = self.bad or tag not in TAGS
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self.bad = self.bad or not self.stack or self.stack.pop() != tag


def _valid_html(text: str) -> bool:
    """Telegram's rule for parse_mode=HTML: its tags only, closed in order; a bare `<` or `&`
    that is not an entity is an error too."""
    if re.search(r"<(?![a-zA-Z/])|&(?!(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)", text):
        return False
    parser = _Tags()
    parser.feed(text)
    parser.close()
    return not parser.bad and not parser.stack


class FakeTelegram(ServedApp):
    def __init__(self, token: str) -> None:
        self.token = token
        self._updates: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self.sent: list[
            dict[str, Any]
        ] = []  # sendMessage / editMessageText / sendDocument, in order
        self.app = Starlette(
            routes=[Route("/bot{token}/{method}", self._call, methods=["GET", "POST"])]
        )

    @property
    def url(self) -> str:
        return self.server_url + "/bot"

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
        with self._lock:
            self._updates.append({"update_id": next(self._ids), "message": message})
        return message_id

    def texts(self, chat_id: int) -> list[str]:
        return [
            s["text"] for s in self.sent if str(s.get("chat_id")) == str(chat_id) and "text" in s
        ]

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
        if method == "getMe":
            return JSONResponse({"ok": True, "result": BOT})
        if method in ("deleteWebhook", "setMyCommands", "close", "logOut"):
            return JSONResponse({"ok": True, "result": True})
        if method == "getUpdates":
            offset = int(params.get("offset") or 0)
            deadline = time.monotonic() + min(float(params.get("timeout") or 0), 1.0)
            while True:
                with self._lock:
                    ready = [u for u in self._updates if u["update_id"] >= offset]
                if ready or time.monotonic() >= deadline:
                    return JSONResponse({"ok": True, "result": ready})
                await asyncio.sleep(0.05)
        if method in ("sendMessage", "editMessageText", "sendDocument"):
            if params.get("parse_mode") == "HTML" and not _valid_html(str(params.get("text", ""))):
                return JSONResponse(  # what Telegram answers to HTML it cannot parse
                    {
                        "ok": False,
                        "error_code": 400,
                        "description": "Bad Request: can't parse entities",
                    },
                    status_code=400,
                )
            record = {"method": method, **params}
            if "text" in params and isinstance(params["text"], str):
                record["text"] = params["text"]
            self.sent.append(record)
            message_id = int(params.get("message_id") or next(self._message_ids))
            result = {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": int(params.get("chat_id", 0)), "type": "private"},
                "from": BOT,
                "text": params.get("text", ""),
            }
            return JSONResponse({"ok": True, "result": result})
        return JSONResponse(
            {"ok": False, "error_code": 400, "description": f"unknown method {method}"},
            status_code=400,
        )
