"""The most recent failed tool calls this replica saw, for the status page: when, whose key,
which tool, why, and the trace to open. Never the tool's output (it is conversation text)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry.trace import Span

from ccgate.edge.tracing import FailedCall


@dataclass(frozen=True)
class ToolFailure:
    at: float  # time.time()
    key: str
    tool: str
    reason: str  # "is_error" | "unanswered"
    trace_id: str | None  # 32 hex digits, when the request was traced


class ToolFailureLog:
    """A bounded ring, newest last; per replica (the traces hold the whole history)."""

    def __init__(self, size: int = 50) -> None:
        self._items: deque[ToolFailure] = deque(maxlen=size)

    def record(self, key: str, calls: Iterable[FailedCall], span: Span) -> None:
        ctx = span.get_span_context()
        trace_id = f"{ctx.trace_id:032x}" if ctx.is_valid and span.is_recording() else None
        now = time.time()
        for call in calls:
            self._items.append(ToolFailure(now, key, call.name or "unknown", call.reason, trace_id))

    def recent(self) -> list[ToolFailure]:
        return list(reversed(self._items))
