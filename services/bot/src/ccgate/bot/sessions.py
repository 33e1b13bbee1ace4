"""Chat → Claude Code session, project and model, kept in Redis so they survive restarts of
the bot and the worker; and the outbox the worker writes progress to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

OUTBOX = "ccgate:bot:outbox"
OUTBOX_MAXLEN = 10_000


def chat_key(platform: str, chat_id: str) -> str:
    return f"ccgate:bot:chat:{platform}:{chat_id}"


@dataclass
class ChatState:
    session_id: str | None = None
    project: str | None = None
    model: str | None = None


async def load(redis: Any, platform: str, chat_id: str) -> ChatState:
    raw = await redis.hgetall(chat_key(platform, chat_id))
    data = {k.decode(): v.decode() for k, v in raw.items()}
    return ChatState(
        data.get("session_id") or None, data.get("project") or None, data.get("model") or None
    )


async def update(redis: Any, platform: str, chat_id: str, **fields: str | None) -> None:
    key = chat_key(platform, chat_id)
    present = {k: v for k, v in fields.items() if v}
    missing = [k for k, v in fields.items() if not v]
    if present:
        await redis.hset(key, mapping=present)
    if missing:
        await redis.hdel(key, *missing)


async def post(
    redis: Any, platform: str, chat_id: str, kind: str, text: str, job: str = "", **extra: str
) -> None:
    """A line of progress for the front end to send (it owns the platform connection)."""
    payload = {
        "platform": platform,
        "chat_id": chat_id,
        "kind": kind,
        "text": text,
        "job": job,
        **extra,
    }
    await redis.xadd(
        OUTBOX, {"data": orjson.dumps(payload)}, maxlen=OUTBOX_MAXLEN, approximate=True
    )
