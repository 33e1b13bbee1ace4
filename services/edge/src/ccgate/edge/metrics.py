"""Prometheus metrics of the edge. Labels hold provider ids, model names from the operator's
configuration, status codes and error types — never a key, a user key or prompt text.

With `--workers N` the serve command sets PROMETHEUS_MULTIPROC_DIR before the workers start,
and `/metrics` aggregates every worker's samples.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60)

REQUESTS = Counter(
    "ccgate_requests_total", "Messages requests answered", ["provider", "model", "status"]
)
DURATION = Histogram(
    "ccgate_request_duration_seconds",
    "Time to the last byte",
    ["provider"],
    buckets=LATENCY_BUCKETS,
)
TTFT = Histogram(
    "ccgate_time_to_first_token_seconds",
    "Time to the first content from upstream",
    ["provider"],
    buckets=LATENCY_BUCKETS,
)
TOKENS = Counter("ccgate_tokens_total", "Tokens in and out", ["provider", "direction"])
UPSTREAM_ERRORS = Counter("ccgate_upstream_errors_total", "Upstream failures", ["provider", "type"])
UPSTREAM_429 = Counter(
    "ccgate_upstream_rate_limited_total", "429 answers from upstream", ["provider"]
)
SAVED = Counter(
    "ccgate_saved_requests_total", "Requests answered locally (quota savers)", ["saver"]
)
TOOL_ERRORS = Counter("ccgate_tool_errors_total", "Failed tool calls seen in requests", ["tool"])
KEY_REQUESTS = Counter(
    "ccgate_key_requests_total", "Requests per team key (its name)", ["key", "provider"]
)
KEY_TOKENS = Counter(
    "ccgate_key_tokens_total", "Tokens per team key (its name)", ["key", "direction"]
)
KEY_ERRORS = Counter(
    "ccgate_key_errors_total", "Failed requests per team key (its name)", ["key", "provider"]
)
KEY_QUEUED = Counter(
    "ccgate_key_queued_seconds_total", "Seconds queued in the limiter per team key", ["key"]
)
ADMISSIONS = Counter(
    "ccgate_limiter_admissions_total", "Limiter decisions", ["provider", "outcome"]
)
WAITS = Histogram(
    "ccgate_limiter_wait_seconds", "Time queued in the limiter", ["provider"], buckets=WAIT_BUCKETS
)
IN_FLIGHT = Gauge("ccgate_limiter_in_flight", "Leases out", ["provider"], multiprocess_mode="max")
QUEUE_DEPTH = Gauge(
    "ccgate_limiter_queue_depth", "Requests waiting", ["provider"], multiprocess_mode="max"
)

UPSTREAM_POOL = Gauge(
    "ccgate_upstream_connections",
    "Upstream connection pool: connections in use, idle, and requests waiting for one",
    ["provider", "state"],
    multiprocess_mode="max",
)


def refresh_pool_gauges(pools: dict[str, dict[str, int]]) -> None:
    for provider, counts in pools.items():
        for state, value in counts.items():
            UPSTREAM_POOL.labels(provider, state).set(value)


def refresh_limiter_gauges(status: dict[str, Any]) -> None:
    for provider, state in status.get("providers", {}).items():
        IN_FLIGHT.labels(provider).set(state.get("in_flight", 0))
        QUEUE_DEPTH.labels(provider).set(state.get("queued", 0))


def exposition() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
