"""Anthropic events → SSE bytes, with the constant parts of each frame encoded once."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response

from ccgate.edge.deferred import WATCH_AFTER, DeferredTask
from ccgate.edge.translate.errors import ApiError
from ccgate.edge.translate.stream import PING, Event
from ccgate.limiter.api import Outcome

if TYPE_CHECKING:
    from ccgate.edge.gateway import Opened

log = logging.getLogger("ccgate.edge")

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


SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _stream_head(media_type: str) -> list[tuple[bytes, bytes]]:
    """A stream's response headers as Starlette encodes them, without a content-length."""
    response = Response(b"", headers=SSE_HEADERS, media_type=media_type)
    del response.headers["content-length"]
    return response.raw_headers


class EventStreamResponse(Response):
    """Anthropic events from an open upstream call, written straight to the ASGI `send`.

    No queue and no task per chunk: the upstream is read in the request's own task; one side
    task (deferred: only for a stream still open after WATCH_AFTER) watches for the client
    going away, which cancels the upstream read at once, and sends a `ping` when nothing was
    written for `ping_interval` seconds. The
    limiter lease is released exactly once, whatever happens.
    """

    media_type = "text/event-stream"
    _HEAD = _stream_head(media_type)  # the same for every stream: encoded once, not per request

    def __init__(self, opened: Opened, ping_interval: float) -> None:
        self.status_code = 200
        self.body = b""
        self.background = None
        self.raw_headers = list(self._HEAD)
        self._opened = opened
        self._interval = ping_interval

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        loop = asyncio.get_running_loop()
        lock = asyncio.Lock()
        last_sent = loop.time()
        main = asyncio.current_task()
        disconnected = False
        outcome: Outcome = "error"

        async def write(data: bytes) -> None:
            nonlocal last_sent
            async with lock:
                await send({"type": "http.response.body", "body": data, "more_body": True})
            last_sent = loop.time()

        async def watch_and_ping() -> None:
            # One side task for both jobs (a task per job was ~1 KB more per open stream):
            # wait for the client's disconnect until the next ping is due, then ping.
            nonlocal disconnected
            while True:
                delay = last_sent + self._interval - loop.time()
                if delay <= 0:
                    await write(PING_FRAME)
                    continue
                try:
                    async with asyncio.timeout(delay):
                        message = await receive()
                except TimeoutError:
                    continue
                if message["type"] == "http.disconnect":
                    break
            disconnected = True
            assert main is not None
            main.cancel()

        # Deferred: a stream over within WATCH_AFTER needs neither a ping nor a watch.
        side = DeferredTask(min(WATCH_AFTER, self._interval), watch_and_ping)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for events in self._opened.events():
                await write(encode_all(events))
                self._opened.observe(events)
            outcome = "ok"
        except ApiError as error:
            self._opened.error = error
            # After the first byte the status is sent: the error travels as an SSE event and
            # the stream ends without message_stop, so Claude Code retries instead of
            # trusting a truncated answer.
            log.warning("stream from %s failed: %s", self._opened.route.provider, error)
            await write(error_frame(error))
        except asyncio.CancelledError:
            outcome = "cancelled"
            if not disconnected:
                raise
        finally:
            side.cancel()
            await self._opened.close(outcome)
        if not disconnected:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
