"""Redis unreachable: a circuit breaker around the Redis limiter and `LIMITER_FAILURE_MODE`.

- `local` (default): each replica enforces its share of the quota in memory
  (limits divided by `LIMITER_REPLICAS`), so N replicas together stay within the quota.
- `open`: admit everything (the provider's own 429s still pause and retry).
- `closed`: refuse with 503 until Redis is back.
Recovery needs no restart: after `retry_after` seconds the next call tries Redis again.
Releases that failed while Redis was away are sent once it answers: a promoted replica
(Sentinel failover) still holds those leases and would keep their slots for a lease TTL.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

from redis.exceptions import ClusterDownError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ccgate.limiter.api import (
    Denied,
    Lease,
    Limiter,
    LimiterUnavailable,
    Outcome,
    ProviderLimits,
    UserLimits,
)
from ccgate.limiter.memory import MemoryLimiter

log = logging.getLogger("ccgate.limiter")

FailureMode = Literal["local", "open", "closed"]
# A sentinel with no master yet is a ConnectionError too (MasterNotFoundError).
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ClusterDownError, OSError)


class FailoverLimiter:
    def __init__(
        self,
        primary: Limiter,
        limits_for: Callable[[str], ProviderLimits],
        mode: FailureMode = "local",
        replicas: int = 1,
        retry_after: float = 5.0,
    ) -> None:
        self.primary = primary
        self.mode = mode
        self._retry_after = retry_after
        self._down_until = 0.0
        share = max(1, replicas)

        def local_limits(provider: str) -> ProviderLimits:
            limits = limits_for(provider)
            return replace(
                limits,
                rate_limit=max(1, limits.rate_limit // share) if limits.rate_limit else 0,
                max_concurrency=max(1, limits.max_concurrency // share)
                if limits.max_concurrency
                else 0,
                daily_limit=max(1, limits.daily_limit // share) if limits.daily_limit else None,
            )

        self.local = MemoryLimiter(local_limits)
        self._local_leases: set[str] = set()
        # Bounded: after a very long outage the oldest ones are left to expire by TTL.
        self._unreleased: deque[tuple[Lease, Outcome]] = deque(maxlen=10_000)

    @property
    def degraded(self) -> bool:
        return time.monotonic() < self._down_until

    def _trip(self, exc: BaseException) -> None:
        if not self.degraded:
            log.error(
                "limiter: Redis unreachable (%s); failure mode %s", type(exc).__name__, self.mode
            )
        self._down_until = time.monotonic() + self._retry_after

    async def admit(
        self, provider: str, user: str, deadline: float, user_limits: UserLimits | None = None
    ) -> Lease | Denied:
        if not self.degraded:
            try:
                await self._release_late()
                return await self.primary.admit(provider, user, deadline, user_limits)
            except REDIS_DOWN as exc:
                self._trip(exc)
        if self.mode == "closed":
            raise LimiterUnavailable("the shared limiter (Redis) is unreachable")
        if self.mode == "open":
            lease = Lease("open-" + str(time.monotonic_ns()), provider, user)
            self._local_leases.add(lease.id)
            return lease
        result = await self.local.admit(provider, user, deadline, user_limits)
        if isinstance(result, Lease):
            self._local_leases.add(result.id)
        return result

    async def release(self, lease: Lease, outcome: Outcome) -> None:
        if lease.id in self._local_leases:
            self._local_leases.discard(lease.id)
            await self.local.release(lease, outcome)
            return
        try:
            await self.primary.release(lease, outcome)
        except REDIS_DOWN as exc:  # sent again once Redis answers (else it expires by TTL)
            self._unreleased.append((lease, outcome))
            self._trip(exc)

    async def _release_late(self) -> None:
        while self._unreleased:
            lease, outcome = self._unreleased[0]
            await self.primary.release(lease, outcome)
            self._unreleased.popleft()

    async def report_429(self, provider: str, retry_after: float | None) -> None:
        await self.local.report_429(provider, retry_after)
        if not self.degraded:
            try:
                await self.primary.report_429(provider, retry_after)
            except REDIS_DOWN as exc:
                self._trip(exc)

    async def status(self) -> dict[str, Any]:
        if not self.degraded:
            try:
                status = await self.primary.status()
                status["degraded"] = False
                return status
            except REDIS_DOWN as exc:
                self._trip(exc)
        status = await self.local.status()
        status.update(backend="redis", degraded=True, failure_mode=self.mode)
        return status

    async def health(self) -> dict[str, Any]:
        if not self.degraded:
            try:
                await self.primary.health()
            except REDIS_DOWN as exc:
                self._trip(exc)
        health = {"backend": "redis", "degraded": self.degraded}
        return {**health, "failure_mode": self.mode} if self.degraded else health

    async def close(self) -> None:
        await self.primary.close()
        await self.local.close()
