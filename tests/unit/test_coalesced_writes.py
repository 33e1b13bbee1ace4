"""The edge's client transport sends the writes of one event-loop tick as one write."""

from __future__ import annotations

import asyncio
from typing import Any

from ccgate.edge.transport import CoalescedWrites


class Recording(asyncio.Transport):
    """A transport that records what reaches it (the socket side of CoalescedWrites)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.events.append("write")

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def abort(self) -> None:
        self.closing = True
        self.events.append("abort")

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0


async def next_tick() -> None:
    await asyncio.sleep(0)


async def test_writes_of_one_tick_go_out_as_one() -> None:
    raw = Recording()
    transport = CoalescedWrites(raw, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(bytearray(b"event: message_start\n"))
    transport.write(memoryview(b"0\r\n\r\n"))
    assert raw.writes == []
    assert transport.get_write_buffer_size() == 19 + 21 + 5
    await next_tick()
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\nevent: message_start\n0\r\n\r\n"]
    transport.write(b"next")
    await next_tick()
    assert raw.writes[1:] == [b"next"]


async def test_a_write_waits_no_longer_than_the_next_turn_of_the_loop() -> None:
    raw = Recording()
    transport = CoalescedWrites(raw, asyncio.get_running_loop())
    transport.write(b"head")
    loop = asyncio.get_running_loop()
    seen = loop.create_future()
    loop.call_soon(lambda: seen.set_result(list(raw.writes)))
    assert await seen == [b"head"]  # scheduled before the check: out by the next turn


async def test_close_sends_what_waits_first_and_abort_drops_it() -> None:
    raw = Recording()
    transport = CoalescedWrites(raw, asyncio.get_running_loop())
    transport.write(b"last bytes")
    transport.close()
    assert raw.events == ["write", "close"]
    assert raw.writes == [b"last bytes"]
    await next_tick()  # the scheduled flush finds nothing more to send
    assert raw.writes == [b"last bytes"]

    raw = Recording()
    transport = CoalescedWrites(raw, asyncio.get_running_loop())
    transport.write(b"never sent")
    transport.abort()
    await next_tick()
    assert raw.events == ["abort"]


async def test_nothing_is_written_to_a_closing_transport() -> None:
    raw = Recording()
    transport = CoalescedWrites(raw, asyncio.get_running_loop())
    transport.write(b"late")
    raw.closing = True  # the peer went away before the loop's next turn
    await next_tick()
    assert raw.writes == []
    assert transport.is_closing()
