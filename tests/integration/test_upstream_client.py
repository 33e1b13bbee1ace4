"""The upstream client: its connection pool survives cancellations at any point of a streamed
read, and it keeps no cookies between users' requests.

A client that hangs up cancels the request's task wherever it is — with httpx that could
land inside httpcore's own close at the end of a body and lose the pool slot for good (the
soak ran the pool dry in minutes). The client is aiohttp now, whose release is synchronous;
the sweep below keeps both guarantees tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import orjson
import pytest

from ccgate.edge.providers.base import (
    Timeouts,
    UpstreamClient,
    body_chunks,
    close_response,
    make_client,
    pool_counts,
    send,
    send_while,
)
from ccgate.edge.providers.table import Provider, configure_all
from ccgate.shared.settings import Settings
from tests.conftest import backend_env
from tests.fakes.backend import FakeBackend, Turn

TIMEOUTS = Timeouts(connect=5, first_byte=5, idle=5, write=5)
BODY = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def provider_for(backend: FakeBackend, monkeypatch: pytest.MonkeyPatch) -> Provider:
    for name, value in backend_env(backend).items():
        monkeypatch.setenv(name, value)
    return configure_all(Settings.from_env())["openai_compat"]


async def settled(client: UpstreamClient) -> dict[str, int]:
    """The pool's counts once no connection is in use any more (or after 5 s, whatever they are)."""
    for _ in range(100):
        if not pool_counts(client)["active"]:
            break
        await asyncio.sleep(0.05)
    return pool_counts(client)


async def test_a_cancelled_read_at_any_point_gives_its_connection_back(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.default = Turn(text="a short answer in a few chunks", chunk_size=6)
    provider = provider_for(backend, monkeypatch)
    client = make_client(provider, TIMEOUTS, max_connections=8)
    try:
        # Cancel after 0, 1, 2, … loop turns: one of them lands in the read, one in the
        # close that follows the body's end, one after it.
        for turns in range(60):
            response = await send(client, provider, BODY, {}, TIMEOUTS)

            async def read_all(response: object = response) -> None:
                async for _ in body_chunks(response, provider.id):  # type: ignore[arg-type]
                    pass

            reader = asyncio.ensure_future(read_all())
            for _ in range(turns):
                await asyncio.sleep(0)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await close_response(response)  # what Opened.close does next
        await asyncio.sleep(0.2)  # detached closes finish
        counts = pool_counts(client)
        assert counts["active"] == 0, counts
        assert counts["requests"] == 0, counts
        # A read to the end leaves its connection idle for the next request.
        response = await send(client, provider, BODY, {}, TIMEOUTS)
        assert b"[DONE]" in b"".join([c async for c in body_chunks(response, provider.id)])
        after = pool_counts(client)
        assert after["active"] == 0 and after["idle"] >= 1, after
    finally:
        await client.close()


async def test_no_cookie_travels_from_one_request_to_the_next(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.script(Turn(text="first", headers={"set-cookie": "session=user-a; Path=/"}))
    provider = provider_for(backend, monkeypatch)
    client = make_client(provider, TIMEOUTS)
    try:
        for _ in range(2):
            response = await send(client, provider, BODY, {}, TIMEOUTS)
            async for _chunk in body_chunks(response, provider.id):
                pass
        assert backend.requests[0].headers.get("cookie") is None
        assert backend.requests[1].headers.get("cookie") is None  # user-a's cookie stayed behind
    finally:
        await client.close()


async def test_meanwhile_runs_with_the_request_already_on_the_wire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`send_while` overlaps its `meanwhile` with the backend's work: by the time it runs, the
    whole request (head and body) sits in the backend's socket. The backend here is a bare
    socket read without waiting, so a `meanwhile` run before the write finds nothing."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    monkeypatch.setenv("OPENAI_COMPAT_BASE_URL", f"http://127.0.0.1:{listener.getsockname()[1]}/v1")
    provider = configure_all(Settings.from_env())["openai_compat"]
    client = make_client(provider, TIMEOUTS)
    loop = asyncio.get_running_loop()
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 14\r\n\r\n"
    answer += b"data: [DONE]\n\n"
    body = orjson.dumps(BODY)
    try:
        # The first request opens the connection the second finds in the pool (as on the hot
        # path: a new connection is still connecting when `meanwhile` runs).
        sending = asyncio.ensure_future(send(client, provider, BODY, {}, TIMEOUTS))
        backend, _ = await loop.sock_accept(listener)
        received = b""
        while not received.endswith(body):
            received += await loop.sock_recv(backend, 65536)
        await loop.sock_sendall(backend, answer)
        response = await sending
        assert b"[DONE]" in b"".join([c async for c in body_chunks(response, provider.id)])

        def meanwhile() -> bytes:
            request = backend.recv(65536, socket.MSG_DONTWAIT)  # BlockingIOError: not sent yet
            backend.sendall(answer)
            return request

        response, request = await send_while(client, provider, BODY, {}, TIMEOUTS, meanwhile)
        assert request.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        assert request.endswith(body)
        await close_response(response)
        backend.close()
    finally:
        await client.close()
        listener.close()


async def test_a_send_cancelled_at_any_point_leaves_no_connection_in_use(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's hang-up cancels the request wherever its send is — before the write, in the
    `meanwhile`, waiting for the head: the abandoned send's response is closed all the same."""
    provider = provider_for(backend, monkeypatch)
    client = make_client(provider, TIMEOUTS, max_connections=8)
    try:
        for turns in range(12):
            sending = asyncio.ensure_future(
                send_while(client, provider, BODY, {}, TIMEOUTS, lambda: None)
            )
            for _ in range(turns):
                await asyncio.sleep(0)
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                response, _ = await sending  # a send that won the race is closed as Opened would
                await close_response(response)
        counts = await settled(client)  # the abandoned sends finish by themselves, then close
        assert counts["active"] == 0, counts
        assert counts["requests"] == 0, counts
    finally:
        await client.close()


async def test_what_meanwhile_raises_is_not_taken_for_an_upstream_failure(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OSError of the caller's own work must not read "cannot reach upstream" (a retryable
    failure that would send the request down the fallback chain); the send is closed."""
    provider = provider_for(backend, monkeypatch)
    client = make_client(provider, TIMEOUTS)

    def meanwhile() -> None:
        raise FileNotFoundError("the caller's own mistake")

    try:
        with pytest.raises(FileNotFoundError):
            await send_while(client, provider, BODY, {}, TIMEOUTS, meanwhile)
        counts = await settled(client)
        assert counts["active"] == 0, counts
    finally:
        await client.close()
