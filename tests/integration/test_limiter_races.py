"""The Redis limiter when replies and grants cross: a grant that reaches this replica before
the reply to its own admit must still be the request's (the soak lost 17 of 180,000 so, each
queued to its 60 s deadline). Against a real Redis; the reordering is made by holding the admit
reply back, as a loaded network or event loop does."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from ccgate.limiter.api import Lease, ProviderLimits
from ccgate.limiter.redis import RedisLimiter
from tests.redis_server import RedisServer, redis_server


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


class LateReply(RedisLimiter):
    """Runs `meanwhile` after Redis has queued an admit and before its reply is taken."""

    meanwhile: Callable[[], Awaitable[None]] | None = None

    async def _run(self, name: str, provider: str, args: list[Any]) -> Any:
        result = await super()._run(name, provider, args)
        if name == "admit" and int(result[0]) == 2 and self.meanwhile is not None:
            hook, self.meanwhile = self.meanwhile, None
            await hook()
        return result


async def test_a_grant_that_comes_before_the_admit_reply_is_kept(redis: RedisServer) -> None:
    limiter = LateReply(redis.url, lambda _: ProviderLimits(0, 1.0, 1))
    provider = "r" + secrets.token_hex(4)
    try:
        first = await limiter.admit(provider, "a", time.monotonic() + 1)
        assert isinstance(first, Lease)
        # One queued admit first, so that this replica's grant listener is running.
        second = asyncio.create_task(limiter.admit(provider, "b", time.monotonic() + 5))
        await asyncio.sleep(0.2)
        await limiter.release(first, "ok")
        held = await asyncio.wait_for(second, 5)
        assert isinstance(held, Lease)

        async def release_and_let_the_listener_pop_the_grant() -> None:
            await limiter.release(held, "ok")
            await asyncio.sleep(0.5)

        limiter.meanwhile = release_and_let_the_listener_pop_the_grant
        started = time.monotonic()
        third = await limiter.admit(provider, "c", time.monotonic() + 4)
        assert isinstance(third, Lease), third  # before the fix: Denied (timeout) after 4 s
        assert time.monotonic() - started < 3
        status = (await limiter.status())["providers"][provider]
        assert status["in_flight"] == 1 and status["queued"] == 0
        await limiter.release(third, "ok")
    finally:
        await limiter.close()
