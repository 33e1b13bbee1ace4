"""What a finished upstream call leaves behind: Prometheus samples, the key's usage record, and
the attributes and events of its `chat {model}` span (which then ends; the request's ends with the response)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Status, StatusCode

from ccgate.edge import metrics
from ccgate.edge.usage import Usage, UsageStore
from ccgate.limiter.api import Outcome

if TYPE_CHECKING:
    from ccgate.edge.gateway import Opened

log = logging.getLogger("ccgate.edge")


async def record_usage(store: UsageStore, usage: Usage) -> None:
    """The key's usage record and its Prometheus counters — for answered requests and for
    those that failed before an answer (limiter denial, upstream error) alike."""
    metrics.KEY_REQUESTS.labels(usage.key, usage.provider).inc()
    metrics.KEY_TOKENS.labels(usage.key, "input").inc(usage.input_tokens)
    metrics.KEY_TOKENS.labels(usage.key, "output").inc(usage.output_tokens)
    if usage.error:
        metrics.KEY_ERRORS.labels(usage.key, usage.provider).inc()
    if usage.queued:
        metrics.KEY_QUEUED.labels(usage.key).inc(usage.queued)
    try:
        await store.record(usage)
    except Exception as exc:  # a usage record must never fail the request
        log.warning("usage record failed: %s", type(exc).__name__)


async def record_outcome(opened: Opened, outcome: Outcome) -> None:
    info, span, provider = opened.info, opened.span, opened.route.provider
    now = time.monotonic()
    status = "200" if outcome == "ok" else ("499" if outcome == "cancelled" else "error")
    metrics.REQUESTS.labels(provider, opened.route.model, status).inc()
    metrics.DURATION.labels(provider).observe(now - opened.started)
    if info.first_token_at is not None:
        metrics.TTFT.labels(provider).observe(info.first_token_at - opened.started)
    if info.input_tokens:
        metrics.TOKENS.labels(provider, "input").inc(info.input_tokens)
    if info.output_tokens:
        metrics.TOKENS.labels(provider, "output").inc(info.output_tokens)
    if opened.usage is not None:
        await record_usage(
            opened.usage,
            Usage(
                opened.usage_key,
                provider,
                opened.route.model,
                info.input_tokens or 0,
                info.output_tokens or 0,
                outcome == "error",
                opened.queued,
            ),
        )
    if not span.is_recording():
        span.end()
        return
    wall_ns = time.time_ns()
    if info.first_token_at is not None:
        at = wall_ns - int((now - info.first_token_at) * 1e9)
        span.add_event("gen_ai.first_token", timestamp=at)
    attributes: dict[str, Any] = {
        "gen_ai.response.model": info.response_model or opened.route.model,
        "gen_ai.usage.input_tokens": info.input_tokens or 0,
        "gen_ai.usage.output_tokens": info.output_tokens or 0,
    }
    if info.stop_reason:
        attributes["gen_ai.response.finish_reasons"] = [info.stop_reason]
    if info.tool_calls:
        attributes["gen_ai.response.tool_calls"] = [name for _, name in info.tool_calls]
        for call_id, name in info.tool_calls:
            span.add_event(
                "gen_ai.tool.call", {"gen_ai.tool.name": name, "gen_ai.tool.call.id": call_id}
            )
        await opened.tool_index.remember(
            [cid for cid, _ in info.tool_calls], span.get_span_context()
        )
    if opened.completion:
        attributes["gen_ai.completion"] = "".join(opened.completion)[:8000]
    span.set_attributes(attributes)
    span.add_event("gen_ai.stream.end", {"ccgate.outcome": outcome})
    if outcome == "cancelled":
        span.set_attribute("ccgate.client_disconnected", True)
        opened.trace.span.set_attribute("ccgate.client_disconnected", True)
    elif opened.error is not None:
        span.set_attribute("error.type", opened.error.type)
        span.set_status(Status(StatusCode.ERROR, opened.error.message[:300]))
        opened.trace.fail(opened.error.type, opened.error.message)
    span.end()
