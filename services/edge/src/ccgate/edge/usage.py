"""What each key used: per key, provider, model and UTC day — requests, input and output tokens,
errors and seconds queued; for a key that fans out per chat user (a bot's), per chat user too
(recorded under `<key>@<chat user>`; the key's daily tokens count them all). In Redis (`ccgate:usage:<day>`, kept 400 days) when REDIS_URL is
set; otherwise in memory, which resets when the edge restarts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from ccgate.shared.days import utc_day

METRICS = ("requests", "input_tokens", "output_tokens", "errors", "queued_seconds")
RETENTION_SECONDS = 400 * 86400


def split_key(usage_key: str) -> tuple[str, str]:
    """(key, chat user) of a usage key; the chat user is "" for a plain key."""
    key, _, chat_user = usage_key.partition("@")
    return key, chat_user


@dataclass
class UsageRow:
    day: str
    key: str
    provider: str
    model: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    errors: int = 0
    queued_seconds: float = 0.0
    chat_user: str = ""

    @classmethod
    def of(cls, day: str, usage_key: str, provider: str, model: str) -> UsageRow:
        key, chat_user = split_key(usage_key)
        return cls(day, key, provider, model, chat_user=chat_user)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Usage:
    key: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    error: bool
    queued: float


class UsageStore(Protocol):
    persistent: bool

    async def record(self, usage: Usage) -> None: ...

    async def tokens_today(self, key: str) -> int: ...

    async def rows(self, key: str | None, since: date) -> list[UsageRow]: ...


def _days(since: date) -> list[str]:
    end = datetime.now(UTC).date()
    count = max(0, (end - since).days)
    return [(since + timedelta(days=i)).isoformat() for i in range(count + 1)]


def _increments(usage: Usage) -> dict[str, float]:
    return {
        "requests": 1,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "errors": 1 if usage.error else 0,
        "queued_seconds": round(usage.queued, 3),
    }


class MemoryUsageStore:
    persistent = False

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, str, str], UsageRow] = {}
        self._tokens: dict[tuple[str, str], int] = defaultdict(int)

    async def record(self, usage: Usage) -> None:
        day = utc_day()
        row = self._rows.setdefault(
            (day, usage.key, usage.provider, usage.model),
            UsageRow.of(day, usage.key, usage.provider, usage.model),
        )
        for metric, value in _increments(usage).items():
            setattr(row, metric, getattr(row, metric) + value)
        self._tokens[(day, split_key(usage.key)[0])] += usage.input_tokens + usage.output_tokens

    async def tokens_today(self, key: str) -> int:
        return self._tokens.get((utc_day(), key), 0)

    async def rows(self, key: str | None, since: date) -> list[UsageRow]:
        days = set(_days(since))
        return [r for r in self._rows.values() if r.day in days and key in (None, r.key)]


class RedisUsageStore:
    persistent = True

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def record(self, usage: Usage) -> None:
        day = utc_day()
        name = f"ccgate:usage:{day}"
        field = f"{usage.key}|{usage.provider}|{usage.model}"
        async with self._redis.pipeline(transaction=False) as pipe:
            for metric, value in _increments(usage).items():
                if metric == "queued_seconds":
                    pipe.hincrbyfloat(name, f"{field}|{metric}", value)
                elif value:
                    pipe.hincrby(name, f"{field}|{metric}", int(value))
            tokens = usage.input_tokens + usage.output_tokens
            pipe.hincrby(name, f"{split_key(usage.key)[0]}|tokens", tokens)
            pipe.expire(name, RETENTION_SECONDS)
            await pipe.execute()

    async def tokens_today(self, key: str) -> int:
        value = await self._redis.hget(f"ccgate:usage:{utc_day()}", f"{key}|tokens")
        return int(value or 0)

    async def rows(self, key: str | None, since: date) -> list[UsageRow]:
        out: list[UsageRow] = []
        for day in _days(since):
            raw = await self._redis.hgetall(f"ccgate:usage:{day}")
            rows: dict[tuple[str, str, str], UsageRow] = {}
            for field, value in raw.items():
                parts = field.decode().split("|")
                if len(parts) != 4 or (key is not None and split_key(parts[0])[0] != key):
                    continue
                row = rows.setdefault(
                    (parts[0], parts[1], parts[2]), UsageRow.of(day, parts[0], parts[1], parts[2])
                )
                number = float(value) if parts[3] == "queued_seconds" else int(value)
                setattr(row, parts[3], number)
            out.extend(rows.values())
        return out
