"""The edge's HTTP/1.1 protocol: uvicorn's httptools protocol with limits on the request head.

httptools itself takes a request line and headers of any size and any count (a 1 MB header
was accepted), and uvicorn gives a client all the time it wants to send them — a slow-drip
client (slowloris) holds a connection for free. Here the head is capped in bytes and in
header count, and must arrive within a time limit; each refusal is an Anthropic-shaped error
that names the limit, and the connection is closed. Any other malformed request also gets an
Anthropic-shaped 400 instead of uvicorn's plain-text one.

Writes are coalesced per event-loop tick (`CoalescedWrites`): uvicorn writes a response's head,
each body message and the chunked terminator separately, and each write is a syscall that on
loopback also runs the receiver's TCP path — about half the edge's CPU per streamed request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ccgate.edge.translate.errors import ApiError, invalid_request, too_slow

MAX_HEAD_BYTES = 32 * 1024  # request line + headers (Claude Code sends about 2 KiB)
MAX_HEADERS = 100
HEAD_TIMEOUT = 10.0  # seconds from a connection's (or a request's) first byte to its last header

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class CoalescedWrites(asyncio.Transport):
    """A transport whose writes in one event-loop tick go out as one: the head and first body of
    a response, the events of one upstream read and the chunked terminator. Data waits at most
    until the loop's next turn; closing (or an EOF) sends what waits first."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(d) for d in self._pending)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class HeadRefused(Exception):
    """Raised inside a parser callback; httptools turns it into a parser error."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    _head_bytes = 0
    _refusal: ApiError | None = None
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.transport = CoalescedWrites(transport, self.loop)
        self._arm_head_timer()  # a connection that never sends a full head is cut off too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    # -- parser callbacks ------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._refusal = None
        if self._head_timer is None:
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        if len(self.headers) >= MAX_HEADERS:
            self._refuse(
                431,
                f"the request has more than {MAX_HEADERS} headers; send fewer "
                "(check ANTHROPIC_CUSTOM_HEADERS)",
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        super().on_headers_complete()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(
                431,
                f"the request line and headers are over {MAX_HEAD_BYTES} bytes; send smaller "
                "headers (check ANTHROPIC_CUSTOM_HEADERS and cookies)",
            )

    def _refuse(self, status: int, message: str) -> None:
        self._refusal = ApiError(status, "invalid_request_error", message)
        raise HeadRefused(message)

    # -- answers -----------------------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to any parse failure, ours included."""
        error = self._refusal or invalid_request("the request is not valid HTTP/1.1")
        self._send_error_and_close(error)

    def _send_error_and_close(self, error: ApiError) -> None:
        if self.transport.is_closing():
            return
        body = orjson.dumps(error.body())
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n"
        ) % (error.status, _REASONS.get(error.status, b"Error"), len(body))
        self.transport.write(head + body)
        self.transport.close()

    # -- the head timer ----------------------------------------------------------------------------
    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # a response is still being written; judge the next head later
            return
        self._send_error_and_close(too_slow("headers", HEAD_TIMEOUT))
