"""`POST /v1/messages`: parse, check, save quota, open upstream, answer as SSE or one JSON."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ccgate.edge import llamacpp, metrics, savers
from ccgate.edge.auth import caller_identity, session_id
from ccgate.edge.deferred import WATCH_AFTER, DeferredTask
from ccgate.edge.gateway import Gateway, Opened
from ccgate.edge.keys import KeyRecord
from ccgate.edge.server_tools import hook as server_tools
from ccgate.edge.sse import SSE_HEADERS, EventStreamResponse, encode_all
from ccgate.edge.tracing import annotate_caller, failed_tool_calls, start_request_trace
from ccgate.edge.translate.assemble import MessageAssembler
from ccgate.edge.translate.errors import ApiError, invalid_request, too_slow
from ccgate.edge.translate.stream import StreamOptions, StreamTranslator
from ccgate.edge.translate.tokens import count_tokens, estimate_tokens
from ccgate.edge.translate.validate import check_messages_request
from ccgate.limiter.api import Outcome, UserLimits
from ccgate.limiter.memory import seconds_to_utc_midnight

log = logging.getLogger("ccgate.edge")

MAX_BODY_BYTES = 32 * 1024 * 1024  # Anthropic's own request limit
BODY_TIMEOUT = 30.0  # seconds to receive the whole body: a slow-drip client is cut off

T = TypeVar("T")


def error_response(error: ApiError) -> Response:
    return Response(
        orjson.dumps(error.body()),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers(),
    )


def too_large() -> ApiError:
    return ApiError(413, "request_too_large", f"request body is over {MAX_BODY_BYTES} bytes")


async def read_json(request: Request) -> tuple[Any, int]:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise too_large()
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            raw = await read_capped(request)
    except TimeoutError:
        raise too_slow("body", BODY_TIMEOUT) from None
    if not raw:
        raise invalid_request("request body is empty; send a JSON Messages request")
    try:
        return orjson.loads(raw), len(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc).lower():
            raise invalid_request("request JSON is nested too deeply (over 1024 levels)") from None
        raise invalid_request(f"request body is not valid JSON: {exc}") from None


async def read_capped(request: Request) -> bytes:
    """The body, refused as soon as it passes MAX_BODY_BYTES (chunked bodies have no length)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


class ClientGone(Exception):
    """The client hung up before its answer started: nothing to send, nothing to log."""


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work` in this task; if the client goes away meanwhile (watched for once the work
    has run WATCH_AFTER seconds; see deferred.py), the work is cancelled and ClientGone raised."""
    main = asyncio.current_task()
    assert main is not None
    working = True
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                if working:
                    gone = True
                    main.cancel()
                return

    watcher = DeferredTask(WATCH_AFTER, watch)
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        main.uncancel()
        raise ClientGone from None
    finally:
        working = False
        watcher.cancel()


async def collect(opened: Opened) -> dict[str, Any]:
    assembler = MessageAssembler()
    outcome: Outcome = "error"
    try:
        async for events in opened.events():
            assembler.add(events)
            opened.observe(events)
        outcome = "ok"
        return assembler.message
    except ApiError as error:
        opened.error = error
        raise
    except BaseException as exc:
        outcome = "error" if isinstance(exc, Exception) else "cancelled"
        raise
    finally:
        await opened.close(outcome)


def local_events(req: dict[str, Any], text: str, input_tokens: int) -> list[Any]:
    """A saver's answer, through the same translator as any backend's."""
    translator = StreamTranslator(StreamOptions(model=req["model"], input_tokens=input_tokens))
    chunk = {"choices": [{"delta": {"content": text}, "finish_reason": "stop"}]}
    return translator.start() + translator.feed(chunk) + translator.finish()


def check_key(record: KeyRecord | None, req: dict[str, Any], gateway: Gateway) -> UserLimits | None:
    """What the caller's key may do: its models (403 otherwise) and its own limits."""
    if record is None:
        return None
    routes = gateway.router.resolve(req["model"]).routes
    if not record.allows(req["model"], *(f"{r.provider}/{r.model}" for r in routes)):
        raise ApiError(
            403,
            "permission_error",
            f"key {record.name!r} may not use model {req['model']!r} (allowed: {record.models})",
        )
    # A chat-users key's chat users are queued each as themselves (the fair queue shares the
    # key between them) and counted together in the key's bucket: its limits hold in total.
    return UserLimits(record.rpm, record.max_concurrency, record.name if record.chat_users else "")


async def check_daily_tokens(record: KeyRecord | None, gateway: Gateway) -> None:
    if record is None or not record.daily_tokens:
        return
    used = await gateway.usage.tokens_today(record.name)
    if used >= record.daily_tokens:
        raise ApiError(
            429,
            "rate_limit_error",
            f"key {record.name!r} used its {record.daily_tokens} tokens for today (UTC)",
            seconds_to_utc_midnight(),
        )


async def handle_messages(request: Request, gateway: Gateway, record: KeyRecord | None) -> Response:
    key_name = record.name if record else None
    body, size = await read_json(request)
    req = check_messages_request(body)
    stream = bool(req.get("stream"))
    estimate = estimate_tokens(size)

    saved = savers.local_answer(req, gateway.settings)
    if saved is not None:
        name, text = saved
        metrics.SAVED.labels(name).inc()
        events = local_events(req, text, estimate)
        if stream:
            return Response(encode_all(events), media_type="text/event-stream", headers=SSE_HEADERS)
        assembler = MessageAssembler()
        assembler.add(events)
        return Response(orjson.dumps(assembler.message), media_type="application/json")

    user_limits = check_key(record, req, gateway)
    await check_daily_tokens(record, gateway)
    client_host = request.client.host if request.client else None
    user = caller_identity(
        req, key_name, client_host, request.headers, bool(record and record.chat_users)
    )
    session = session_id(req, request.headers)
    gateway.session_callers.remember(session, user)
    rtrace = await start_request_trace(
        request.headers,
        req,
        user,
        session,
        stream,
        gateway.tool_index,
        gateway.settings.ccgate_trace_content,
    )
    failed = failed_tool_calls(req)
    for call in failed:
        metrics.TOOL_ERRORS.labels(call.name or "unknown").inc()
    gateway.tool_failures.record(user, failed, rtrace.span)
    try:
        opened = await until_disconnect(
            request,
            server_tools.open_message(gateway, req, user, estimate, {}, rtrace, user_limits),
        )
    except ApiError as error:
        metrics.REQUESTS.labels("none", "none", str(error.status)).inc()
        rtrace.fail(error.type, error.message)
        raise
    except BaseException:
        rtrace.span.set_attribute("ccgate.client_disconnected", True)
        raise
    if stream:
        return EventStreamResponse(opened, gateway.settings.ping_interval)
    message = await until_disconnect(request, collect(opened))
    return Response(orjson.dumps(message), media_type="application/json")


async def handle_count_tokens(
    request: Request, record: KeyRecord | None, gateway: Gateway
) -> Response:
    body, _ = await read_json(request)
    req = check_messages_request(body, need_max_tokens=False)
    client_host = request.client.host if request.client else None
    user = caller_identity(req, record.name if record else None, client_host, request.headers)
    annotate_caller(user, session_id(req, request.headers), req.get("model"))
    tokens = await llamacpp.count_on_backend(gateway, req)  # exact where the backend can tell
    if tokens is None:
        tokens = await asyncio.to_thread(count_tokens, req)
    # in the units the request's usage is reported in (context/fit.py)
    tokens = round(tokens * gateway.context.count_scale(req))
    return Response(orjson.dumps({"input_tokens": tokens}), media_type="application/json")
