"""One request's way through: route → limiter → adapter, with fallbacks before the first byte.

`open_message` returns an `Opened` only once the upstream answered 200 — until then every
failure can still become a proper HTTP error or the next entry of the fallback chain. The
caller must `close()` it, which releases the limiter lease exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from ccgate.edge.providers import anthropic_native, openai_compat
from ccgate.edge.providers.base import (
    CallInfo,
    Timeouts,
    UpstreamCall,
    UpstreamFailure,
    make_client,
)
from ccgate.edge.providers.table import Provider, configure_all
from ccgate.edge.routing import Resolved, Route, Router
from ccgate.edge.translate.errors import ApiError, invalid_request, rate_limited
from ccgate.edge.translate.stream import Event
from ccgate.edge.translate.target import Target
from ccgate.edge.translate.tokens import count_tokens
from ccgate.limiter.api import Denied, Lease, Limiter, Outcome, ProviderLimits
from ccgate.limiter.failover import LimiterUnavailable
from ccgate.shared.settings import Settings

log = logging.getLogger("ccgate.edge")

MAX_SAME_ROUTE_RETRIES = 3


@dataclass
class Opened:
    """An upstream call that answered 200, holding its limiter lease until closed."""

    call: UpstreamCall
    lease: Lease
    route: Route
    limiter: Limiter
    attempts: int
    started: float = field(default_factory=time.monotonic)
    _closed: bool = False

    @property
    def info(self) -> CallInfo:
        return self.call.info

    def events(self) -> AsyncIterator[list[Event]]:
        return self.call.events()

    async def close(self, outcome: Outcome) -> None:
        if self._closed:
            return
        self._closed = True
        # Shielded: the disconnect that brought us here must not cancel the slot's return.
        await asyncio.shield(self._close(outcome))

    async def _close(self, outcome: Outcome) -> None:
        try:
            await self.call.aclose()
        finally:
            await self.limiter.release(self.lease, outcome)


def limits_from(settings: Settings) -> Any:
    def limits_for(provider: str) -> ProviderLimits:
        ps = settings.provider(provider)
        return ProviderLimits(ps.rate_limit, ps.rate_window, ps.max_concurrency, ps.daily_limit)

    return limits_for


class Gateway:
    def __init__(self, settings: Settings, limiter: Limiter) -> None:
        self.settings = settings
        self.router = Router(settings)
        self.providers: dict[str, Provider] = configure_all(settings)
        self.limiter = limiter
        self.timeouts = Timeouts(
            connect=settings.http_connect_timeout,
            first_byte=settings.http_first_byte_timeout,
            idle=settings.http_read_timeout,
            write=settings.http_write_timeout,
        )
        self._clients: dict[str, httpx.AsyncClient] = {}

    def client(self, provider: Provider) -> httpx.AsyncClient:
        client = self._clients.get(provider.id)
        if client is None:
            client = self._clients[provider.id] = make_client(provider, self.timeouts)
        return client

    def warm_up(self) -> None:
        """Create the routed providers' connection pools now, not on the first request."""
        for routes in self.router.table().values():
            for route in routes:
                self.client(self.providers[route.provider])

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def open_message(
        self, req: dict[str, Any], user: str, input_estimate: int, headers: dict[str, str]
    ) -> Opened:
        resolved = self.router.resolve(req["model"])
        deadline = time.monotonic() + self.settings.limiter_queue_timeout
        last: ApiError | None = None
        attempts = 0
        for position, route in enumerate(resolved.routes):
            provider = self.providers[route.provider]
            missing = provider.missing()
            if missing:
                # A gateway misconfiguration, not the client's fault — but a 5xx would make
                # Claude Code retry for minutes; a 400 shows this message at once.
                last = invalid_request(
                    f"the gateway cannot use {route.provider}/{route.model}: {missing} in the "
                    "gateway's environment"
                )
                continue
            is_last = position == len(resolved.routes) - 1
            for _ in range(MAX_SAME_ROUTE_RETRIES):
                attempts += 1
                try:
                    admitted = await self.limiter.admit(route.provider, user, deadline)
                except LimiterUnavailable:
                    raise ApiError(
                        503,
                        "api_error",
                        "the shared limiter is unreachable (LIMITER_FAILURE_MODE=closed)",
                    ) from None
                if isinstance(admitted, Denied):
                    last = rate_limited(
                        f"{route.provider} quota is in use ({admitted.reason}); "
                        f"retry in {admitted.retry_after:.0f}s",
                        admitted.retry_after,
                    )
                    break
                try:
                    call = await self._open(provider, route, resolved, req, input_estimate, headers)
                except UpstreamFailure as failure:
                    error = failure.error
                    outcome: Outcome = "rate_limited" if error.status == 429 else "error"
                    await self.limiter.release(admitted, outcome)
                    if error.status == 429:
                        await self.limiter.report_429(route.provider, error.retry_after)
                    log.warning("upstream %s/%s failed: %s", route.provider, route.model, error)
                    last = error
                    if not failure.retryable:
                        raise error from None
                    wait = error.retry_after or 0.0
                    if error.status == 429 and is_last and time.monotonic() + wait < deadline:
                        continue  # the limiter holds us until the provider's pause is over
                    break
                except BaseException:
                    await asyncio.shield(self.limiter.release(admitted, "cancelled"))
                    raise
                return Opened(call, admitted, route, self.limiter, attempts)
        assert last is not None
        raise last

    async def _open(
        self,
        provider: Provider,
        route: Route,
        resolved: Resolved,
        req: dict[str, Any],
        input_estimate: int,
        headers: dict[str, str],
    ) -> UpstreamCall:
        client = self.client(provider)
        if provider.api_format == "anthropic":
            return await anthropic_native.open_call(
                client, provider, req, route.model, self.timeouts, headers
            )
        target = Target(
            route.provider, route.model, provider.spec.quirks, resolved.thinking_allowed
        )
        warnings: list[str] = []
        try:
            return await openai_compat.open_call(
                client,
                provider,
                req,
                target,
                self.timeouts,
                input_estimate,
                lambda: count_tokens(req),
                headers,
                warnings,
            )
        finally:
            for warning in warnings:
                log.warning("request to %s: %s", route.provider, warning)
