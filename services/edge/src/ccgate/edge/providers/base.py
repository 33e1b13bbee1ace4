"""What both adapters share: sending the request, mapping failures before the first byte, and
reading the body with its errors turned into Anthropic ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Coroutine
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from typing import Any, Protocol, TypeVar

import httpx
import orjson

from ccgate.edge.probe import unreachable_error
from ccgate.edge.providers.table import Provider
from ccgate.edge.translate.errors import ApiError, from_upstream, overloaded
from ccgate.edge.translate.stream import Event

T = TypeVar("T")


@dataclass(frozen=True)
class Timeouts:
    connect: float
    first_byte: float
    idle: float
    write: float


class UpstreamFailure(Exception):
    """The upstream failed before its first byte; `retryable` says a fallback may be tried."""

    def __init__(self, error: ApiError, retryable: bool, pool_exhausted: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable
        self.pool_exhausted = pool_exhausted


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
    """An upstream call around one open httpx response."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.info = CallInfo()

    async def aclose(self) -> None:
        await close_response(self._response)


class UpstreamCall(Protocol):
    info: CallInfo

    def events(self) -> AsyncIterator[list[Event]]: ...

    async def aclose(self) -> None: ...


class _NoCookies(CookieJar):
    """The gateway serves many users over one client: a cookie one upstream answer sets must
    not ride along on everybody's later requests."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def make_client(
    provider: Provider, timeouts: Timeouts, max_connections: int = 512
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        http2=provider.spec.http2,
        timeout=httpx.Timeout(
            connect=timeouts.connect,
            read=timeouts.idle,
            write=timeouts.write,
            pool=timeouts.connect,
        ),
        # Keep as many idle connections as may be in use: less churn, fewer new connections.
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        trust_env=False,  # a proxy from the environment must not silently reroute provider traffic
        cookies=_NoCookies(),
    )


def pool_counts(client: httpx.AsyncClient) -> dict[str, int]:
    """Connections in use and idle, and requests waiting for one (httpcore's pool is private
    to httpx, so this reads it defensively)."""
    pool = getattr(client._transport, "_pool", None)
    connections = list(getattr(pool, "connections", []))
    idle = sum(1 for c in connections if c.is_idle())
    requests = list(getattr(pool, "_requests", []))
    return {
        "active": len(connections) - idle,
        "idle": idle,
        "waiting": sum(1 for r in requests if r.is_queued()),
        "requests": len(requests),
    }


async def send(
    client: httpx.AsyncClient,
    provider: Provider,
    body: dict[str, Any],
    headers: dict[str, str],
    timeouts: Timeouts,
) -> httpx.Response:
    """POST and wait for a 200 with the first-byte timeout; anything else is an UpstreamFailure."""
    request = client.build_request(
        "POST",
        provider.url,
        content=orjson.dumps(body),
        headers={
            "content-type": "application/json",
            # Compressing a token stream only delays it; and the raw body is read as is.
            "accept-encoding": "identity",
            **provider.auth_headers(),
            **headers,
        },
    )
    # The send runs in its own task and is never cancelled from here: cancelling httpcore
    # while it acquires or opens a connection leaks the pool slot for good
    # (encode/httpcore#1093) and the pool ends in PoolTimeout. A send we stop waiting for
    # finishes by itself (bounded by the client's timeouts) and its response is closed.
    sending = _detached(client.send(request, stream=True))
    try:
        async with asyncio.timeout(timeouts.first_byte):
            response = await asyncio.shield(sending)
    except BaseException as exc:
        sending.add_done_callback(_close_abandoned)
        if isinstance(exc, TimeoutError):
            raise UpstreamFailure(
                overloaded(f"upstream {provider.id} sent nothing within {timeouts.first_byte:g}s"),
                True,
            ) from exc
        if isinstance(exc, httpx.TimeoutException):
            raise UpstreamFailure(
                overloaded(f"upstream {provider.id} timed out ({type(exc).__name__})"),
                True,
                pool_exhausted=isinstance(exc, httpx.PoolTimeout),
            ) from exc
        if isinstance(exc, httpx.ConnectError):  # nothing listens there: say so, at once
            raise UpstreamFailure(unreachable_error(provider, exc), True) from exc
        if isinstance(exc, httpx.TransportError):
            raise UpstreamFailure(
                overloaded(
                    f"cannot reach upstream {provider.id} at {provider.url} ({type(exc).__name__}); "
                    f"check {provider.spec.url_setting} and that the server is running"
                ),
                True,
            ) from exc
        raise
    if response.status_code != 200:
        raw = await asyncio.shield(_detached(_read_error_body(response)))
        error = from_upstream(
            response.status_code,
            raw,
            response.headers.get("retry-after"),
            provider.id,
            provider.spec.key_setting,
        )
        retryable = response.status_code in (408, 429) or response.status_code >= 500
        raise UpstreamFailure(error, retryable)
    return response


_detached_tasks: set[asyncio.Future[Any]] = set()  # keeps them alive until they finish


def _detached(work: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """`work` in a task of its own, which a cancellation of the caller does not reach."""
    task = asyncio.ensure_future(work)
    _detached_tasks.add(task)
    task.add_done_callback(_detached_tasks.discard)
    return task


async def _read_error_body(response: httpx.Response) -> bytes:
    try:
        return await response.aread()
    except httpx.HTTPError:
        return b""
    finally:
        await response.aclose()


def _close_abandoned(task: asyncio.Future[httpx.Response]) -> None:
    """Close the response of a send nobody waits for any more (and retrieve its error)."""
    if task.cancelled() or task.exception() is not None:
        return
    _detached(task.result().aclose())


async def body_chunks(response: httpx.Response, provider: str) -> AsyncIterator[bytes]:
    """The response body; transport failures mid-stream become Anthropic errors.

    The body is read from the transport stream rather than `aiter_raw()`, which closes the
    response itself at the end of the body — in this task, where the client's disconnect can
    cancel it. A cancellation landing inside httpcore's close skips the pool's bookkeeping and
    the connection slot is lost for good (the soak's PoolTimeouts). Here the close runs
    shielded in its own task, and a cancellation during a read is delivered once, before
    httpcore's own cleanup starts.
    """
    identity = response.headers.get("content-encoding", "identity") == "identity"
    # Compressed bodies (we ask for identity; a server may still compress) need httpx's decoders.
    stream = response.stream
    chunks: AsyncIterable[bytes] = (
        stream if identity and isinstance(stream, httpx.AsyncByteStream) else response.aiter_bytes()
    )
    try:
        async for chunk in chunks:
            yield chunk
    except httpx.TimeoutException as exc:
        raise overloaded(f"upstream {provider} went silent mid-stream (idle timeout)") from exc
    except httpx.HTTPError as exc:
        raise ApiError(
            500,
            "api_error",
            f"upstream {provider} dropped the connection mid-stream ({type(exc).__name__})",
        ) from exc
    finally:
        await close_response(response)


async def close_response(response: httpx.Response) -> None:
    """Close in a task of its own, so that a cancellation of ours cannot interrupt it."""
    await asyncio.shield(_detached(response.aclose()))
