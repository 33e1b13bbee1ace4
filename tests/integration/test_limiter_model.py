"""Hypothesis stateful test: both limiters against one model of the rules.

The window is an hour, so nothing refills during a run and every decision is determined:
an admission that may not wait is granted exactly when nothing is paused, fewer than
`CONCURRENCY` leases are out and fewer than `RATE` grants were made.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ccgate.limiter.api import Denied, Lease, Limiter, ProviderLimits
from ccgate.limiter.memory import MemoryLimiter
from ccgate.limiter.redis import RedisLimiter
from tests.redis_server import RedisServer, redis_server

RATE, CONCURRENCY = 5, 2
LIMITS = ProviderLimits(RATE, 3600.0, CONCURRENCY)


class LimiterModel(RuleBasedStateMachine):
    make: Any = None  # set per implementation below

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.limiter: Limiter = self.make()
        self.provider = "m" + secrets.token_hex(4)
        self.held: list[Lease] = []
        self.grants = 0
        self.paused = False

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @rule(user=st.sampled_from(["ana", "bo", "cy"]))
    def admit(self, user: str) -> None:
        result = self.run(self.limiter.admit(self.provider, user, time.monotonic()))
        allowed = not self.paused and len(self.held) < CONCURRENCY and self.grants < RATE
        assert isinstance(result, Lease) == allowed, (result, self.held, self.grants, self.paused)
        if isinstance(result, Lease):
            self.held.append(result)
            self.grants += 1
        else:
            assert isinstance(result, Denied) and result.retry_after > 0

    @precondition(lambda self: self.held)
    @rule(data=st.data(), outcome=st.sampled_from(["ok", "error", "cancelled"]))
    def release(self, data: st.DataObject, outcome: str) -> None:
        lease = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        self.run(self.limiter.release(lease, outcome))  # type: ignore[arg-type]

    @precondition(lambda self: not self.paused)
    @rule()
    def provider_says_429(self) -> None:
        self.run(self.limiter.report_429(self.provider, 3600))
        self.paused = True

    @invariant()
    def in_flight_matches(self) -> None:
        status = self.run(self.limiter.status())["providers"].get(self.provider)
        assert (status["in_flight"] if status else 0) == len(self.held)

    def teardown(self) -> None:
        self.run(self.limiter.close())
        self.loop.close()


@pytest.fixture(scope="module")
def redis_url() -> Any:
    with redis_server() as server:
        yield server


def test_memory_limiter_follows_the_model() -> None:
    class Memory(LimiterModel):
        make = staticmethod(lambda: MemoryLimiter(lambda _: LIMITS))

    settings(max_examples=40, stateful_step_count=25, deadline=None)(Memory).TestCase().runTest()


def test_redis_limiter_follows_the_model(redis_url: RedisServer) -> None:
    class Redis(LimiterModel):
        make = staticmethod(lambda: RedisLimiter(redis_url.url, lambda _: LIMITS))

    settings(max_examples=25, stateful_step_count=25, deadline=None)(Redis).TestCase().runTest()
