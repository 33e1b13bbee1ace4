"""In-memory limiter: the embedded default (one process, no Redis).

Rate: at most `rate_limit` admissions in any `rate_window` seconds (a sliding log of grant
times, so the count is exact, as providers count). Concurrency: at most `max_concurrency`
leases out. Waiters queue per user; users are served round-robin so one user's burst of
sub-agents cannot starve the others.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ccgate.limiter.api import USER_WINDOW, Denied, Lease, Outcome, ProviderLimits, UserLimits
from ccgate.shared.days import utc_day


def seconds_to_utc_midnight(now: float | None = None) -> float:
    current = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    midnight = (current + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - current).total_seconds()


def backoff(consecutive: int) -> float:
    """Pause after a 429 without Retry-After: exponential, capped, with jitter."""
    base = min(60.0, 2.0 ** max(0, consecutive - 1))
    return base * (1.0 + random.random() * 0.25)


@dataclass
class _Waiter:
    user: str
    future: asyncio.Future[Lease]
    enqueued: float
    position: int


@dataclass
class _ProviderState:
    limits: ProviderLimits
    grants: deque[float] = field(default_factory=deque)
    in_flight: dict[str, Lease] = field(default_factory=dict)
    pause_until: float = 0.0
    consecutive_429: int = 0
    day: str = ""
    day_count: int = 0
    queues: dict[str, deque[_Waiter]] = field(default_factory=dict)
    order: deque[str] = field(default_factory=deque)
    timer: asyncio.TimerHandle | None = None
    user_limits: dict[str, UserLimits] = field(default_factory=dict)
    user_grants: dict[str, deque[float]] = field(default_factory=dict)  # by bucket
    user_in_flight: dict[str, int] = field(default_factory=dict)  # by bucket
    counted_in: dict[str, str] = field(default_factory=dict)  # lease id -> its bucket

    def waiting(self) -> int:
        return sum(len(q) for q in self.queues.values())


class MemoryLimiter:
    def __init__(self, limits_for: Callable[[str], ProviderLimits]) -> None:
        self._limits_for = limits_for
        self._providers: dict[str, _ProviderState] = {}

    def _state(self, provider: str) -> _ProviderState:
        state = self._providers.get(provider)
        if state is None:
            state = self._providers[provider] = _ProviderState(self._limits_for(provider))
        return state

    # -- rules ---------------------------------------------------------------------------
    @staticmethod
    def _trim(state: _ProviderState, now: float) -> None:
        window = state.limits.rate_window
        while state.grants and state.grants[0] <= now - window:
            state.grants.popleft()

    @staticmethod
    def _today(state: _ProviderState) -> None:
        day = utc_day()
        if state.day != day:
            state.day, state.day_count = day, 0

    def _blocked_for(self, state: _ProviderState, now: float) -> tuple[str, float] | None:
        """Why a grant cannot happen now, and how long until that could change (0: on release)."""
        limits = state.limits
        if state.pause_until > now:
            return "paused", state.pause_until - now
        self._today(state)
        if limits.daily_limit is not None and state.day_count >= limits.daily_limit:
            return "daily", seconds_to_utc_midnight()
        if limits.max_concurrency and len(state.in_flight) >= limits.max_concurrency:
            return "concurrency", 0.0
        if limits.rate_limit:
            self._trim(state, now)
            if len(state.grants) >= limits.rate_limit:
                return "rate", state.grants[0] + limits.rate_window - now
        return None

    @staticmethod
    def _bucket(state: _ProviderState, user: str) -> str | None:
        """The bucket the user's own limits count in; None when they have none."""
        limits = state.user_limits.get(user)
        if limits is None or not limits.active:
            return None
        return limits.bucket or user

    def _user_blocked(
        self, state: _ProviderState, user: str, now: float
    ) -> tuple[str, float] | None:
        """The user's own limits: why they block, and for how long (0: until a release)."""
        bucket = self._bucket(state, user)
        if bucket is None:
            return None
        limits = state.user_limits[user]
        if limits.max_concurrency and state.user_in_flight.get(bucket, 0) >= limits.max_concurrency:
            return "user_concurrency", 0.0
        if limits.rpm:
            grants = state.user_grants.setdefault(bucket, deque())
            while grants and grants[0] <= now - USER_WINDOW:
                grants.popleft()
            if len(grants) >= limits.rpm:
                return "user_rate", grants[0] + USER_WINDOW - now
        return None

    def _grant(
        self,
        state: _ProviderState,
        provider: str,
        user: str,
        now: float,
        waited: float,
        position: int,
    ) -> Lease:
        lease = Lease(secrets.token_hex(8), provider, user, waited, position)
        state.in_flight[lease.id] = lease
        if state.limits.rate_limit:
            state.grants.append(now)
        state.day_count += 1
        bucket = self._bucket(state, user)
        if bucket is not None:
            state.counted_in[lease.id] = bucket
            state.user_in_flight[bucket] = state.user_in_flight.get(bucket, 0) + 1
            if state.user_limits[user].rpm:
                state.user_grants.setdefault(bucket, deque()).append(now)
        return lease

    def _estimate(self, state: _ProviderState, now: float, ahead: int) -> float:
        """Seconds until a request with `ahead` others before it could be granted."""
        limits = state.limits
        wait = max(0.0, state.pause_until - now)
        if limits.rate_limit:
            self._trim(state, now)
            needed = len(state.grants) + ahead + 1 - limits.rate_limit
            if needed > 0:
                # The `needed`-th oldest grant must leave the window; beyond the log, whole windows.
                cycles, rest = divmod(needed - 1, limits.rate_limit)
                anchor = state.grants[rest] if rest < len(state.grants) else now
                wait = max(wait, anchor + limits.rate_window * (cycles + 1) - now)
        return wait

    # -- protocol ------------------------------------------------------------------------
    async def admit(
        self, provider: str, user: str, deadline: float, user_limits: UserLimits | None = None
    ) -> Lease | Denied:
        state = self._state(provider)
        if user_limits is not None:
            state.user_limits[user] = user_limits
        now = time.monotonic()
        ahead = state.waiting()
        blocked = self._blocked_for(state, now)
        own = self._user_blocked(state, user, now)
        if blocked is None and own is None and ahead == 0:
            return self._grant(state, provider, user, now, 0.0, 0)
        if blocked is not None and blocked[0] == "daily":
            return Denied(blocked[1], "daily", {"limit": state.limits.daily_limit})
        estimate = self._estimate(state, now, ahead)
        if own is not None:
            estimate = max(estimate, own[1])
        if estimate > deadline - now:
            reason = own[0] if own and own[1] >= estimate else (blocked[0] if blocked else "rate")
            return Denied(max(1.0, estimate), reason, {"queued": ahead})  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        waiter = _Waiter(user, loop.create_future(), now, ahead)
        if user not in state.queues or not state.queues[user]:
            state.queues[user] = deque()
            state.order.append(user)
        state.queues[user].append(waiter)
        self._pump(provider)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.future), max(0.0, deadline - now))
        except TimeoutError:
            self._forget(state, waiter)
            if waiter.future.done() and not waiter.future.cancelled():
                return waiter.future.result()  # granted in the same instant
            estimate = self._estimate(state, time.monotonic(), state.waiting())
            return Denied(max(1.0, estimate), "timeout", {"queued": state.waiting()})
        except asyncio.CancelledError:
            # The client went away while queued: leave the queue; a grant that raced us is returned.
            self._forget(state, waiter)
            if waiter.future.done() and not waiter.future.cancelled():
                await self.release(waiter.future.result(), "cancelled")
            else:
                waiter.future.cancel()
            raise

    def _forget(self, state: _ProviderState, waiter: _Waiter) -> None:
        queue = state.queues.get(waiter.user)
        if queue and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del state.queues[waiter.user]
                if waiter.user in state.order:
                    state.order.remove(waiter.user)

    def _pump(self, provider: str) -> None:
        state = self._state(provider)
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        loop = asyncio.get_running_loop()
        while state.order:
            now = time.monotonic()
            blocked = self._blocked_for(state, now)
            if blocked is not None:
                if blocked[1] > 0:
                    state.timer = loop.call_later(blocked[1] + 0.001, self._pump, provider)
                return  # concurrency: the next release pumps again
            # Round-robin over users; a user held back by their own limits keeps their place
            # in line but does not hold up the others.
            own_waits = []
            for _ in range(len(state.order)):
                own = self._user_blocked(state, state.order[0], now)
                if own is None:
                    break
                own_waits.append(own[1])
                state.order.rotate(-1)
            else:
                positive = [w for w in own_waits if w > 0]
                if positive:
                    state.timer = loop.call_later(min(positive) + 0.001, self._pump, provider)
                return
            user = state.order.popleft()
            queue = state.queues[user]
            waiter = queue.popleft()
            if queue:
                state.order.append(user)
            else:
                del state.queues[user]
            if waiter.future.done():
                continue
            waiter.future.set_result(
                self._grant(state, provider, user, now, now - waiter.enqueued, waiter.position)
            )

    async def release(self, lease: Lease, outcome: Outcome) -> None:
        state = self._state(lease.provider)
        if state.in_flight.pop(lease.id, None) is None:
            return  # released twice, or already expired: nothing to give back
        bucket = state.counted_in.pop(lease.id, None)
        if bucket is not None and state.user_in_flight.get(bucket):
            state.user_in_flight[bucket] -= 1
        if outcome == "ok":
            state.consecutive_429 = 0
        self._pump(lease.provider)

    async def report_429(self, provider: str, retry_after: float | None) -> None:
        state = self._state(provider)
        state.consecutive_429 += 1
        pause = retry_after if retry_after is not None else backoff(state.consecutive_429)
        state.pause_until = max(state.pause_until, time.monotonic() + pause)

    async def health(self) -> dict[str, Any]:
        return {"backend": "memory", "degraded": False}

    async def status(self) -> dict[str, Any]:
        now = time.monotonic()
        out: dict[str, Any] = {"backend": "memory", "providers": {}}
        for provider, state in self._providers.items():
            self._trim(state, now)
            self._today(state)
            limits = state.limits
            by_user: dict[str, int] = {}
            for lease in state.in_flight.values():
                by_user[lease.user] = by_user.get(lease.user, 0) + 1
            out["providers"][provider] = {
                "rate_limit": limits.rate_limit,
                "rate_window": limits.rate_window,
                "tokens_left": (limits.rate_limit - len(state.grants))
                if limits.rate_limit
                else None,
                "max_concurrency": limits.max_concurrency,
                "in_flight": len(state.in_flight),
                "in_flight_by_user": by_user,
                "queue_depth": {u: len(q) for u, q in state.queues.items()},
                "queued": state.waiting(),
                "paused_for": max(0.0, state.pause_until - now),
                "daily_count": state.day_count,
                "daily_limit": limits.daily_limit,
            }
        return out

    async def close(self) -> None:
        for state in self._providers.values():
            if state.timer is not None:
                state.timer.cancel()
