"""A response leaves the edge in as few socket writes as its data allows: the writes of one
event-loop tick are one (transport.CoalescedWrites). On loopback one write reaches a waiting
reader whole, so a reader's first receive shows what went out together. The edge runs as
`ccgate serve` in a process of its own: in the test's process the reader could not run
between two writes."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import orjson
import pytest

from tests.conftest import backend_env
from tests.fakes.backend import FakeBackend
from tests.fakes.server import free_port
from tests.serving import start_serve, wait_healthy

QUOTA_PROBE = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]}
REQUEST = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def served(backend: FakeBackend) -> Iterator[int]:
    port = free_port()
    process = start_serve("--port", str(port), env=backend_env(backend))
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def first_receive(port: int, body: dict[str, object]) -> bytes:
    data = orjson.dumps(body)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(data), data)
        )
        return sock.recv(1 << 20)


def test_a_whole_answer_is_one_write(served: int) -> None:
    for _ in range(5):
        head, _, body = first_receive(served, QUOTA_PROBE).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        assert len(body) == length  # the head and all of the body in the first receive
        assert orjson.loads(body)["content"][0]["text"] == "Quota check passed."


def test_a_stream_head_comes_with_its_message_start(served: int) -> None:
    for _ in range(5):
        head, _, body = first_receive(served, {**REQUEST, "stream": True}).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
        assert b"event: message_start" in body
