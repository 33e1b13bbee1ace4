"""The one place Redis connections are made: one Redis, a Redis Cluster, or a Sentinel set.

`REDIS_MODE` says which and `REDIS_URL` where (`ccgate.shared.redis_url` reads and checks
both). The password is the data nodes'; sentinels
are asked without one. Every caller gets the same kind of client whatever the mode, through
redis-py's own RedisCluster and Sentinel support, so failover and MOVED redirects are redis-py's
business, not ours.
"""

from __future__ import annotations

from typing import Any

import redis as redis_sync
import redis.asyncio.sentinel as async_sentinel
import redis.cluster as sync_cluster
import redis.sentinel as sync_sentinel
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from ccgate.shared.redis_url import SentinelTarget, check, parse_sentinel_url
from ccgate.shared.settings import Settings

# What redis-py hands back in each mode; both speak the same commands.
AsyncClient = Redis | RedisCluster


def _timeouts(blocking: bool) -> dict[str, Any]:
    return {"socket_timeout": None if blocking else 5, "socket_connect_timeout": 2}


# Sentinels answer small questions; a dead one must not hold up asking the next.
_SENTINEL_KWARGS = {"socket_timeout": 2, "socket_connect_timeout": 2}


def _master_kwargs(target: SentinelTarget, timeouts: dict[str, Any]) -> dict[str, Any]:
    return {
        "db": target.db,
        "username": target.username,
        "password": target.password,
        "ssl": target.ssl,
        **timeouts,
    }


def connect(url: str, *, mode: str = "standalone", blocking: bool = False) -> AsyncClient:
    """A pooled asyncio client; `blocking` ones wait without a socket timeout (BLPOP)."""
    check(url, mode)
    timeouts = _timeouts(blocking)
    if mode == "cluster":
        cluster: RedisCluster = RedisCluster.from_url(url, **timeouts)
        return cluster
    if mode == "sentinel":
        target = parse_sentinel_url(url)
        sentinels = async_sentinel.Sentinel(  # type: ignore[no-untyped-call]
            target.sentinels, sentinel_kwargs=_SENTINEL_KWARGS
        )
        master: Redis = sentinels.master_for(target.master, **_master_kwargs(target, timeouts))
        return master
    client: Redis = Redis.from_url(url, **timeouts)
    return client


def connect_sync(url: str, *, mode: str = "standalone", timeout: float = 5) -> Any:
    """The blocking client for the CLI and the key store (redis.Redis or a cluster/sentinel one)."""
    check(url, mode)
    timeouts = {"socket_timeout": timeout, "socket_connect_timeout": min(timeout, 2)}
    if mode == "cluster":
        return sync_cluster.RedisCluster.from_url(url, **timeouts)
    if mode == "sentinel":
        target = parse_sentinel_url(url)
        sentinels = sync_sentinel.Sentinel(  # type: ignore[no-untyped-call]
            target.sentinels, sentinel_kwargs=_SENTINEL_KWARGS
        )
        return sentinels.master_for(  # type: ignore[no-untyped-call]
            target.master, **_master_kwargs(target, timeouts)
        )
    return redis_sync.Redis.from_url(url, **timeouts)


def _is_cluster_node(url: str) -> bool | None:
    """None when the server does not answer."""
    try:
        probe = redis_sync.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        info: dict[str, Any] = probe.info("cluster")  # type: ignore[assignment]
    except redis_sync.RedisError:
        return None
    return bool(info.get("cluster_enabled"))


def mode_mismatch(url: str, mode: str) -> str | None:
    """Ask the server whether it is a cluster node; a mode that does not match it is refused at
    start-up instead of failing every request with MOVED. Unreachable is not a mismatch (the
    limiter's failure mode rides that out)."""
    if mode == "sentinel":
        return None  # the master is found through the sentinels; it is never a cluster node
    enabled = _is_cluster_node(url)
    if enabled is None:
        return None
    if enabled and mode != "cluster":
        return "REDIS_URL is a Redis Cluster node: set REDIS_MODE=cluster"
    if not enabled and mode == "cluster":
        return "REDIS_MODE=cluster but REDIS_URL's server is not a cluster node: set REDIS_MODE=standalone"
    return None


def queue_redis_url(settings: Settings) -> str:
    """The bot's Redis (arq queue and chat sessions), refused when it is a cluster: arq's
    enqueue and its job bookkeeping are multi-key transactions over keys in different slots."""
    url, mode = settings.bot_redis()
    check(url, mode)
    if mode == "standalone" and _is_cluster_node(url):
        raise ValueError(
            f"{'BOT_REDIS_URL' if settings.bot_redis_url else 'REDIS_URL'} is a Redis Cluster "
            "node: the bot's queue (arq) cannot run on a cluster; set BOT_REDIS_URL to a "
            "standalone Redis or a redis+sentinel:// URL"
        )
    return url
