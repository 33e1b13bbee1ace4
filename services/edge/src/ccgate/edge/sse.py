"""Anthropic events → SSE bytes, with the constant parts of each frame encoded once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import orjson
from ccgate.edge.translate.errors import ApiError
from ccgate.edge.translate.stream import PING, Event

_PREFIX: dict[str, bytes] = {
    name: f"event: {name}\ndata: ".encode()
    for name in (
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    )
}


def encode(event: Event) -> bytes:
    name, data = event
    prefix = _PREFIX.get(name) or f"event: {name}\ndata: ".encode()
    return prefix + orjson.dumps(data) + b"\n\n"


def encode_all(events: list[Event]) -> bytes:
    return b"".join(encode(e) for e in events)


PING_FRAME = encode(PING)


def error_frame(error: ApiError) -> bytes:
    return encode(("error", error.body()))


T = TypeVar("T")
_END: Any = object()


async def with_pings(source: AsyncIterator[T], interval: float) -> AsyncIterator[T | None]:
    """Items from `source`; `None` whenever it has been silent for `interval` seconds.

    The source is read in its own task so that a silent upstream never has its read cancelled
    (cancelling an HTTP read mid-way would corrupt the stream); only the queue wait times out.
    """
    queue: asyncio.Queue[tuple[Any, BaseException | None]] = asyncio.Queue()

    async def produce() -> None:
        try:
            async for item in source:
                queue.put_nowait((item, None))
        except Exception as exc:
            queue.put_nowait((_END, exc))
        else:
            queue.put_nowait((_END, None))

    task = asyncio.create_task(produce())
    try:
        while True:
            try:
                async with asyncio.timeout(interval):
                    item, error = await queue.get()
            except TimeoutError:
                yield None
                continue
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        task.cancel()
