"""What both adapters share: sending the request, mapping failures before the first byte, and
reading the body with its errors turned into Anthropic ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import aiohttp
import orjson

from ccgate.edge.probe import unreachable_error
from ccgate.edge.providers.table import Provider
from ccgate.edge.translate.errors import ApiError, from_upstream, overloaded
from ccgate.edge.translate.stream import Event

T = TypeVar("T")
UpstreamClient = aiohttp.ClientSession
UpstreamResponse = aiohttp.ClientResponse


@dataclass(frozen=True)
class Timeouts:
    connect: float
    first_byte: float
    idle: float
    write: float


class UpstreamFailure(Exception):
    """The upstream failed before its first byte; `retryable` says a fallback may be tried."""

    def __init__(self, error: ApiError, retryable: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable


@dataclass
class CallInfo:
    """What an upstream call learned, for usage records and traces."""

    response_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str | None = None
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    first_token_at: float | None = None


class ResponseCall:
    """An upstream call around one open response."""

    def __init__(self, response: UpstreamResponse) -> None:
        self._response = response
        self.info = CallInfo()

    async def aclose(self) -> None:
        await close_response(self._response)


class UpstreamCall(Protocol):
    info: CallInfo

    def events(self) -> AsyncIterator[list[Event]]: ...

    async def aclose(self) -> None: ...


def make_client(
    provider: Provider, timeouts: Timeouts, max_connections: int = 512, traced: bool = False
) -> UpstreamClient:
    """One pool per provider. aiohttp, not httpx: at 64 concurrent requests httpx (httpcore's
    pool walks every connection, with a readability syscall for each idle one, on every
    request) cost 2.3 ms of CPU per request against aiohttp's 0.2 ms (bench/README.md).
    HTTP/1.1 only, keep-alive connections reused."""
    del provider  # the same client settings for every provider (a spec may one day differ)
    trace_configs = None
    if traced:  # the HTTP client span, and traceparent to the backend
        from opentelemetry.instrumentation.aiohttp_client import create_trace_config

        trace_configs = [create_trace_config()]
    return aiohttp.ClientSession(
        # Keep as many idle connections as may be in use: less churn, fewer new connections.
        connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.connect, sock_read=timeouts.idle
        ),
        # The gateway serves many users over one client: a cookie one upstream answer sets
        # must not ride along on everybody's later requests.
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,  # a proxy from the environment must not silently reroute traffic
        trace_configs=trace_configs,
        raise_for_status=False,
    )


def pool_counts(client: UpstreamClient) -> dict[str, int]:
    """Connections in use and idle, and requests waiting for one (aiohttp keeps these private
    to its connector, so this reads them defensively)."""
    connector: Any = client.connector
    idle = sum(len(c) for c in getattr(connector, "_conns", {}).values())
    active = len(getattr(connector, "_acquired", ()))
    waiting = sum(len(w) for w in getattr(connector, "_waiters", {}).values())
    return {"active": active, "idle": idle, "waiting": waiting, "requests": active + waiting}


async def send(
    client: UpstreamClient,
    provider: Provider,
    body: dict[str, Any],
    headers: dict[str, str],
    timeouts: Timeouts,
) -> UpstreamResponse:
    """POST and wait for a 200 with the first-byte timeout; anything else is an UpstreamFailure."""
    sending = _start(client, provider, body, headers, timeouts)
    return await _answer(sending, provider, timeouts)


async def send_while(
    client: UpstreamClient,
    provider: Provider,
    body: dict[str, Any],
    headers: dict[str, str],
    timeouts: Timeouts,
    meanwhile: Callable[[], T],
) -> tuple[UpstreamResponse, T]:
    """`send`, running `meanwhile()` once the request is on its way: what the caller needs only
    after the answer's head is made while the backend works, not after its first byte."""
    sending = _start(client, provider, body, headers, timeouts)
    try:  # what `meanwhile` raises is the caller's, not the upstream's: outside `_answer`
        await _request_written()
        prepared = meanwhile()
    except BaseException:
        sending.task.add_done_callback(_close_abandoned)
        raise
    return await _answer(sending, provider, timeouts), prepared


@dataclass
class _Sending:
    task: asyncio.Future[UpstreamResponse]
    deadline: float  # loop time by which the answer's head must have come


