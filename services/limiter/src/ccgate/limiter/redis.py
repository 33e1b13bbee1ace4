"""The Redis limiter: one quota across every replica, each decision one atomic Lua script.

Uncontended, `admit` is one round trip (EVALSHA admit). Contended, the request waits in the
fair queue inside Redis; a grant is pushed to this replica's list for that provider, where a
blocking pop (not polling) hands it to the waiting request. Leases are renewed by heartbeat;
a replica that dies stops renewing and its slots come back after `lease_ttl`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from redis.commands.core import AsyncScript

from ccgate.limiter.api import Denied, Lease, Outcome, ProviderLimits, UserLimits
from ccgate.shared.redis import AsyncClient, connect

log = logging.getLogger("ccgate.limiter")

SCRIPTS = ("admit", "release", "pump", "cancel", "renew", "report_429", "status")


def _load_scripts(client: AsyncClient) -> dict[str, AsyncScript]:
    lua = resources.files("ccgate.limiter") / "lua"
    common = (lua / "common.lua").read_text()
    # redis-py's Script runs EVALSHA and re-sends the source on NOSCRIPT, so the scripts
    # survive SCRIPT FLUSH and a Redis restart without anyone noticing.
    # register_script is typed for Redis only; RedisCluster has the same (routed by KEYS[1]).
    return {
        name: client.register_script(common + "\n" + (lua / f"{name}.lua").read_text())  # type: ignore[misc]
        for name in SCRIPTS
    }


def prefix(provider: str) -> str:
    return f"ccgate:{{{provider}}}:"


@dataclass
class _ProviderLoop:
    listener: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    waiters: dict[str, tuple[asyncio.Future[Lease], str, float, int]] = field(default_factory=dict)


class RedisLimiter:
    def __init__(
        self,
        redis_url: str,
        limits_for: Callable[[str], ProviderLimits],
        *,
        mode: str = "standalone",
        replica: str | None = None,
        lease_ttl: float = 30.0,
        heartbeat: float = 10.0,
    ) -> None:
        self._url = redis_url
        self._mode = mode
        self._redis = connect(redis_url, mode=mode)
        self._scripts = _load_scripts(self._redis)
        self._limits_for = limits_for
        self._limits: dict[str, ProviderLimits] = {}
        self.replica = replica or secrets.token_hex(6)
        self._ttl_ms = int(lease_ttl * 1000)
        self._heartbeat = min(heartbeat, lease_ttl / 3)  # renew well before expiry
        self._held: dict[str, Lease] = {}
        self._giving_back: set[asyncio.Task[None]] = set()  # releases no caller waits for
        self._loops: dict[str, _ProviderLoop] = {}
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.round_trips = 0  # counted for the benchmark

    # -- helpers -------------------------------------------------------------------------
    def limits(self, provider: str) -> ProviderLimits:
        limits = self._limits.get(provider)
        if limits is None:
            limits = self._limits[provider] = self._limits_for(provider)
        return limits

    def _rule_args(self, provider: str) -> list[int]:
        limits = self.limits(provider)
        return [
            limits.rate_limit,
            int(limits.rate_window * 1000),
            limits.max_concurrency,
            limits.daily_limit or 0,
            self._ttl_ms,
        ]

    async def _run(self, name: str, provider: str, args: list[Any]) -> Any:
        self.round_trips += 1
        return await self._scripts[name](keys=[prefix(provider)], args=args)

    def _ensure_background(self, provider: str) -> _ProviderLoop:
        loop = self._loops.setdefault(provider, _ProviderLoop())
        if loop.listener is None or loop.listener.done():
            loop.listener = asyncio.create_task(self._listen(provider))
        if self._heartbeat_task is None or self._heartbeat_task.done():
            self._heartbeat_task = asyncio.create_task(self._renew_forever())
        return loop

    # -- protocol ------------------------------------------------------------------------
    async def admit(
        self, provider: str, user: str, deadline: float, user_limits: UserLimits | None = None
    ) -> Lease | Denied:
        own = user_limits or UserLimits()
        lease_id = secrets.token_hex(10)
        budget_ms = max(0, int((deadline - time.monotonic()) * 1000))
        limit, window, conc, daily, ttl = self._rule_args(provider)
        started = time.monotonic()
        if self._heartbeat_task is None or self._heartbeat_task.done():
            self._heartbeat_task = asyncio.create_task(self._renew_forever())
        # The waiter is registered before asking. A release elsewhere can grant this lease, and
        # the listener pop that grant, before the admit reply is back; a grant nobody waits for
        # is handed back as unclaimed, which left the request queued for a grant that had come
        # and gone, until its deadline (the soak saw it at ~600 requests/s).
        loop = self._loops.setdefault(provider, _ProviderLoop())
        future: asyncio.Future[Lease] = asyncio.get_running_loop().create_future()
        loop.waiters[lease_id] = (future, user, started, 0)
        try:
            result = await self._run(
                "admit",
                provider,
                [
                    lease_id,
                    user,
                    self.replica,
                    limit,
                    window,
                    conc,
                    daily,
                    ttl,
                    budget_ms,
                    own.rpm,
                    own.max_concurrency,
                    own.bucket,
                ],
            )
        except BaseException:
            loop.waiters.pop(lease_id, None)
            raise
        code = int(result[0])
        if code != 2:
            loop.waiters.pop(lease_id, None)
        if code == 1:
            self._held[lease_id] = Lease(lease_id, provider, user)
            return self._held[lease_id]
        if code == 0:
            reason = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
            return Denied(max(1.0, int(result[2]) / 1000), reason)  # type: ignore[arg-type]
        if not future.done():  # (a grant that came first has taken the waiter already)
            loop.waiters[lease_id] = (future, user, started, int(result[1]))
        self._ensure_background(provider)
        self._schedule(provider, int(result[2]))
        try:
            return await asyncio.wait_for(
                asyncio.shield(future), max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            leaving = asyncio.ensure_future(self._leave_queue(provider, lease_id, user, future))
            try:
                raced = await asyncio.shield(leaving)
            except asyncio.CancelledError:  # gone while leaving: a raced grant goes back
                leaving.add_done_callback(self._give_back)
                raise
            if raced is not None:
                return raced
            queued = (await self.status_of(provider))["queued"]
            limits = self.limits(provider)
            per_grant = limits.rate_window / limits.rate_limit if limits.rate_limit else 1.0
            return Denied(max(1.0, per_grant * (queued + 1)), "timeout", {"queued": queued})
        except asyncio.CancelledError:
            # The client went away while queued: leave at once; a grant that raced us goes back.
            granted = await asyncio.shield(self._leave_queue(provider, lease_id, user, future))
            if granted is not None:
                await asyncio.shield(self.release(granted, "cancelled"))
            raise

    def _give_back(self, leaving: asyncio.Future[Lease | None]) -> None:
        granted = None if leaving.cancelled() or leaving.exception() else leaving.result()
        if granted is not None:
            task = asyncio.ensure_future(self.release(granted, "cancelled"))
            self._giving_back.add(task)
            task.add_done_callback(self._giving_back.discard)

    async def _leave_queue(
        self, provider: str, lease_id: str, user: str, future: asyncio.Future[Lease]
    ) -> Lease | None:
        """Leave the queue; returns the lease if it was granted in the meantime."""
        self._loops[provider].waiters.pop(lease_id, None)
        still_waiting = int(await self._run("cancel", provider, [lease_id, user]))
        if still_waiting:
            return None
        # Granted already: the grant is ours even if the listener has not delivered it yet
        # (it will find no waiter and must not release it twice, hence _held).
        lease = future.result() if future.done() else Lease(lease_id, provider, user)
        self._held[lease_id] = lease
        return lease

    def _schedule(self, provider: str, pump_result: int) -> None:
        """Blocked on rate or pause: pump again when that changes (a release pumps by itself)."""
        loop = self._loops.setdefault(provider, _ProviderLoop())
        if pump_result <= 0 or not loop.waiters:
            return
        if loop.timer is not None:
            loop.timer.cancel()
        delay = pump_result / 1000 + 0.002
        loop.timer = asyncio.get_running_loop().call_later(
            delay, lambda: asyncio.ensure_future(self._pump(provider))
        )

    async def _pump(self, provider: str) -> None:
        try:
            result = await self._run("pump", provider, self._rule_args(provider))
        except Exception as exc:  # the next release or timer tries again
            log.warning("limiter pump for %s failed: %s", provider, type(exc).__name__)
            result = 1000
        self._schedule(provider, int(result))

    async def _listen(self, provider: str) -> None:
        """This replica's grants for `provider`, by blocking pop on its own list."""
        key = prefix(provider) + "granted:" + self.replica
        conn = connect(self._url, mode=self._mode, blocking=True)
        loop = self._loops[provider]
        try:
            while True:
                try:
                    item = await conn.blpop([key], timeout=5)  # type: ignore[misc]
                except Exception as exc:
                    log.warning("limiter listener for %s: %s", provider, type(exc).__name__)
                    await asyncio.sleep(1)
                    continue
                if item is None:
                    if not loop.waiters:
                        # Idle: the next queued admit starts a new listener. Said now, not
                        # when this task ends (closing the connection awaits), so that an
                        # admit in between does not count on this one.
                        loop.listener = None
                        return
                    await self._pump(provider)
                    continue
                lease_id = item[1].decode()
                waiter = loop.waiters.pop(lease_id, None)
                if waiter is None or waiter[0].done():
                    if lease_id not in self._held:  # nobody claimed it: hand the slot back
                        await self.release(Lease(lease_id, provider, ""), "cancelled")
                    continue
                future, user, started, ahead = waiter
                lease = Lease(lease_id, provider, user, time.monotonic() - started, ahead)
                self._held[lease_id] = lease
                future.set_result(lease)
        finally:
            await conn.aclose()

    async def release(self, lease: Lease, outcome: Outcome) -> None:
        self._held.pop(lease.id, None)
        result = await self._run(
            "release", lease.provider, [lease.id, outcome, *self._rule_args(lease.provider)]
        )
        self._schedule(lease.provider, int(result))

    async def report_429(self, provider: str, retry_after: float | None) -> None:
        retry_ms = -1 if retry_after is None else int(retry_after * 1000)
        await self._run("report_429", provider, [retry_ms, 1.0 + random.random() * 0.25])

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            by_provider: dict[str, list[str]] = {}
            for lease in list(self._held.values()):
                by_provider.setdefault(lease.provider, []).append(lease.id)
            for provider, ids in by_provider.items():
                try:
                    await self._run("renew", provider, [self._ttl_ms, *ids])
                except Exception as exc:
                    log.warning("lease heartbeat for %s failed: %s", provider, type(exc).__name__)

    async def status_of(self, provider: str) -> dict[str, Any]:
        limits = self.limits(provider)
        grants, info, depth, pause, day, waiting = await self._run(
            "status", provider, [limits.rate_limit, int(limits.rate_window * 1000)]
        )
        by_user: dict[str, int] = {}
        by_replica: dict[str, int] = {}
        for i in range(0, len(info), 2):
            user, _, rest = info[i + 1].decode().partition("\t")
            replica = rest.partition("\t")[0]  # then the bucket its own limits count in
            by_user[user] = by_user.get(user, 0) + 1
            by_replica[replica] = by_replica.get(replica, 0) + 1
        return {
            "rate_limit": limits.rate_limit,
            "rate_window": limits.rate_window,
            "tokens_left": (limits.rate_limit - int(grants)) if limits.rate_limit else None,
            "max_concurrency": limits.max_concurrency,
            "in_flight": len(info) // 2,
            "in_flight_by_user": by_user,
            "in_flight_by_replica": by_replica,
            "queue_depth": {depth[i].decode(): int(depth[i + 1]) for i in range(0, len(depth), 2)},
            "queued": int(waiting),
            "paused_for": int(pause) / 1000,
            "daily_count": int(day),
            "daily_limit": limits.daily_limit,
        }

    async def status(self) -> dict[str, Any]:
        providers = set(self._limits) | {
            key.decode().split("{", 1)[1].split("}", 1)[0]
            async for key in self._redis.scan_iter(match="ccgate:{*}:*", count=500)
        }
        return {
            "backend": "redis",
            "replica": self.replica,
            "providers": {p: await self.status_of(p) for p in sorted(providers)},
        }

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def health(self) -> dict[str, Any]:
        await self.ping()  # raises when Redis is away
        return {"backend": "redis", "degraded": False}

    async def close(self) -> None:
        for loop in self._loops.values():
            if loop.listener is not None:
                loop.listener.cancel()
            if loop.timer is not None:
                loop.timer.cancel()
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        await self._redis.aclose()
