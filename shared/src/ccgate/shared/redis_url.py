"""`REDIS_URL` and `REDIS_MODE` read and checked, without importing redis-py.

`REDIS_MODE` says which kind of Redis: `standalone`, `cluster` or `sentinel`; `REDIS_URL` is a
node's URL (standalone, or any node of a cluster) or
`redis+sentinel://[user:password@]host1:26379,host2:26379/<master-name>[/<db>]`
(`rediss+sentinel://` for TLS to the master). Kept apart from `ccgate.shared.redis` so that
a gateway on the in-memory limiter checks its settings without loading redis-py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

RedisMode = Literal["standalone", "cluster", "sentinel"]
MODES: tuple[RedisMode, ...] = ("standalone", "cluster", "sentinel")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: list[tuple[str, int]]
    master: str
    db: int
    username: str | None
    password: str | None
    ssl: bool


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower()


def parse_sentinel_url(url: str) -> SentinelTarget:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SENTINEL_SCHEMES:
        raise ValueError(
            "REDIS_MODE=sentinel needs REDIS_URL=redis+sentinel://host1:26379,host2:26379/"
            f"<master-name> (rediss+sentinel:// for TLS), got a {scheme or 'bare'}:// URL"
        )
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = []
    for host in filter(None, hosts.split(",")):
        name, colon, port = host.rpartition(":")
        if not colon:
            name, port = host, "26379"  # the sentinel's default port
        if not port.isdigit():
            raise ValueError(f"REDIS_URL: sentinel {host!r} needs host:port")
        sentinels.append((name.strip("[]"), int(port)))
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if not sentinels or not parts:
        raise ValueError(
            "REDIS_URL=redis+sentinel://host1:26379,host2:26379/<master-name>: "
            "name at least one sentinel and the master (its name in sentinel.conf)"
        )
    if len(parts) > 1 and not parts[1].isdigit():
        raise ValueError(
            f"REDIS_URL: the database after the master name must be a number, got {parts[1]!r}"
        )
    db = int(parts[1]) if len(parts) > 1 else 0
    return SentinelTarget(
        sentinels, unquote(parts[0]), db, username, password, scheme.lower() == "rediss+sentinel"
    )


def check(url: str, mode: str) -> None:
    """Refuse a setting that cannot work, naming the fix (raised as ValueError)."""
    if mode not in MODES:
        raise ValueError(f"REDIS_MODE must be standalone, cluster or sentinel, got {mode!r}")
    sentinel_url = _scheme(url) in SENTINEL_SCHEMES
    if mode == "sentinel":
        parse_sentinel_url(url)
    elif sentinel_url:
        raise ValueError(f"REDIS_URL is a sentinel URL: set REDIS_MODE=sentinel (it is {mode})")
    elif _scheme(url) not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"REDIS_URL must start with redis://, rediss:// or redis+sentinel://, got {url.partition('://')[0]}://"
        )
    if mode == "cluster":
        if _scheme(url) == "unix":
            raise ValueError(
                "REDIS_MODE=cluster needs a node's redis:// or rediss:// URL, not a unix socket"
            )
        db = url.partition("://")[2].partition("/")[2].split("?", 1)[0]
        if db not in ("", "0"):
            raise ValueError(f"Redis Cluster has only database 0: drop /{db} from REDIS_URL")
