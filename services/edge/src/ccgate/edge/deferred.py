"""A side task started only if still wanted after a delay.

Most requests are over in a few milliseconds; a task per request to watch for the client's
hang-up (and to ping a quiet stream) cost ~0.15 ms of time to first token on the hot path.
Deferred, the watch starts once the work has run `delay` seconds, and a hang-up sooner is
seen then."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

WATCH_AFTER = 0.05  # seconds of work before a client's hang-up is watched for


class DeferredTask:
    def __init__(self, delay: float, start: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._start = start
        self._task: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(delay, self._run)

    def _run(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._start())

    def cancel(self) -> None:
        self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
