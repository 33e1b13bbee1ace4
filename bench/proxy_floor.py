"""The floor of a Python proxy hop on this host, next to the edge: `uv run python -m bench.proxy_floor`.

Time to first token through (a) nothing, (b) the thinnest Python proxy there is — a uvloop
byte relay that forwards each client connection to one backend connection, parsing nothing —
(c) uvicorn (uvloop, httptools) running an ASGI app that forwards over one raw socket with
a client that costs ~nothing, (d) the two libraries the edge is built on and nothing else —
uvicorn running a ten-line ASGI app that posts the body it got to the backend with aiohttp and
relays the answer's chunks — and (e) `ccgate serve`, measured in one run, alternating request
by request, one request at a time over kept-alive connections. The hops are pinned alone to
core 0, the backend and the client to core 1 (as bench/peers pins the gateway). The relay's
figure is what any proxy written in Python pays here before doing any work; the raw forward's
is uvicorn's share on top; the pass-through's is what uvicorn and aiohttp cost before the edge
does any of its own; the edge's excess over that is its work. Writes results/proxy_floor.md.

FLOOR_AGAINST=<git ref> adds that commit's edge (from a worktree) beside this tree's and
reports their difference paired by round, into results/ab/proxy_floor-<FLOOR_LABEL>.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import uvicorn
import uvloop

from bench.processes import (
    edge_env,
    free_port,
    pin,
    start_backend,
    start_edge,
    stop,
    wait_port,
)

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("services/edge/src", "services/limiter/src", "services/bot/src", "shared/src")
# FLOOR_AGAINST=<git ref>: that commit's edge runs beside this tree's (an A/B in one run).
AGAINST = os.environ.get("FLOOR_AGAINST")
N = int(os.environ.get("FLOOR_N", "400"))
BODY = '{"model":"%s","stream":true,"max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'


class Relay(asyncio.Protocol):
    """One client connection, forwarded byte for byte to its own backend connection."""

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.waiting: list[bytes] = []
        self.connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.client = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.connecting = asyncio.ensure_future(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        client = self.client
        assert client is not None
        self.upstream, _ = await loop.create_connection(
            lambda: Back(client), "127.0.0.1", self.backend_port
        )
        for data in self.waiting:
            self.upstream.write(data)

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.waiting.append(data)
        else:
            self.upstream.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


class Back(asyncio.Protocol):
    """The backend connection of one relayed client: what the backend sends goes to it."""

    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class PassThrough:
    """An ASGI app that forwards each request's body to the backend and relays the answer:
    uvicorn's and aiohttp's share of a hop, with no parsing, checks or translation."""

    def __init__(self, backend_port: int) -> None:
        self.url = f"http://127.0.0.1:{backend_port}/v1/chat/completions"
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.session is None:  # made in the server's loop, on the first request
            self.session = aiohttp.ClientSession()
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {"content-type": "application/json"}
        async with self.session.post(self.url, data=body, headers=headers) as response:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [(b"content-type", b"text/event-stream")],
                }
            )
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


class RawForward:
    """An ASGI app that sends the backend one fixed request over one raw asyncio connection
    and relays its chunks: uvicorn's share alone, with an HTTP client that costs ~nothing
    (it parses no headers and knows the answer is chunked — a yardstick, not a client)."""

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.request = request(backend_port, "/v1/chat/completions", "m-paced")
        self.connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        if self.connection is None:
            self.connection = await asyncio.open_connection("127.0.0.1", self.backend_port)
            sock = self.connection[1].get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader, writer = self.connection
        writer.write(self.request)
        await reader.readuntil(b"\r\n\r\n")
        start = {"type": "http.response.start", "status": 200}
        await send({**start, "headers": [(b"content-type", b"text/event-stream")]})
        while size := int(await reader.readuntil(b"\r\n"), 16):
            chunk = await reader.readexactly(size + 2)
            await send({"type": "http.response.body", "body": chunk[:-2], "more_body": True})
        await reader.readexactly(2)
        await send({"type": "http.response.body", "body": b""})


def serve_asgi(app: Any, port: int) -> None:
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


async def serve_relay(port: int, backend_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Relay(backend_port), "127.0.0.1", port)
    await server.serve_forever()


def request(port: int, path: str, model: str) -> bytes:
    body = (BODY % model).encode()
    return (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


def first_token_ms(sock: socket.socket, data: bytes) -> float:
    """Send one streamed request, read it to its end; ms until the first token arrived."""
    started = time.perf_counter()
    sock.sendall(data)
    buffer = b""
    first = None
    while not buffer.endswith(b"0\r\n\r\n"):  # the chunked body's end
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("the connection closed mid-answer")
        buffer += chunk
        if first is None and b"tok0" in buffer:
            first = time.perf_counter()
    assert first is not None, "no first token in the answer"
    return (first - started) * 1000


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[dict[str, str]]:
    """A worktree of `ref`; yields the environment that makes `ccgate serve` run its code."""
    where = Path(tempfile.mkdtemp(prefix="ccgate-floor-"))
    git = ["git", "-C", str(ROOT), "worktree"]
    subprocess.run([*git, "add", "--detach", "-q", str(where), ref], check=True)
    try:
        yield {"PYTHONPATH": os.pathsep.join(str(where / src) for src in SOURCES)}
    finally:
        subprocess.run([*git, "remove", "--force", str(where)], check=False)


def main() -> None:
    backend_port, relay_port, edge_port = free_port(), free_port(), free_port()
    pass_port, raw_port, against_port = free_port(), free_port(), free_port()
    backend = start_backend(backend_port, 50, quiet=True)
    hops = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.proxy_floor", kind, str(port), str(backend_port)]
        )
        for kind, port in (("relay", relay_port), ("raw", raw_port), ("pass-through", pass_port))
    ]
    for port in (relay_port, raw_port, pass_port):
        wait_port(port)
    env = edge_env(backend_port, HTTP_FIRST_BYTE_TIMEOUT="600", HTTP_READ_TIMEOUT="600")
    with contextlib.ExitStack() as stack:
        hops.append(start_edge(edge_port, env))
        if AGAINST:
            hops.append(start_edge(against_port, {**env, **stack.enter_context(checkout(AGAINST))}))
        two_cores = len(os.sched_getaffinity(0)) >= 2
        if two_cores:
            pin([hop.pid for hop in hops], "0")
            pin([backend.pid], "1")
            os.sched_setaffinity(0, {1})
        openai, anthropic = (
            ("/v1/chat/completions", "m-paced"),
            ("/v1/messages", "openai_compat/m-paced"),
        )
        ports = {
            "direct": (backend_port, openai),
            "byte relay": (relay_port, openai),
            "uvicorn + a raw-socket forward": (raw_port, openai),
            "uvicorn + aiohttp pass-through": (pass_port, openai),
            "ccgate": (edge_port, anthropic),
            **({f"ccgate at {AGAINST}": (against_port, anthropic)} if AGAINST else {}),
        }
        paths = {
            name: (connect(port), request(port, *what)) for name, (port, what) in ports.items()
        }
        try:
            times = measure(paths)
        finally:
            stop(*hops, backend)
    report(times, two_cores)


def measure(paths: dict[str, tuple[socket.socket, bytes]]) -> dict[str, list[float]]:
    """N rounds after 50 to warm up; each round asks every path once, in a shuffled order
    (a fixed order gave the path after another edge a steady ~0.1 ms edge of its own)."""
    times: dict[str, list[float]] = {name: [] for name in paths}
    order = list(paths)
    for round_ in range(50 + N):
        random.shuffle(order)
        for name in order:
            sock, data = paths[name]
            try:
                took = first_token_ms(sock, data)
            except RuntimeError as exc:
                raise RuntimeError(f"{name}: {exc}") from None
            if round_ >= 50:
                times[name].append(took)
    return times


def report(times: dict[str, list[float]], pinned: bool) -> None:
    median = {name: statistics.median(values) for name, values in times.items()}
    lines = [
        "# The floor of a Python proxy hop (bench/proxy_floor.py)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {N} streamed requests each, "
        "one at a time, the paths in a shuffled order each round; the backend sends 10 chunks "
        "5 ms apart (`m-paced`). "
        + ("Hops pinned to core 0, backend and client to core 1." if pinned else "Not pinned."),
        "",
        "| path | first token, median | added to direct |",
        "| --- | --- | --- |",
        *(
            f"| {name} | {value:.3f} ms | {value - median['direct']:+.3f} ms |"
            for name, value in median.items()
        ),
        "",
    ]
    out = RESULTS / "proxy_floor.md"
    if AGAINST:
        ours, theirs = times["ccgate"], times[f"ccgate at {AGAINST}"]
        paired = statistics.median(a - b for a, b in zip(ours, theirs, strict=True))
        lines += [
            f"ccgate (this tree) − ccgate at {AGAINST}, paired by round: {paired:+.3f} ms",
            "",
        ]
        label = os.environ.get("FLOOR_LABEL", time.strftime("%H%M"))
        out = RESULTS / "ab" / f"proxy_floor-{label}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:2] == ["relay"]:
        uvloop.run(serve_relay(int(sys.argv[2]), int(sys.argv[3])))
    elif sys.argv[1:2] == ["raw"]:
        serve_asgi(RawForward(int(sys.argv[3])), int(sys.argv[2]))
    elif sys.argv[1:2] == ["pass-through"]:
        serve_asgi(PassThrough(int(sys.argv[3])), int(sys.argv[2]))
    else:
        main()