def _start(
    client: UpstreamClient,
    provider: Provider,
    body: dict[str, Any],
    headers: dict[str, str],
    timeouts: Timeouts,
) -> _Sending:
    all_headers = {
        "content-type": "application/json",
        # Compressing a token stream only delays it; and the raw body is read as is.
        "accept-encoding": "identity",
        **provider.auth_headers(),
        **headers,
    }
    # A non-streamed answer sends nothing until it is whole: its reads may wait that long.
    read = timeouts.idle if body.get("stream") else max(timeouts.idle, timeouts.first_byte)
    # The send runs in its own task and is never cancelled from here: a send we stop waiting
    # for finishes by itself (bounded by the client's timeouts) and its response is closed.
    task = _detached(
        client.post(
            provider.url,
            data=orjson.dumps(body),
            headers=all_headers,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=timeouts.connect, sock_read=read
            ),
        )
    )
    return _Sending(task, asyncio.get_running_loop().time() + timeouts.first_byte)


async def _answer(sending: _Sending, provider: Provider, timeouts: Timeouts) -> UpstreamResponse:
    """The send's 200 response; a failure before it, or another status, as an UpstreamFailure."""
    try:
        async with asyncio.timeout_at(sending.deadline):
            response = await asyncio.shield(sending.task)
    except BaseException as exc:
        sending.task.add_done_callback(_close_abandoned)
        if isinstance(exc, aiohttp.ServerTimeoutError):  # before TimeoutError: it is one
            raise UpstreamFailure(
                overloaded(f"upstream {provider.id} timed out ({type(exc).__name__})"), True
            ) from exc
        if isinstance(exc, TimeoutError):
            raise UpstreamFailure(
                overloaded(f"upstream {provider.id} sent nothing within {timeouts.first_byte:g}s"),
                True,
            ) from exc
        if isinstance(exc, aiohttp.ClientConnectorError):  # nothing listens there: say so, at once
            raise UpstreamFailure(unreachable_error(provider, exc), True) from exc
        if isinstance(exc, aiohttp.ClientError | OSError):
            raise UpstreamFailure(
                overloaded(
                    f"cannot reach upstream {provider.id} at {provider.url} ({type(exc).__name__}); "
                    f"check {provider.spec.url_setting} and that the server is running"
                ),
                True,
            ) from exc
        raise
    if response.status != 200:
        raw = await asyncio.shield(_detached(_read_error_body(response)))
        error = from_upstream(
            response.status,
            raw,
            response.headers.get("retry-after"),
            provider.id,
            provider.spec.key_setting,
        )
        retryable = response.status in (408, 429) or response.status >= 500
        raise UpstreamFailure(error, retryable)
    return response


async def _request_written() -> None:
    """Two turns of the loop: the send task's first takes a pooled connection and buffers the
    head, and on Python 3.11 aiohttp writes the body (with the head) from a task of its own,
    started on the turn after (3.12 and later write it at once). Were a new connection still
    being opened, this only means `meanwhile` is not overlapped with the backend's work."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


_detached_tasks: set[asyncio.Future[Any]] = set()  # keeps them alive until they finish


def _detached(work: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """`work` in a task of its own, which a cancellation of the caller does not reach."""
    task = asyncio.ensure_future(work)
    _detached_tasks.add(task)
    task.add_done_callback(_detached_tasks.discard)
    return task


async def _read_error_body(response: UpstreamResponse) -> bytes:
    try:
        return await response.read()
    except (aiohttp.ClientError, TimeoutError):
        return b""
    finally:
        response.release()


def _close_abandoned(task: asyncio.Future[UpstreamResponse]) -> None:
    """Close the response of a send nobody waits for any more (and retrieve its error)."""
    if task.cancelled() or task.exception() is not None:
        return
    task.result().close()


async def body_chunks(response: UpstreamResponse, provider: str) -> AsyncIterator[bytes]:
    """The response body as it arrives; transport failures mid-stream become Anthropic errors.
    However the read ends (cancelled by a client's hang-up included), the response is
    released: its connection goes back to the pool when the body was read to the end and is
    closed otherwise — synchronously, so no cancellation can cut the bookkeeping short."""
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    except TimeoutError as exc:  # aiohttp's read timeout is one
        raise overloaded(f"upstream {provider} went silent mid-stream (idle timeout)") from exc
    except aiohttp.ClientError as exc:
        raise ApiError(
            500,
            "api_error",
            f"upstream {provider} dropped the connection mid-stream ({type(exc).__name__})",
        ) from exc
    finally:
        response.release()


async def close_response(response: UpstreamResponse) -> None:
    """Release the connection (back to the pool if the body was read whole, else closed)."""
    response.release()
