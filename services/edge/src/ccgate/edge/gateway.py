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
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ccgate.edge import metrics
from ccgate.edge.context.fit import scale_usage
from ccgate.edge.context.gate import ContextGate
from ccgate.edge.outcome import record_outcome, record_usage
from ccgate.edge.providers import anthropic_native, openai_compat
from ccgate.edge.providers.base import (
    CallInfo,
    Timeouts,
    UpstreamCall,
    UpstreamClient,
    UpstreamFailure,
    make_client,
    pool_counts,
)
from ccgate.edge.providers.table import Provider, configure_all
from ccgate.edge.routing import Resolved, Route, Router
from ccgate.edge.statusline import SessionCallers
from ccgate.edge.tool_failures import ToolFailureLog
from ccgate.edge.tracing import MemoryToolSpanIndex, RedisToolSpanIndex, RequestTrace, ToolSpanIndex
from ccgate.edge.translate.errors import ApiError, invalid_request, rate_limited
from ccgate.edge.translate.stream import Event
from ccgate.edge.translate.target import Target
from ccgate.edge.translate.tokens import count_tokens
from ccgate.edge.usage import MemoryUsageStore, RedisUsageStore, Usage, UsageStore
from ccgate.limiter.api import (
    Denied,
    Lease,
    Limiter,
    LimiterUnavailable,
    Outcome,
    ProviderLimits,
    UserLimits,
)
from ccgate.shared.settings import Settings
from ccgate.shared.telemetry import tracing_configured

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
    trace: RequestTrace
    span: Span  # this attempt's `chat {model}` span
    tool_index: ToolSpanIndex
    usage: UsageStore | None = None
    usage_key: str = ""
    queued: float = 0.0
    started: float = field(default_factory=time.monotonic)
    error: ApiError | None = None
    completion: list[str] = field(default_factory=list)
    usage_scale: float = 1.0  # the client sees input usage scaled (context/fit.py)
    _closed: bool = False

    @property
    def info(self) -> CallInfo:
        return self.call.info

    def events(self) -> AsyncIterator[list[Event]]:
        return self.call.events() if self.usage_scale == 1.0 else self._scaled_events()

    async def _scaled_events(self) -> AsyncIterator[list[Event]]:
        async for events in self.call.events():
            yield scale_usage(events, self.usage_scale)

    def observe(self, events: list[Event]) -> None:
        """Completion text for the span — only when content capture is on."""
        if self.trace.capture_content:
            for name, data in events:
                if name == "content_block_delta" and data["delta"].get("type") == "text_delta":
                    self.completion.append(data["delta"]["text"])

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
            await self._record(outcome)

    async def _record(self, outcome: Outcome) -> None:
        await record_outcome(self, outcome)


def limits_from(settings: Settings) -> Any:
    def limits_for(provider: str) -> ProviderLimits:
        ps = settings.provider(provider)
        return ProviderLimits(ps.rate_limit, ps.rate_window, ps.max_concurrency, ps.daily_limit)

    return limits_for


