"""Is this `ccgate bot` / `ccgate worker` process alive? Each keeps a heartbeat key in Redis,
named after its role and its host name (a container's or a pod's own), refreshed from its event
loop; the container's health check (`python -m ccgate.bot.heartbeat worker`, in the Dockerfile,
compose and the Helm chart's probes) runs in the same container and reads that key. A hung
loop or a lost Redis connection stops the refresh, the key expires and the check fails.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any

ROLES = ("bot", "worker")
TTL = 30  # seconds a heartbeat outlives its last refresh
INTERVAL = 5.0


def key(role: str, host: str | None = None) -> str:
    return f"ccgate:bot:heartbeat:{role}:{host or socket.gethostname()}"


async def beat(redis: Any, role: str) -> None:
    """Refresh this process's heartbeat once."""
    await redis.set(key(role), "alive", ex=TTL)


async def keep(redis: Any, role: str) -> None:
    """Refresh the heartbeat for as long as the process runs (a task next to its work)."""
    while True:
        try:
            await beat(redis, role)
        except Exception:  # Redis away for a moment: the key expires if it stays away
            pass
        await asyncio.sleep(INTERVAL)


def check(role: str, redis_url: str) -> str | None:
    """None if this host's `role` process has a live heartbeat, else why not."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=3, socket_connect_timeout=3)
    try:
        alive = client.exists(key(role))
    except redis.RedisError as exc:
        return f"Redis at REDIS_URL cannot be read ({type(exc).__name__})"
    finally:
        client.close()
    return None if alive else f"no heartbeat from `ccgate {role}` on this host for {TTL} s"


def main(argv: list[str]) -> int:
    from ccgate.shared.settings import Settings

    if len(argv) != 1 or argv[0] not in ROLES:
        print("usage: python -m ccgate.bot.heartbeat bot|worker", file=sys.stderr)
        return 2
    redis_url = Settings.from_env().redis_url
    if not redis_url:
        print("unhealthy: REDIS_URL is not set", file=sys.stderr)
        return 1
    problem = check(argv[0], redis_url)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
