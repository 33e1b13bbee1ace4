"""Run an ASGI app with uvicorn on a free 127.0.0.1 port, in a thread of its own; and the two
steps of plain ASGI the raw apps (the llama.cpp recorder, the bench backend) share."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Self

import uvicorn


async def request_body(receive: Any) -> bytes:
    """An ASGI request's whole body, however many messages it came in."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def respond(
    send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A whole ASGI response in one body message."""
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ThreadedServer:
    def __init__(
        self,
        app: Any,
        port: int | None = None,
        http: Any = "auto",
        tls: tuple[str, str] | None = None,  # (certificate file, key file): serve https
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.scheme = "https" if tls else "http"
        config = uvicorn.Config(
            app,
            http=http,
            host=host,
            port=self.port,
            log_level="warning",
            lifespan="on",
            loop="asyncio",
            timeout_graceful_shutdown=1,
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class ServedApp:
    """A fake whose ASGI `app` is served on loopback for the length of a `with` block."""

    app: Any
    tls: tuple[str, str] | None = None
    host = "127.0.0.1"  # a container test binds its fakes to the container network's gateway
    _server: ThreadedServer | None = None

    @property
    def server_url(self) -> str:
        assert self._server is not None, "use the fake in a `with` block"
        return self._server.url

    def __enter__(self) -> Self:
        self._server = ThreadedServer(self.app, tls=self.tls, host=self.host).__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.__exit__(*exc)