class Gateway:
    def __init__(self, settings: Settings, limiter: Limiter) -> None:
        self.settings = settings
        self.router = Router(settings)
        self.context = ContextGate(settings, self.router)
        self.providers: dict[str, Provider] = configure_all(settings)
        self.limiter = limiter
        self.timeouts = Timeouts(
            connect=settings.http_connect_timeout,
            first_byte=settings.http_first_byte_timeout,
            idle=settings.http_read_timeout,
            write=settings.http_write_timeout,
        )
        self._clients: dict[str, UpstreamClient] = {}
        self.tracing = tracing_configured()
        self.tool_index: ToolSpanIndex = MemoryToolSpanIndex()
        self.usage: UsageStore = MemoryUsageStore()
        if settings.redis_url:
            # Imported here: redis-py (with its JWT and crypto imports) costs ~17 MB and
            # ~0.2 s at start-up, which a gateway on the in-memory limiter never needs.
            from ccgate.shared.redis import connect

            redis = connect(settings.redis_url, mode=settings.redis_mode)
            self.tool_index = RedisToolSpanIndex(redis)
            self.usage = RedisUsageStore(redis)
        self.tool_failures = ToolFailureLog()  # for the status page
        self.session_callers = SessionCallers()  # for `ccgate statusline`

    def client(self, provider: Provider) -> UpstreamClient:
        client = self._clients.get(provider.id)
        if client is None:
            client = self._clients[provider.id] = make_client(
                provider, self.timeouts, self.settings.http_max_connections, self.tracing
            )
        return client

    def pool_state(self) -> dict[str, dict[str, int]]:
        """Per provider: upstream connections in use, idle, and requests waiting for one."""
        return {provider: pool_counts(client) for provider, client in self._clients.items()}

    def warm_up(self) -> None:
        """Create the routed providers' connection pools now, not on the first request."""
        for routes in self.router.table().values():
            for route in routes:
                self.client(self.providers[route.provider])

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def open_message(
        self,
        req: dict[str, Any],
        user: str,
        input_estimate: int,
        headers: dict[str, str],
        rtrace: RequestTrace,
        user_limits: UserLimits | None = None,
    ) -> Opened:
        resolved = self.router.resolve(req["model"])
        fit = await self.context.fit(req, resolved, input_estimate)
        deadline = time.monotonic() + self.settings.limiter_queue_timeout
        last: ApiError | None = None
        attempts = 0
        for position, route in enumerate(fit.routes):
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
            is_last = position == len(fit.routes) - 1
            for _ in range(MAX_SAME_ROUTE_RETRIES):
                attempts += 1
                admitted = await self._admit(route, user, deadline, rtrace, user_limits)
                if isinstance(admitted, Denied):
                    last = rate_limited(
                        f"{route.provider} quota is in use ({admitted.reason}); "
                        f"retry in {admitted.retry_after:.0f}s",
                        admitted.retry_after,
                    )
                    break
                span = rtrace.child(
                    f"chat {route.model}",
                    SpanKind.CLIENT,
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": route.provider,
                        "gen_ai.request.model": route.model,
                        "gen_ai.request.max_tokens": int(req.get("max_tokens") or 0),
                        "ccgate.attempt": attempts,
                        "ccgate.fallback_position": position,
                    },
                )
                try:
                    with trace.use_span(span, end_on_exit=False):
                        call = await self._open(
                            provider, route, resolved, req, input_estimate, headers
                        )
                except UpstreamFailure as failure:
                    error = failure.error
                    outcome: Outcome = "rate_limited" if error.status == 429 else "error"
                    await self.limiter.release(admitted, outcome)
                    await self._record_failure(user, route, admitted.waited)
                    metrics.UPSTREAM_ERRORS.labels(route.provider, error.type).inc()
                    span.set_attribute("error.type", error.type)
                    span.set_status(Status(StatusCode.ERROR, error.message[:300]))
                    span.end()
                    if error.status == 429:
                        metrics.UPSTREAM_429.labels(route.provider).inc()
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
                    span.set_attribute("ccgate.client_disconnected", True)
                    span.end()
                    await asyncio.shield(self.limiter.release(admitted, "cancelled"))
                    raise
                return Opened(
                    call,
                    admitted,
                    route,
                    self.limiter,
                    attempts,
                    rtrace,
                    span,
                    self.tool_index,
                    usage=self.usage,
                    usage_key=user,
                    queued=admitted.waited,
                    usage_scale=fit.scale(route),
                )
        assert last is not None
        raise last

    async def _record_failure(self, user: str, route: Route, queued: float) -> None:
        await record_usage(self.usage, Usage(user, route.provider, route.model, 0, 0, True, queued))

    async def _admit(
        self,
        route: Route,
        user: str,
        deadline: float,
        rtrace: RequestTrace,
        user_limits: UserLimits | None,
    ) -> Lease | Denied:
        provider = route.provider
        span = rtrace.child("limiter.admit", attributes={"ccgate.provider": provider})
        started = time.monotonic()
        try:
            try:
                admitted = await self.limiter.admit(provider, user, deadline, user_limits)
            except LimiterUnavailable:
                raise ApiError(
                    503,
                    "api_error",
                    "the shared limiter is unreachable (LIMITER_FAILURE_MODE=closed)",
                ) from None
        except BaseException as exc:
            span.set_attribute(
                "ccgate.limiter.outcome", "error" if isinstance(exc, Exception) else "cancelled"
            )
            span.end()
            raise
        waited = time.monotonic() - started
        metrics.WAITS.labels(provider).observe(waited)
        if isinstance(admitted, Denied):
            metrics.ADMISSIONS.labels(provider, "denied").inc()
            await self._record_failure(user, route, waited)
            span.set_attributes(
                {
                    "ccgate.limiter.outcome": "denied",
                    "ccgate.limiter.reason": admitted.reason,
                    "ccgate.limiter.retry_after_s": admitted.retry_after,
                    "ccgate.limiter.wait_s": waited,
                }
            )
        else:
            metrics.ADMISSIONS.labels(
                provider, "queued" if admitted.queue_position or admitted.waited else "granted"
            ).inc()
            span.set_attributes(
                {
                    "ccgate.limiter.outcome": "granted",
                    "ccgate.limiter.wait_s": waited,
                    "ccgate.limiter.queue_position": admitted.queue_position,
                }
            )
        span.end()
        return admitted

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
        extra = self.context.backend_fields(route)
        if provider.api_format == "anthropic":
            return await anthropic_native.open_call(
                client, provider, {**req, **extra}, route.model, self.timeouts, headers
            )
        target = Target(
            route.provider, route.model, provider.spec.quirks, resolved.thinking_allowed
        )
        warnings: list[str] = []
        stream = bool(req.get("stream")) or not self.settings.ccgate_non_streaming_upstream
        timeouts = self.timeouts
        if not stream:  # no byte comes before the whole answer: allow it the read time too
            timeouts = replace(timeouts, first_byte=timeouts.first_byte + timeouts.idle)
        try:
            return await openai_compat.open_call(
                client,
                provider,
                req,
                target,
                timeouts,
                input_estimate,
                lambda: count_tokens(req),
                headers,
                warnings,
                stream_upstream=stream,
                extra_body=extra,
            )
        finally:
            for warning in warnings:
                log.warning("request to %s: %s", route.provider, warning)
