"""The one place Redis connections are made."""

from __future__ import annotations

from redis.asyncio import Redis


def connect(url: str, *, blocking: bool = False) -> Redis:
    """A pooled asyncio client; `blocking` ones wait without a socket timeout (BLPOP)."""
    client: Redis = Redis.from_url(
        url, socket_timeout=None if blocking else 5, socket_connect_timeout=2
    )
    return client
