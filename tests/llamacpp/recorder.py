"""A loopback pass-through between the edge and llama-server that keeps what the server sent.

It forwards every request unchanged and tees the response body, so the tests can compare the
edge's answer with the server's own bytes (usage, tool calls) and add those bytes to the
recorded-stream corpus.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from tests.fakes.server import request_body, respond

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class Exchange:
    path: str
    request: dict[str, Any]
    status: int
    body: bytes

    def sse_data(self) -> list[Any]:
        """The JSON of every `data:` line (the `[DONE]` marker left out)."""
        out = []
        for line in self.body.decode().splitlines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                out.append(json.loads(line[5:]))
        return out

    def usage(self) -> dict[str, Any]:
        """The server's own token count: the last `usage` it sent."""
        chunks = self.sse_data() if self.request.get("stream") else [json.loads(self.body)]
        found = [c["usage"] for c in chunks if isinstance(c, dict) and c.get("usage")]
        assert found, f"the server sent no usage: {self.body[-500:]!r}"
        return dict(found[-1])


class RecordingProxy:
    """`hidden` paths answer 404, as from a proxy that exposes only /v1: the edge then cannot
    read the server's window from /props, and the server itself meets an overlong prompt."""

    def __init__(self, upstream: str, hidden: tuple[str, ...] = ()) -> None:
        self.upstream = upstream.rstrip("/")
        self.hidden = hidden
        self.exchanges: list[Exchange] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await request_body(receive)
        headers = [
            (k.decode(), v.decode()) for k, v in scope["headers"] if k.decode() not in HOP_HEADERS
        ]
        if scope["path"] in self.hidden:
            await respond(send, 404, b"")
            return
        url = self.upstream + scope["path"]
        request = json.loads(body) if body else {}
        async with (
            httpx.AsyncClient(timeout=300.0) as client,
            client.stream(scope["method"], url, content=body, headers=headers) as response,
        ):
            exchange = Exchange(scope["path"], request, response.status_code, b"")
            self.exchanges.append(exchange)  # kept even when the edge hangs up mid-answer
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k.encode(), v.encode())
                        for k, v in response.headers.items()
                        if k.lower() not in HOP_HEADERS
                    ],
                }
            )
            async for chunk in response.aiter_raw():
                exchange.body += chunk
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    def completions(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.path.endswith("/chat/completions")]
