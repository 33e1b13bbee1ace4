"""A fast fake OpenAI-compatible backend for benchmarks, in its own process:
`python -m bench.fake_backend PORT CHUNKS`.

Streams CHUNKS chunks by default; a model named `m-N` streams N chunks, `m-idle` sends one
chunk and then holds the stream open (for idle-stream memory), `m-paced` sends PACED_CHUNKS
chunks PACED_GAP_S apart, as a model decodes (a gateway's first token then does not race the
backend's next 199 for the CPU: time to first token as a user sees it). Non-streaming requests get a
small fixed answer. Also accepts OTLP trace exports (POST /v1/traces) as a sink.
"""

from __future__ import annotations

import asyncio
import sys
from functools import lru_cache
from typing import Any

import orjson

from tests.fakes.server import request_body, respond

JSON = [(b"content-type", b"application/json")]
ANSWER = orjson.dumps(
    {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
    }
)


PACED_CHUNKS, PACED_GAP_S = 10, 0.005


@lru_cache(maxsize=64)
def frames(chunks: int) -> list[bytes]:
    out = []
    for i in range(chunks):
        chunk = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}],
        }
        out.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    end = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": chunks, "total_tokens": 10 + chunks},
    }
    out.append(b"data: " + orjson.dumps(end) + b"\n\ndata: [DONE]\n\n")
    return out


def make_app(default_chunks: int) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await request_body(receive)
        if scope["path"].endswith("/traces") or not body:
            await respond(send, 200, b"{}", JSON)
            return
        request = orjson.loads(body)
        model = str(request.get("model", ""))
        if not request.get("stream"):
            await respond(send, 200, ANSWER, JSON)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        if model.endswith("m-idle"):
            await send({"type": "http.response.body", "body": frames(1)[0], "more_body": True})
            await asyncio.sleep(600)
            return
        if model.endswith("m-paced"):
            for frame in frames(PACED_CHUNKS):
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                await asyncio.sleep(PACED_GAP_S)
            await send({"type": "http.response.body", "body": b""})
            return
        count = (
            int(model.rsplit("-", 1)[1]) if model.rsplit("-", 1)[-1].isdigit() else default_chunks
        )
        for frame in frames(count):
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


if __name__ == "__main__":
    import uvicorn

    port, chunks = int(sys.argv[1]), int(sys.argv[2])
    uvicorn.run(
        make_app(chunks),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        access_log=False,
        backlog=4096,
    )
