"""One trace per request: the server span (opened by `server_span.ServerSpans`), `limiter.admit`, one `chat {model}` span per upstream
attempt (OpenTelemetry GenAI conventions), the HTTP client span under it.

Failed tool calls are findable: a response's tool calls are remembered (tool_use id → the span
that issued them, in Redis or in memory); a later request carrying an `is_error` tool_result,
or leaving a tool call unanswered, gets `ccgate.tool_error = true`, an event per failed call
and a link back to that span. Prompt and completion text only with CCGATE_TRACE_CONTENT=true.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

log = logging.getLogger("ccgate.edge")
tracer = trace.get_tracer("ccgate.edge")

TOOL_SPAN_TTL = 24 * 3600


class ToolSpanIndex(Protocol):
    async def remember(self, calls: Iterable[str], ctx: SpanContext) -> None: ...

    async def lookup(self, ids: list[str]) -> dict[str, SpanContext]: ...


def _encode(ctx: SpanContext) -> str:
    return f"{ctx.trace_id:032x}:{ctx.span_id:016x}"


def _decode(raw: str) -> SpanContext | None:
    try:
        trace_id, span_id = raw.split(":")
        return SpanContext(
            int(trace_id, 16), int(span_id, 16), True, TraceFlags(TraceFlags.SAMPLED)
        )
    except ValueError:
        return None


class MemoryToolSpanIndex:
    """Embedded default: bounded, oldest entries dropped first, entries expire after a day."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._capacity = capacity

    async def remember(self, calls: Iterable[str], ctx: SpanContext) -> None:
        expires = time.monotonic() + TOOL_SPAN_TTL
        for call_id in calls:
            self._entries[call_id] = (expires, _encode(ctx))
            self._entries.move_to_end(call_id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    async def lookup(self, ids: list[str]) -> dict[str, SpanContext]:
        now = time.monotonic()
        found = {}
        for call_id in ids:
            entry = self._entries.get(call_id)
            if entry and entry[0] > now and (ctx := _decode(entry[1])):
                found[call_id] = ctx
        return found


class RedisToolSpanIndex:
    """Across replicas: `ccgate:tool:<id>` → trace:span, with a TTL."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def remember(self, calls: Iterable[str], ctx: SpanContext) -> None:
        value = _encode(ctx)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for call_id in calls:
                    pipe.set(f"ccgate:tool:{call_id}", value, ex=TOOL_SPAN_TTL)
                await pipe.execute()
        except Exception as exc:  # tracing must never fail a request
            log.debug("tool span index: %s", type(exc).__name__)

    async def lookup(self, ids: list[str]) -> dict[str, SpanContext]:
        if not ids:
            return {}
        try:
            # GETs in a pipeline, not MGET: on a cluster the ids hash to different slots.
            async with self._redis.pipeline(transaction=False) as pipe:
                for call_id in ids:
                    pipe.get(f"ccgate:tool:{call_id}")
                values = await pipe.execute()
        except Exception as exc:
            log.debug("tool span index: %s", type(exc).__name__)
            return {}
        found = {}
        for call_id, raw in zip(ids, values, strict=True):
            if raw and (ctx := _decode(raw.decode() if isinstance(raw, bytes) else raw)):
                found[call_id] = ctx
        return found


@dataclass(frozen=True)
class FailedCall:
    id: str
    name: str
    reason: str  # "is_error" | "unanswered"
    text: str


def failed_tool_calls(req: Mapping[str, Any]) -> list[FailedCall]:
    """Tool results marked is_error, and tool calls the next turn did not answer."""
    names: dict[str, str] = {}
    failed: list[FailedCall] = []
    messages = [m for m in req.get("messages") or [] if isinstance(m, dict)]
    for i, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        if message.get("role") == "assistant":
            calls = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
            for block in calls:
                names[str(block.get("id"))] = str(block.get("name"))
            answered = set()
            for later in messages[i + 1 : i + 2]:
                if isinstance(later.get("content"), list):
                    answered = {
                        str(b.get("tool_use_id"))
                        for b in later["content"]
                        if isinstance(b, dict) and b.get("type") == "tool_result"
                    }
            if i + 1 < len(messages):
                for block in calls:
                    if str(block.get("id")) not in answered:
                        failed.append(
                            FailedCall(
                                str(block.get("id")), str(block.get("name")), "unanswered", ""
                            )
                        )
        else:
            for block in content:
                if (
                    isinstance(block, dict)
                    and block.get("type") == "tool_result"
                    and block.get("is_error")
                ):
                    call_id = str(block.get("tool_use_id"))
                    body = block.get("content")
                    text = body if isinstance(body, str) else str(body)
                    failed.append(
                        FailedCall(call_id, names.get(call_id, ""), "is_error", text[:2000])
                    )
    return failed


@dataclass
class RequestTrace:
    """The server span of one request and what its children need. The span is the HTTP
    server span `ServerSpans` opened, and it ends there, when the response is done."""

    span: Span
    context: Context
    capture_content: bool

    def child(
        self,
        name: str,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        return tracer.start_span(name, context=self.context, kind=kind, attributes=attributes)

    def fail(self, error_type: str, message: str) -> None:
        self.span.set_attribute("error.type", error_type)
        self.span.set_status(Status(StatusCode.ERROR, message[:300]))


def annotate_caller(user: str, session: str | None, model: object) -> Span:
    """The current request's server span gets who asked and for which model."""
    span = trace.get_current_span()
    span.set_attributes({"user.id": user, "gen_ai.request.model": str(model)})
    if session:
        span.set_attribute("session.id", session)
    return span


async def start_request_trace(
    headers: Mapping[str, str],
    req: Mapping[str, Any],
    user: str,
    session: str | None,
    stream: bool,
    index: ToolSpanIndex,
    capture_content: bool,
) -> RequestTrace:
    failed = failed_tool_calls(req)
    span = annotate_caller(user, session, req.get("model"))
    span.set_attribute("ccgate.stream", stream)
    chat_user = headers.get("x-ccgate-chat-user")
    if chat_user:
        span.set_attribute("ccgate.chat_user", chat_user[:128])
    if failed and span.is_recording():  # the index is only read when spans are kept
        for call_id, ctx in (await index.lookup([f.id for f in failed])).items():
            span.add_link(ctx, {"gen_ai.tool.call.id": call_id})
    if failed:
        span.set_attribute("ccgate.tool_error", True)
        for call in failed:
            event = {
                "gen_ai.tool.call.id": call.id,
                "gen_ai.tool.name": call.name,
                "ccgate.reason": call.reason,
            }
            if capture_content and call.text:
                event["ccgate.tool.error_text"] = call.text
            span.add_event("ccgate.tool_error", event)
    if capture_content:
        messages = req.get("messages") or []
        if messages:
            span.set_attribute("gen_ai.prompt.last", str(messages[-1].get("content"))[:4000])
    return RequestTrace(span, trace.set_span_in_context(span), capture_content)
