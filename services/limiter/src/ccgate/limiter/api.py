"""The limiter's interface: one protocol, two implementations (in memory and Redis).

The edge wraps every upstream request in `admit` → stream → `release`. A request that cannot
go now waits in a fair queue (per-user FIFO, users served round-robin) until `deadline`; past
it, the answer is `Denied` with a `retry_after` computed from the real queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Outcome = Literal["ok", "error", "rate_limited", "cancelled"]


@dataclass(frozen=True)
class ProviderLimits:
    rate_limit: int  # requests per window; 0 = no rate limit
    rate_window: float  # seconds
    max_concurrency: int  # in-flight cap; 0 = no cap
    daily_limit: int | None = None


@dataclass(frozen=True)
class UserLimits:
    """A team key's own share, on top of the provider quota (per provider it routes to)."""

    rpm: int = 0  # requests per minute; 0 = no own limit
    max_concurrency: int = 0  # own in-flight cap; 0 = none
    # Where these limits are counted: "" = the caller's own bucket. Callers naming one bucket
    # (the chat users of one key) share its limits in total, each still queued as itself, so
    # the fair queue shares the bucket between them.
    bucket: str = ""

    @property
    def active(self) -> bool:
        return bool(self.rpm or self.max_concurrency)


USER_WINDOW = 60.0  # seconds: the per-user rate window (requests per minute)


@dataclass(frozen=True)
class Lease:
    id: str
    provider: str
    user: str
    waited: float = 0.0  # seconds spent queued
    queue_position: int = 0  # requests ahead when it was queued (0: admitted at once)


@dataclass(frozen=True)
class Denied:
    retry_after: float
    reason: Literal[
        "rate", "concurrency", "paused", "daily", "timeout", "user_rate", "user_concurrency"
    ]
    detail: dict[str, Any] = field(default_factory=dict)


class LimiterUnavailable(Exception):
    """The shared limiter (Redis) is down and the failure mode is `closed`."""


class Limiter(Protocol):
    async def admit(
        self, provider: str, user: str, deadline: float, user_limits: UserLimits | None = None
    ) -> Lease | Denied:
        """Wait for a slot until `deadline` (a `time.monotonic()` value); `user_limits` adds
        the caller's own share on top of the provider quota, in the same decision."""
        ...

    async def release(self, lease: Lease, outcome: Outcome) -> None: ...

    async def report_429(self, provider: str, retry_after: float | None) -> None:
        """The provider said 429: every replica pauses it until `retry_after` has passed."""
        ...

    async def status(self) -> dict[str, Any]: ...

    async def health(self) -> dict[str, Any]:
        """What a readiness probe needs — backend and whether it is degraded — in at most one
        round trip (`status` reads every provider's state)."""
        ...

    async def close(self) -> None: ...
