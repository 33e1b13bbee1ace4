"""Hostile input gets a clear Anthropic-shaped 4xx and holds no slot; operational routes can
move to their own port."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ccgate.edge import messages, transport
from tests.conftest import Edge
from tests.fakes.server import free_port
from tests.serving import start_serve, wait_healthy


def read_response(sock: socket.socket) -> str:
    """A whole HTTP response from a raw socket: headers, then content-length bytes of body
    (they may come in separate segments)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode()


def assert_anthropic_error(response: httpx.Response, status: int, needle: str) -> None:
    assert response.status_code == status, response.text
    data = response.json()
    assert data["type"] == "error" and isinstance(data["error"]["type"], str)
    assert needle in data["error"]["message"]


def test_oversized_bodies_are_refused_without_reading_them_whole(edge: Edge) -> None:
    host, port = edge.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 67108864\r\n\r\n{"
        )
        reply = read_response(sock)
    assert reply.startswith("HTTP/1.1 413") and "request_too_large" in reply

    def chunks() -> Iterator[bytes]:  # chunked: no length to judge by up front
        yield b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"x" * (1024 * 1024)
        yield b'"}]}'

    response = httpx.post(edge.url + "/v1/messages", content=chunks(), timeout=60)
    assert_anthropic_error(response, 413, "over")
    assert edge.in_flight() == 0


def test_deep_nesting_and_too_many_messages(edge: Edge) -> None:
    deep = b'{"model": "m", "max_tokens": 5, "messages": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    assert_anthropic_error(
        httpx.post(edge.url + "/v1/messages", content=deep), 400, "nested too deeply"
    )
    many = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}] * 10_001}
    assert_anthropic_error(
        httpx.post(edge.url + "/v1/messages", json=many, timeout=30), 400, "/compact"
    )
    tools = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": f"t{i}", "input_schema": {"type": "object"}} for i in range(1001)],
    }
    assert_anthropic_error(
        httpx.post(edge.url + "/v1/messages", json=tools, timeout=30), 400, "tools"
    )
    assert edge.in_flight() == 0


def test_slow_body_is_cut_off(edge: Edge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages, "BODY_TIMEOUT", 0.5)
    host, port = edge.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"model"'
        )
        started = time.monotonic()
        reply = read_response(sock)
        assert time.monotonic() - started < 5
    assert reply.startswith("HTTP/1.1 408")
    assert '"type":"error"' in reply and "did not arrive" in reply


def test_cors_is_off_by_default(edge: Edge) -> None:
    response = httpx.options(
        edge.url + "/v1/messages",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers


def test_admin_routes_on_their_own_port() -> None:
    port, admin = free_port(), free_port()
    process = start_serve("--port", str(port), "--admin-port", str(admin))
    try:
        wait_healthy(f"http://127.0.0.1:{admin}", process, seconds=30)
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 404
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 404
        assert httpx.get(f"http://127.0.0.1:{admin}/metrics").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{admin}/readyz").status_code == 200
        wrong = httpx.post(f"http://127.0.0.1:{admin}/v1/messages", json={})
        assert_anthropic_error(wrong, 404, "API port")
    finally:
        process.terminate()
        process.wait(10)


def _raw(edge: Edge, data: bytes, wait: float = 10) -> str:
    host, port = edge.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        if data:
            sock.sendall(data)
        return read_response(sock)


def _anthropic_body(reply: str) -> dict[str, Any]:
    body = json.loads(reply.partition("\r\n\r\n")[2])
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    return dict(body["error"])


def test_oversized_or_too_many_headers_get_a_431(edge: Edge) -> None:
    big = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    reply = _raw(edge, big)
    assert reply.startswith("HTTP/1.1 431") and "connection: close" in reply.lower()
    assert str(transport.MAX_HEAD_BYTES) in _anthropic_body(reply)["message"]
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(transport.MAX_HEADERS + 5)
    )
    reply = _raw(edge, many + b"\r\n")
    assert reply.startswith("HTTP/1.1 431")
    assert "ANTHROPIC_CUSTOM_HEADERS" in _anthropic_body(reply)["message"]
    # A usual request still passes on a fresh connection.
    assert httpx.get(edge.url + "/healthz").status_code == 200


def test_slow_or_silent_heads_are_cut_off(edge: Edge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "HEAD_TIMEOUT", 0.5)
    for opening in (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Slow: a", b""):
        started = time.monotonic()
        reply = _raw(edge, opening)
        assert time.monotonic() - started < 5
        assert reply.startswith("HTTP/1.1 408")
        assert "did not arrive" in _anthropic_body(reply)["message"]


def test_malformed_http_gets_an_anthropic_shaped_400(edge: Edge) -> None:
    reply = _raw(edge, b"NOT HTTP AT ALL\r\n\r\n")
    assert reply.startswith("HTTP/1.1 400")
    assert "not valid HTTP" in _anthropic_body(reply)["message"]
