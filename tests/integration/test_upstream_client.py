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

import pytest

from ccgate.edge.providers.base import (
    Timeouts,
    body_chunks,
    close_response,
    make_client,
    pool_counts,
    send,
)
from ccgate.edge.providers.table import configure_all
from ccgate.shared.settings import Settings
from tests.conftest import backend_env
from tests.fakes.backend import FakeBackend, Turn

TIMEOUTS = Timeouts(connect=5, first_byte=5, idle=5, write=5)
BODY = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


async def test_a_cancelled_read_at_any_point_gives_its_connection_back(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.default = Turn(text="a short answer in a few chunks", chunk_size=6)
    for name, value in backend_env(backend).items():
        monkeypatch.setenv(name, value)
    provider = configure_all(Settings.from_env())["openai_compat"]
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
    for name, value in backend_env(backend).items():
        monkeypatch.setenv(name, value)
    provider = configure_all(Settings.from_env())["openai_compat"]
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
